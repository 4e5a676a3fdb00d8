//! Start-up: a CUDA device with the kernels' modules loaded (shipped PTX or NVRTC at run time),
//! and what it is (name, compute capability, driver).

use crate::error::{Error, Result};
use crate::nvrtc;
use crate::source::{ptx_isa_version, KernelSource, SHIPPED_MIN_DRIVER, SHIPPED_NVRTC, SOURCES};
use cudarc::driver::sys::{CUdevice_attribute, CUresult};
use cudarc::driver::{CudaContext, CudaFunction, CudaStream};
use cudarc::nvrtc::Ptx;
use std::collections::HashMap;
use std::sync::Arc;

/// Where the PTX of the loaded kernels came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PtxSource {
    /// The PTX shipped with the crate (`ptx/*.ptx`, NVRTC [`SHIPPED_NVRTC`]).
    Shipped,
    /// Compiled at run time by NVRTC from the `.cu` sources embedded in the crate, for the
    /// device's own architecture.
    Nvrtc,
}

/// Options of [`Gpu::with_options`].
#[derive(Clone, Debug, Default)]
pub struct GpuOptions {
    /// Device ordinal.
    pub ordinal: usize,
    /// Which PTX to load; `None` means the shipped PTX unless the environment variable
    /// `DAWIN_KERNELS_NVRTC` is `1` (then NVRTC compiles the sources at run time).
    pub ptx: Option<PtxSource>,
}

/// A CUDA device with the dawin kernels loaded, and one stream on which everything runs in
/// order.
pub struct Gpu {
    ctx: Arc<CudaContext>,
    pub(crate) stream: Arc<CudaStream>,
    pub(crate) functions: HashMap<&'static str, CudaFunction>,
    name: String,
    pub(crate) compute_capability: (i32, i32),
    pub(crate) sm_count: u32,
    driver_version: i32,
    ptx_source: PtxSource,
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gpu")
            .field("ordinal", &self.ctx.ordinal())
            .field("name", &self.name)
            .field("compute_capability", &self.compute_capability)
            .field("sm_count", &self.sm_count)
            .field("driver_version", &self.driver_version)
            .field("ptx_source", &self.ptx_source)
            .finish()
    }
}

/// `compute_80` → 80.
fn arch_number(arch: &str) -> i32 {
    arch.trim_start_matches("compute_").parse().unwrap_or(0)
}

fn driver_version_string(v: i32) -> String {
    format!("{}.{}", v / 1000, (v % 1000) / 10)
}

impl Gpu {
    /// The first CUDA device (ordinal 0).
    ///
    /// On a machine without an NVIDIA driver or without a device this returns an error
    /// ([`Error::is_no_gpu`] is true) and never panics, so callers can fall back to the CPU:
    ///
    /// ```
    /// match dawin_kernels::Gpu::new() {
    ///     Ok(gpu) => println!("merging on {}", gpu.name()),
    ///     Err(e) => eprintln!("{e}; using the CPU"),
    /// }
    /// ```
    pub fn new() -> Result<Gpu> {
        Gpu::with_options(GpuOptions::default())
    }

    /// The CUDA device with the given ordinal.
    pub fn new_with_ordinal(ordinal: usize) -> Result<Gpu> {
        Gpu::with_options(GpuOptions {
            ordinal,
            ..Default::default()
        })
    }

