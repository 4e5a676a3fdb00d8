//! The error type of this crate.

use cudarc::driver::sys::CUresult;
use cudarc::driver::DriverError;

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong in `dawin-kernels`.
///
/// [`Error::start_failure`] classifies an error of [`crate::Gpu::new`] ([`StartFailure`]): no
/// GPU here at all, or a GPU that is present but cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The CUDA driver library (`libcuda.so` / `nvcuda.dll`) could not be loaded.
    #[error(
        "no CUDA driver: libcuda could not be loaded (no NVIDIA driver installed, or its library \
         is not on the loader path / LD_LIBRARY_PATH)"
    )]
    NoDriver,

    /// The driver is present but there is no device with the requested ordinal.
    #[error("no CUDA device with ordinal {ordinal}: {reason}")]
    NoDevice {
        /// The ordinal that was asked for.
        ordinal: usize,
        /// What the driver said (device count, or its error).
        reason: String,
    },

    /// The driver rejected the PTX shipped with the crate because it is older than the CUDA
    /// version of the NVRTC that produced it.
    #[error(
        "the CUDA driver (version {driver}) cannot load the PTX of {file} (PTX ISA {ptx_isa}, \
         made by NVRTC {nvrtc}): install driver {min_driver} or newer, or set \
         DAWIN_KERNELS_NVRTC=1 with an NVRTC no newer than the driver on LD_LIBRARY_PATH \
         to compile the kernels at run time ({source})"
    )]
    PtxUnsupported {
        /// Kernel source file, e.g. `merge.cu`.
        file: &'static str,
        /// Driver version as CUDA reports it, e.g. `12.2`.
        driver: String,
        /// `.version` of the PTX.
        ptx_isa: String,
        /// NVRTC version that generated the shipped PTX.
        nvrtc: &'static str,
        /// Minimum driver for that PTX.
        min_driver: &'static str,
        /// The driver error.
        source: DriverError,
    },

    /// A CUDA driver call failed.
    #[error("CUDA driver error while {context}: {source}")]
    Driver {
        /// What was being done.
        context: String,
        /// The driver error.
        source: DriverError,
    },

    /// The NVRTC library (`libnvrtc.so.12`) could not be loaded.
    #[error(
        "NVRTC not found: libnvrtc could not be loaded; install it (e.g. `pip install \
         nvidia-cuda-nvrtc-cu12`) and put its lib directory on LD_LIBRARY_PATH"
    )]
    NoNvrtc,

    /// NVRTC failed to compile a kernel source.
    #[error("NVRTC failed to compile {file}: {log}")]
    Compile {
        /// Kernel source file, e.g. `merge.cu`.
        file: String,
        /// The compiler log (or the NVRTC error).
        log: String,
    },

    /// An argument is invalid (wrong length, count, dtype, value).
    #[error("invalid argument `{arg}`: {msg}")]
    InvalidArgument {
        /// The argument's name.
        arg: &'static str,
        /// What is wrong with it.
        msg: String,
    },

    /// Two arenas that must hold the same tensors do not.
    #[error("arena layouts differ: {0}")]
    LayoutMismatch(String),

    /// A tensor name that the arena does not hold.
    #[error("no tensor named `{0}` in the arena")]
    NoSuchTensor(String),

    /// An error from `dawin-core` (CPU references, state dicts); for NaN logits this is the
    /// error the CPU reference returns for the same input.
    #[error(transparent)]
    Core(#[from] dawin_core::Error),
}

/// Why [`crate::Gpu::new`] failed: the GPU is absent ([`StartFailure::is_gpu_absent`]), or
/// present but unusable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StartFailure {
    /// No CUDA driver library (`libcuda`) on this machine.
    NoDriver,
    /// The driver sees no device with the requested ordinal (none installed, or hidden by
    /// `CUDA_VISIBLE_DEVICES`).
    NoDevice,
    /// The driver is too old for the shipped PTX (or for the CUDA version cudarc needs).
    DriverTooOld,
    /// The driver rejected the kernels' PTX (invalid PTX, no code for this GPU, PTX from a
    /// run-time NVRTC newer than the driver).
    PtxRejected,
    /// Anything else: a failed context creation, a missing kernel, NVRTC failing, ….
    Other,
}

impl StartFailure {
    /// True when there is no GPU here (no driver, no device): the cases in which a GPU test may
    /// be skipped rather than investigated. The others mean a GPU is present but broken.
    pub fn is_gpu_absent(self) -> bool {
        matches!(self, StartFailure::NoDriver | StartFailure::NoDevice)
    }

    /// A short description, e.g. `no CUDA device`.
    pub fn describe(self) -> &'static str {
        match self {
            StartFailure::NoDriver => "no CUDA driver",
            StartFailure::NoDevice => "no CUDA device",
            StartFailure::DriverTooOld => "GPU present but its driver is too old",
            StartFailure::PtxRejected => "GPU present but the driver rejected the kernels' PTX",
            StartFailure::Other => "GPU present but unusable",
        }
    }
}

impl std::fmt::Display for StartFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.describe())
    }
}