    /// A device with explicit options (ordinal, PTX source).
    pub fn with_options(opts: GpuOptions) -> Result<Gpu> {
        let ordinal = opts.ordinal;
        // cudarc panics on the first driver call when libcuda cannot be loaded: check first.
        // SAFETY: only tries to dlopen the driver library by its candidate names.
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            return Err(Error::NoDriver);
        }
        let visible = std::env::var("CUDA_VISIBLE_DEVICES")
            .map(|v| format!(" (CUDA_VISIBLE_DEVICES={v:?})"))
            .unwrap_or_default();
        let count = match CudaContext::device_count() {
            Ok(n) => n,
            Err(e) if e.0 == CUresult::CUDA_ERROR_NO_DEVICE => 0,
            // e.g. CUDA_ERROR_SYSTEM_DRIVER_MISMATCH: a GPU may well be there (see
            // Error::start_failure).
            Err(e) => return Err(Error::driver("initialising the CUDA driver (cuInit)")(e)),
        };
        if ordinal >= count.max(0) as usize {
            return Err(Error::NoDevice {
                ordinal,
                reason: format!("{count} CUDA device(s) visible{visible}"),
            });
        }
        let ctx = CudaContext::new(ordinal).map_err(Error::driver(format!(
            "creating a context on device {ordinal}"
        )))?;
        // The context's default stream: with a single stream cudarc needs no events to order
        // work, so a launch costs no event records.
        let stream = ctx.default_stream();
        let name = ctx
            .name()
            .map_err(Error::driver("reading the device name"))?;
        let compute_capability = ctx
            .compute_capability()
            .map_err(Error::driver("reading the compute capability"))?;
        let sm_count = ctx
            .attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)
            .map_err(Error::driver("reading the SM count"))?;
        let mut driver_version = 0;
        // SAFETY: valid out-pointer; the driver library is loaded.
        unsafe { cudarc::driver::sys::cuDriverGetVersion(&mut driver_version) }
            .result()
            .map_err(Error::driver("reading the driver version"))?;

        let ptx_source = opts.ptx.unwrap_or_else(|| {
            if std::env::var("DAWIN_KERNELS_NVRTC").as_deref() == Ok("1") {
                PtxSource::Nvrtc
            } else {
                PtxSource::Shipped
            }
        });
        let runtime_arch = match ptx_source {
            PtxSource::Shipped => None,
            PtxSource::Nvrtc => {
                let supported = nvrtc::nvrtc_supported_archs()?;
                Some(
                    nvrtc::runtime_arch(compute_capability, &supported).ok_or_else(|| {
                        Error::Compile {
                            file: "-".into(),
                            log: format!(
                                "NVRTC supports none of the architectures of a compute \
                                 capability {}.{} device ({supported:?})",
                                compute_capability.0, compute_capability.1
                            ),
                        }
                    })?,
                )
            }
        };

        let mut functions = HashMap::new();
        let device_arch = compute_capability.0 * 10 + compute_capability.1;
        for src in SOURCES {
            // A file that needs a newer architecture than the device (the ViT kernels need
            // sm_80) is not loaded; launching one of its kernels is then an error naming it.
            if arch_number(src.arch) > device_arch {
                continue;
            }
            let ptx_text = match &runtime_arch {
                None => src.shipped_ptx.to_string(),
                Some(arch) => nvrtc::compile_ptx(src, arch)?,
            };
            let module = ctx
                .load_module(Ptx::from_src(ptx_text.clone()))
                .map_err(|e| load_error(src, &ptx_text, ptx_source, driver_version, e))?;
            for k in src.kernels {
                let f = module
                    .load_function(k.name)
                    .map_err(Error::driver(format!("loading kernel {}", k.name)))?;
                functions.insert(k.name, f);
            }
        }
        Ok(Gpu {
            ctx,
            stream,
            functions,
            name,
            compute_capability,
            sm_count: sm_count.max(1) as u32,
            driver_version,
            ptx_source,
        })
    }

    /// Device name, e.g. `NVIDIA H100 80GB HBM3`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Compute capability, e.g. `(9, 0)`.
    pub fn compute_capability(&self) -> (i32, i32) {
        self.compute_capability
    }

    /// Number of streaming multiprocessors.
    pub fn sm_count(&self) -> u32 {
        self.sm_count
    }

    /// CUDA version of the driver, e.g. `12.4`.
    pub fn driver_version(&self) -> String {
        driver_version_string(self.driver_version)
    }

    /// CUDA version of the driver as `(major, minor)`, e.g. `(12, 4)`.
    pub fn driver_version_number(&self) -> (i32, i32) {
        (
            self.driver_version / 1000,
            (self.driver_version % 1000) / 10,
        )
    }

    /// Where the loaded PTX came from.
    pub fn ptx_source(&self) -> PtxSource {
        self.ptx_source
    }

    /// The cudarc context (for other crates' kernels, e.g. `dawin-vit`).
    pub fn context(&self) -> &Arc<CudaContext> {
        &self.ctx
    }

    /// The stream every operation of this `Gpu` runs on, in order.
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// Waits until all work queued on [`Gpu::stream`] has finished.
    pub fn synchronize(&self) -> Result<()> {
        self.stream
            .synchronize()
            .map_err(Error::driver("synchronizing the stream"))
    }
}

fn load_error(
    src: &KernelSource,
    ptx: &str,
    origin: PtxSource,
    driver_version: i32,
    e: cudarc::driver::DriverError,
) -> Error {
    if e.0 == CUresult::CUDA_ERROR_UNSUPPORTED_PTX_VERSION && origin == PtxSource::Shipped {
        Error::PtxUnsupported {
            file: src.file,
            driver: driver_version_string(driver_version),
            ptx_isa: ptx_isa_version(ptx).unwrap_or("?").to_string(),
            nvrtc: SHIPPED_NVRTC,
            min_driver: SHIPPED_MIN_DRIVER,
            source: e,
        }
    } else if e.0 == CUresult::CUDA_ERROR_UNSUPPORTED_PTX_VERSION {
        // DAWIN_KERNELS_NVRTC=1 with an NVRTC newer than the driver.
        Error::Driver {
            context: format!(
                "loading the PTX that NVRTC compiled at run time from {} (PTX ISA {}): the \
                 driver ({}) is older than that NVRTC; unset DAWIN_KERNELS_NVRTC to use the \
                 shipped PTX (NVRTC {}, driver {} or newer), or put an NVRTC no newer than the \
                 driver on LD_LIBRARY_PATH",
                src.file,
                ptx_isa_version(ptx).unwrap_or("?"),
                driver_version_string(driver_version),
                SHIPPED_NVRTC,
                SHIPPED_MIN_DRIVER,
            ),
            source: e,
        }
    } else {
        Error::Driver {
            context: format!("loading the {origin:?} PTX of {}", src.file),
            source: e,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ptx_version_errors_say_what_to_do() {
        use cudarc::driver::DriverError;
        // (A DriverError's Display asks libcuda for the text, so only the fields are checked.)
        let src = &SOURCES[0];
        let ptx = ".version 8.7\n.target sm_70\n";
        let unsupported = || DriverError(CUresult::CUDA_ERROR_UNSUPPORTED_PTX_VERSION);
        // Shipped PTX on an old driver: the dedicated error with both versions.
        match load_error(src, ptx, PtxSource::Shipped, 12020, unsupported()) {
            Error::PtxUnsupported {
                file,
                driver,
                ptx_isa,
                ..
            } => assert_eq!((file, &driver[..], &ptx_isa[..]), (src.file, "12.2", "8.7")),
            _ => panic!("shipped PTX on an old driver is not PtxUnsupported"),
        }
        // Run-time NVRTC newer than the driver: names the variable to unset and the versions.
        match load_error(src, ptx, PtxSource::Nvrtc, 12040, unsupported()) {
            Error::Driver { context, .. } => {
                for want in [
                    "DAWIN_KERNELS_NVRTC",
                    "8.7",
                    "12.4",
                    src.file,
                    SHIPPED_NVRTC,
                ] {
                    assert!(context.contains(want), "{want:?} missing from: {context}");
                }
            }
            _ => panic!("run-time PTX on an old driver is not a driver error"),
        }
        // Any other failure keeps the plain driver error naming the file.
        let other = DriverError(CUresult::CUDA_ERROR_INVALID_PTX);
        match load_error(src, ptx, PtxSource::Nvrtc, 12040, other) {
            Error::Driver { context, .. } => {
                assert!(context.contains(src.file), "{context}");
                assert!(!context.contains("DAWIN_KERNELS_NVRTC"), "{context}");
            }
            _ => panic!("an invalid PTX is not a driver error"),
        }
    }

    #[test]
    fn driver_versions() {
        assert_eq!(driver_version_string(12040), "12.4");
        assert_eq!(driver_version_string(12090), "12.9");
    }
}