impl Error {
    /// True for the errors that mean "no usable GPU here" (no driver, no device, a driver too
    /// old for the kernels: [`StartFailure::NoDriver`], [`StartFailure::NoDevice`],
    /// [`StartFailure::DriverTooOld`]): the cases where a CPU fallback is the right answer
    /// rather than a bug report.
    pub fn is_no_gpu(&self) -> bool {
        matches!(
            self.start_failure(),
            StartFailure::NoDriver | StartFailure::NoDevice | StartFailure::DriverTooOld
        )
    }

    /// The cause of a [`crate::Gpu::new`] error: the variant, or for a driver error its CUDA
    /// error code (`CUDA_ERROR_NO_DEVICE` → no device, `CUDA_ERROR_SYSTEM_DRIVER_MISMATCH` /
    /// `CUDA_ERROR_UNSUPPORTED_PTX_VERSION` of the shipped PTX → driver too old, the PTX and
    /// image errors → PTX rejected); anything else is [`StartFailure::Other`].
    pub fn start_failure(&self) -> StartFailure {
        match self {
            Error::NoDriver => StartFailure::NoDriver,
            Error::NoDevice { .. } => StartFailure::NoDevice,
            Error::PtxUnsupported { .. } => StartFailure::DriverTooOld,
            Error::Driver { source, .. } => match source.0 {
                CUresult::CUDA_ERROR_NO_DEVICE | CUresult::CUDA_ERROR_INVALID_DEVICE => {
                    StartFailure::NoDevice
                }
                CUresult::CUDA_ERROR_SYSTEM_DRIVER_MISMATCH
                | CUresult::CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE => StartFailure::DriverTooOld,
                CUresult::CUDA_ERROR_INVALID_PTX
                | CUresult::CUDA_ERROR_UNSUPPORTED_PTX_VERSION
                | CUresult::CUDA_ERROR_NO_BINARY_FOR_GPU
                | CUresult::CUDA_ERROR_INVALID_IMAGE
                | CUresult::CUDA_ERROR_JIT_COMPILER_NOT_FOUND => StartFailure::PtxRejected,
                _ => StartFailure::Other,
            },
            _ => StartFailure::Other,
        }
    }

    /// True when [`Error::start_failure`] says there is no GPU here at all (no driver, no
    /// device), as opposed to a GPU that is present but broken.
    pub fn is_gpu_absent(&self) -> bool {
        self.start_failure().is_gpu_absent()
    }

    pub(crate) fn driver(context: impl Into<String>) -> impl FnOnce(DriverError) -> Error {
        let context = context.into();
        move |source| Error::Driver { context, source }
    }

    pub(crate) fn arg(arg: &'static str, msg: impl Into<String>) -> Error {
        Error::InvalidArgument {
            arg,
            msg: msg.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn driver(code: CUresult) -> Error {
        Error::Driver {
            context: "starting".into(),
            source: DriverError(code),
        }
    }

    /// Synthetic start-up errors of every kind (only the variants and codes are read: formatting
    /// a driver error asks libcuda for its text).
    #[test]
    fn start_failures_are_classified() {
        use StartFailure::*;
        let cases = [
            (Error::NoDriver, NoDriver),
            (
                Error::NoDevice {
                    ordinal: 0,
                    reason: "0 CUDA device(s) visible".into(),
                },
                NoDevice,
            ),
            (
                Error::PtxUnsupported {
                    file: "merge.cu",
                    driver: "12.2".into(),
                    ptx_isa: "8.4".into(),
                    nvrtc: "12.4",
                    min_driver: "R550",
                    source: DriverError(CUresult::CUDA_ERROR_UNSUPPORTED_PTX_VERSION),
                },
                DriverTooOld,
            ),
            (driver(CUresult::CUDA_ERROR_NO_DEVICE), NoDevice),
            (
                driver(CUresult::CUDA_ERROR_SYSTEM_DRIVER_MISMATCH),
                DriverTooOld,
            ),
            (driver(CUresult::CUDA_ERROR_INVALID_PTX), PtxRejected),
            (
                driver(CUresult::CUDA_ERROR_UNSUPPORTED_PTX_VERSION),
                PtxRejected,
            ),
            (driver(CUresult::CUDA_ERROR_NO_BINARY_FOR_GPU), PtxRejected),
            (driver(CUresult::CUDA_ERROR_OUT_OF_MEMORY), Other),
            (Error::NoNvrtc, Other),
            (Error::arg("x", "bad"), Other),
        ];
        for (e, want) in cases {
            assert_eq!(e.start_failure(), want, "{e:?}");
            assert_eq!(e.is_gpu_absent(), matches!(want, NoDriver | NoDevice));
            assert_eq!(
                e.is_no_gpu(),
                matches!(want, NoDriver | NoDevice | DriverTooOld)
            );
        }
        assert!(NoDevice.describe().contains("no CUDA device"));
        for broken in [DriverTooOld, PtxRejected, Other] {
            assert!(!broken.is_gpu_absent());
            assert!(broken.describe().contains("GPU present"), "{broken}");
        }
    }
}
