//! The CUDA side: a device with the kernels loaded, typed device buffers and views, and the
//! launches.

use crate::checks::{
    check_labels, check_len, check_lerp, check_logits, check_multi_lerp, check_task_arithmetic,
};
use crate::error::{Error, Result};
use crate::nvrtc;
use crate::source::{
    find_kernel, ptx_isa_version, ArgKind, KernelSig, KernelSource, MAX_MODELS, MAX_OUTPUTS,
    MULTI_LERP_PARAMS, SHIPPED_MIN_DRIVER, SHIPPED_NVRTC, SOURCES, TASK_ARITH_PARAMS,
};
use bytemuck::Zeroable;
use cudarc::driver::sys::{CUdevice_attribute, CUresult};
use cudarc::driver::{
    CudaContext, CudaFunction, CudaSlice, CudaStream, CudaView, CudaViewMut, DevicePtr,
    DevicePtrMut, DeviceRepr, LaunchArgs, LaunchConfig, PushKernelArg, SyncOnDrop,
};
use cudarc::nvrtc::Ptx;
use dawin_core::stats::RowStats;
use dawin_core::{DType, Param};
use std::collections::HashMap;
use std::marker::PhantomData;
use std::ops::Range;
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
    stream: Arc<CudaStream>,
    functions: HashMap<&'static str, CudaFunction>,
    name: String,
    compute_capability: (i32, i32),
    sm_count: u32,
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

/// Threads per block of the element-wise kernels.
const ELEMENTWISE_THREADS: u32 = 256;
/// Elements per thread and grid-stride step of the cast kernels (`CAST_PACK` in merge.cu); the
/// other element-wise kernels take one 16-byte vector (`Vec<D>`), [`vec_len`] elements.
const CAST_PACK: u64 = 8;

/// Elements of `T` in one 16-byte vector.
const fn vec_len<T>() -> u64 {
    (16 / std::mem::size_of::<T>()) as u64
}
/// Rows per block of `row_stats_f32` (one warp per row).
const ROWS_PER_BLOCK: u32 = 8;

/// Launch configuration of the element-wise kernels for `n` elements on `sm_count` SMs: one
/// thread per `per_thread` elements (one vector), at most 32 blocks of 256 threads per SM
/// (grid-stride loops cover the rest).
pub(crate) fn elementwise_config(n: u64, per_thread: u64, sm_count: u32) -> LaunchConfig {
    let chunks = n.div_ceil(per_thread).max(1);
    let blocks = chunks.div_ceil(u64::from(ELEMENTWISE_THREADS));
    let cap = u64::from(sm_count.max(1)) * 32;
    LaunchConfig {
        grid_dim: (blocks.min(cap) as u32, 1, 1),
        block_dim: (ELEMENTWISE_THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// Launch configuration of `row_stats_f32` for `n_rows` rows.
pub(crate) fn row_stats_config(n_rows: u32) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (n_rows.div_ceil(ROWS_PER_BLOCK), 1, 1),
        block_dim: (ROWS_PER_BLOCK * 32, 1, 1),
        shared_mem_bytes: 0,
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
        let count = CudaContext::device_count().map_err(|e| Error::NoDevice {
            ordinal,
            reason: format!("the driver reports {e}"),
        })?;
        if ordinal >= count.max(0) as usize {
            return Err(Error::NoDevice {
                ordinal,
                reason: format!("{count} CUDA device(s) visible"),
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

    /// Copies host data to a new device buffer. Returns once the copy has completed, so `data`
    /// may be changed or freed right away.
    pub fn upload<T: Param>(&self, data: &[T]) -> Result<DeviceVec<T>> {
        let mut v = self.alloc_uninit::<T>(data.len())?;
        if !data.is_empty() {
            let mut view = v.buf.slice_mut(0..std::mem::size_of_val(data));
            self.stream
                .memcpy_htod(bytemuck::cast_slice::<T, u8>(data), &mut view)
                .map_err(Error::driver("copying to the device"))?;
            self.finish_host_copy("copying to the device")?;
        }
        Ok(v)
    }

    /// Waits for a copy between the device and pageable host memory just queued on the stream.
    ///
    /// cudarc's `memcpy_htod` / `memcpy_dtoh` with a plain host slice are
    /// `cuMemcpyHtoDAsync` / `cuMemcpyDtoHAsync` with nothing after them (the slice's
    /// `SyncOnDrop` is `Sync(None)`), and the CUDA driver API documents ("API synchronization
    /// behavior", asynchronous memcpy) only that a transfer between device memory and pageable
    /// host memory *might* be synchronous with respect to the host. So the host slice may be
    /// read (H2D) or written (D2H) after the call returns: a download must not be read, and an
    /// upload's source must not be freed or changed, before the stream is synchronised.
    pub(crate) fn finish_host_copy(&self, what: &str) -> Result<()> {
        self.stream
            .synchronize()
            .map_err(Error::driver(format!("{what} (waiting for the copy)")))
    }

    /// A zero-filled device buffer of `len` elements.
    pub fn zeros<T: Param>(&self, len: usize) -> Result<DeviceVec<T>> {
        let mut v = self.alloc_uninit::<T>(len)?;
        self.stream
            .memset_zeros(&mut v.buf)
            .map_err(Error::driver("zeroing device memory"))?;
        Ok(v)
    }

    fn alloc_uninit<T: Param>(&self, len: usize) -> Result<DeviceVec<T>> {
        let bytes = len
            .checked_mul(std::mem::size_of::<T>())
            .ok_or_else(|| Error::arg("len", format!("{len} elements overflow usize")))?;
        // SAFETY: the buffer is written (copy or memset) before it is read; a zero-length
        // buffer gets one byte so that it has a valid address.
        let buf = unsafe { self.stream.alloc::<u8>(bytes.max(1)) }
            .map_err(Error::driver(format!("allocating {bytes} bytes")))?;
        Ok(DeviceVec {
            buf,
            len,
            _t: PhantomData,
        })
    }

    /// Copies a device view back to the host.
    pub fn download<T: Param>(&self, src: &DeviceView<'_, T>) -> Result<Vec<T>> {
        let mut out = vec![T::zeroed(); src.len()];
        self.download_into(src, &mut out)?;
        Ok(out)
    }

    /// Copies a device view into a host slice of the same length.
    pub fn download_into<T: Param>(&self, src: &DeviceView<'_, T>, dst: &mut [T]) -> Result<()> {
        check_len("dst", dst.len(), src.len())?;
        if dst.is_empty() {
            return Ok(());
        }
        self.stream
            .memcpy_dtoh(&src.bytes, bytemuck::cast_slice_mut::<T, u8>(dst))
            .map_err(Error::driver("copying from the device"))?;
        self.finish_host_copy("copying from the device")
    }

    fn function(&self, name: &str) -> Result<(&CudaFunction, &'static KernelSig)> {
        let (_, sig) = find_kernel(name)
            .ok_or_else(|| Error::arg("kernel", format!("no kernel named {name}")))?;
        let f = self.functions.get(name).ok_or_else(|| {
            let (src, _) = find_kernel(name).expect("found above");
            Error::arg(
                "kernel",
                format!(
                    "kernel {name} is not loaded: kernels/{} needs {} (this device is sm_{}{})",
                    src.file, src.arch, self.compute_capability.0, self.compute_capability.1
                ),
            )
        })?;
        Ok((f, sig))
    }

    pub(crate) fn launch<'a>(&'a self, name: &str) -> Result<Launch<'a>> {
        let (func, sig) = self.function(name)?;
        Ok(Launch {
            sig,
            builder: self.stream.launch_builder(func),
            pushed: 0,
        })
    }

    // -----------------------------------------------------------------------------------------
    // Element-wise merges.

    /// `out = (1 − λ)·a + λ·b` per element, in f32, rounded once to `T` (λ = 0 copies `a` and
    /// λ = 1 copies `b` bit for bit). One launch; the same arithmetic as
    /// `dawin_core::merge::lerp`.
    pub fn lerp<T: Param>(
        &self,
        a: &DeviceView<'_, T>,
        b: &DeviceView<'_, T>,
        lambda: f32,
        out: &mut DeviceViewMut<'_, T>,
    ) -> Result<()> {
        let n = a.len();
        check_lerp(n, b.len(), out.len(), lambda)?;
        if n == 0 {
            return Ok(());
        }
        let s = &*self.stream;
        let (pa, _ga) = a.bytes.device_ptr(s);
        let (pb, _gb) = b.bytes.device_ptr(s);
        let (po, _go) = out.bytes.device_ptr_mut(s);
        let (pa, pb, po, n64) = (DevPtr(pa), DevPtr(pb), DevPtr(po), n as u64);
        let mut l = self.launch(&format!("lerp_{}", T::DTYPE.name()))?;
        l.arg(&pa)?.arg(&pb)?.arg(&lambda)?.arg(&po)?.arg(&n64)?;
        l.run(elementwise_config(n64, vec_len::<T>(), self.sm_count))
    }

    /// `outs[k] = (1 − λ_k)·a + λ_k·b` for K coefficients from one read of `a` and `b` (one
    /// launch per [`MAX_OUTPUTS`] outputs). Same arithmetic as `dawin_core::merge::multi_lerp`.
    pub fn multi_lerp<T: Param>(
        &self,
        a: &DeviceView<'_, T>,
        b: &DeviceView<'_, T>,
        lambdas: &[f32],
        outs: &mut [DeviceViewMut<'_, T>],
    ) -> Result<()> {
        let n = a.len();
        check_multi_lerp(n, b.len(), lambdas, outs.iter().map(|o| o.len()))?;
        if n == 0 {
            return Ok(());
        }
        let s = &*self.stream;
        let (pa, _ga) = a.bytes.device_ptr(s);
        let (pb, _gb) = b.bytes.device_ptr(s);
        let (pa, pb, n64) = (DevPtr(pa), DevPtr(pb), n as u64);
        let name = format!("multi_lerp_{}", T::DTYPE.name());
        for (group, lams) in outs
            .chunks_mut(MAX_OUTPUTS)
            .zip(lambdas.chunks(MAX_OUTPUTS))
        {
            let mut params = MultiLerpParams::zeroed();
            params.k = group.len() as u32;
            let mut guards: Vec<SyncOnDrop<'_>> = Vec::with_capacity(group.len());
            for (k, o) in group.iter_mut().enumerate() {
                let (p, g) = o.bytes.device_ptr_mut(s);
                params.out[k] = p;
                params.lambda[k] = lams[k];
                guards.push(g);
            }
            let mut l = self.launch(&name)?;
            l.arg(&pa)?.arg(&pb)?.arg(&params)?.arg(&n64)?;
            l.run(elementwise_config(n64, vec_len::<T>(), self.sm_count))?;
            drop(guards);
        }
        Ok(())
    }

    /// `out = θ0 + Σ_j w_j (θ_j − θ0)` for up to [`MAX_MODELS`] models in one pass, accumulated
    /// in f32 in model order and rounded once, as `dawin_core::merge::task_arithmetic`.
    pub fn task_arithmetic<T: Param>(
        &self,
        base: &DeviceView<'_, T>,
        models: &[DeviceView<'_, T>],
        weights: &[f32],
        out: &mut DeviceViewMut<'_, T>,
    ) -> Result<()> {
        let n = base.len();
        check_task_arithmetic(n, models.iter().map(|m| m.len()), weights, out.len())?;
        if models.len() > MAX_MODELS {
            return Err(Error::arg(
                "models",
                format!(
                    "{} models: one task-arithmetic launch takes at most {MAX_MODELS}",
                    models.len()
                ),
            ));
        }
        if n == 0 {
            return Ok(());
        }
        let s = &*self.stream;
        let mut params = TaskArithParams::zeroed();
        let mut guards: Vec<SyncOnDrop<'_>> = Vec::with_capacity(models.len());
        for (j, (m, &w)) in models.iter().zip(weights).enumerate() {
            let (p, g) = m.bytes.device_ptr(s);
            params.model[j] = p;
            params.weight[j] = w;
            guards.push(g);
        }
        params.m = models.len() as u32;
        let (pbase, _gb) = base.bytes.device_ptr(s);
        let (po, _go) = out.bytes.device_ptr_mut(s);
        let (pbase, po, n64) = (DevPtr(pbase), DevPtr(po), n as u64);
        let mut l = self.launch(&format!("task_arith_{}", T::DTYPE.name()))?;
        l.arg(&pbase)?.arg(&params)?.arg(&po)?.arg(&n64)?;
        l.run(elementwise_config(n64, vec_len::<T>(), self.sm_count))?;
        drop(guards);
        Ok(())
    }

    /// `dst[i] = D(src[i])` (through f32, round to nearest even); a device-to-device copy when
    /// `S == D`. Same as `dawin_core::merge::cast`.
    pub fn cast<S: Param, D: Param>(
        &self,
        src: &DeviceView<'_, S>,
        dst: &mut DeviceViewMut<'_, D>,
    ) -> Result<()> {
        let n = src.len();
        check_len("dst", dst.len(), n)?;
        if n == 0 {
            return Ok(());
        }
        if S::DTYPE == D::DTYPE {
            return self
                .stream
                .memcpy_dtod(&src.bytes, &mut dst.bytes)
                .map_err(Error::driver("copying on the device"));
        }
        let s = &*self.stream;
        let (ps, _gs) = src.bytes.device_ptr(s);
        let (pd, _gd) = dst.bytes.device_ptr_mut(s);
        let (ps, pd, n64) = (DevPtr(ps), DevPtr(pd), n as u64);
        let mut l = self.launch(&format!("cast_{}_{}", S::DTYPE.name(), D::DTYPE.name()))?;
        l.arg(&ps)?.arg(&pd)?.arg(&n64)?;
        l.run(elementwise_config(n64, CAST_PACK, self.sm_count))
    }

    // -----------------------------------------------------------------------------------------
    // Row statistics.

    /// Per-row statistics of a row-major `[N, n_classes]` logits matrix at `temperature`, as
    /// `dawin_core::stats::row_stats` (one warp per row). A non-finite logit gives the error
    /// the CPU reference gives for the same matrix.
    pub fn row_stats(
        &self,
        logits: &DeviceView<'_, f32>,
        n_classes: usize,
        temperature: f32,
    ) -> Result<Vec<RowStats>> {
        let raw = self.row_stats_raw(logits, n_classes, temperature, None)?;
        raw.iter()
            .map(|r| r.to_row_stats())
            .collect::<Option<Vec<_>>>()
            .map_or_else(
                || Err(self.non_finite_error(logits, n_classes, temperature, None, &raw)),
                Ok,
            )
    }

    /// Cross-entropy against hard labels, `ce_i = lse_i − z_{i,y_i} / T`, as
    /// `dawin_core::stats::cross_entropy_hard`.
    pub fn cross_entropy(
        &self,
        logits: &DeviceView<'_, f32>,
        n_classes: usize,
        temperature: f32,
        labels: &[i64],
    ) -> Result<Vec<f32>> {
        let raw = self.row_stats_raw(logits, n_classes, temperature, Some(labels))?;
        if raw.iter().any(|r| r.bad_col != NO_BAD_COL) {
            return Err(self.non_finite_error(logits, n_classes, temperature, Some(labels), &raw));
        }
        Ok(raw.iter().map(|r| r.ce).collect())
    }

    fn row_stats_raw(
        &self,
        logits: &DeviceView<'_, f32>,
        n_classes: usize,
        temperature: f32,
        labels: Option<&[i64]>,
    ) -> Result<Vec<RowStatsRaw>> {
        let n_rows = check_logits(logits.len(), n_classes, temperature)?;
        if let Some(labels) = labels {
            check_labels(labels, n_rows, n_classes)?;
        }
        check_kernel_limits(n_rows, n_classes)?;
        let s = &*self.stream;
        let labels_dev: Option<CudaSlice<i64>> = match labels {
            Some(l) => Some(
                self.stream
                    .clone_htod(l)
                    .map_err(Error::driver("copying labels to the device"))?,
            ),
            None => None,
        };
        // SAFETY: written completely by the kernel (one struct per row) before it is read.
        let mut out = unsafe { self.stream.alloc::<u8>(n_rows * RowStatsRaw::SIZE) }
            .map_err(Error::driver("allocating row statistics"))?;
        {
            let (pz, _gz) = logits.bytes.device_ptr(s);
            let (pl, _gl) = match &labels_dev {
                Some(l) => {
                    let (p, g) = l.device_ptr(s);
                    (p, Some(g))
                }
                None => (0, None),
            };
            let (po, _go) = out.device_ptr_mut(s);
            let (pz, pl, po) = (DevPtr(pz), DevPtr(pl), DevPtr(po));
            let (rows, cols) = (n_rows as u32, n_classes as u32);
            let mut l = self.launch("row_stats_f32")?;
            l.arg(&pz)?.arg(&rows)?.arg(&cols)?.arg(&temperature)?;
            l.arg(&pl)?.arg(&po)?;
            l.run(row_stats_config(rows))?;
        }
        let mut host = vec![RowStatsRaw::zeroed(); n_rows];
        self.stream
            .memcpy_dtoh(&out, bytemuck::cast_slice_mut::<RowStatsRaw, u8>(&mut host))
            .map_err(Error::driver("copying row statistics from the device"))?;
        // Also the point after which the labels' host slice is no longer read.
        self.finish_host_copy("copying row statistics from the device")?;
        Ok(host)
    }

    /// The error for a matrix with a non-finite logit: the CPU reference's own error, computed
    /// on the downloaded matrix, so both paths fail the same way.
    fn non_finite_error(
        &self,
        logits: &DeviceView<'_, f32>,
        n_classes: usize,
        temperature: f32,
        labels: Option<&[i64]>,
        raw: &[RowStatsRaw],
    ) -> Error {
        let host = match self.download(logits) {
            Ok(h) => h,
            Err(e) => return e,
        };
        let cpu = match labels {
            None => dawin_core::stats::row_stats(&host, n_classes, temperature).map(|_| ()),
            Some(l) => {
                dawin_core::stats::cross_entropy_hard(&host, n_classes, temperature, l).map(|_| ())
            }
        };
        match cpu {
            Err(e) => Error::Core(e),
            Ok(()) => {
                let (row, r) = raw
                    .iter()
                    .enumerate()
                    .find(|(_, r)| r.bad_col != NO_BAD_COL)
                    .map(|(i, r)| (i, *r))
                    .unwrap_or((0, RowStatsRaw::zeroed()));
                Error::arg(
                    "logits",
                    format!(
                        "non-finite logit at row {row}, column {} (found on the GPU only)",
                        r.bad_col
                    ),
                )
            }
        }
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

/// The GPU kernel's own limit: rows and classes are 32-bit there.
fn check_kernel_limits(n_rows: usize, n_classes: usize) -> Result<()> {
    if n_rows > u32::MAX as usize || n_classes > u32::MAX as usize {
        return Err(Error::arg(
            "logits",
            format!("{n_rows} x {n_classes}: the GPU kernel takes at most 2^32 - 1 of each"),
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Kernel arguments, exactly the C types of the registry.

/// A device pointer argument (`const T*` / `T*` in C): 8 bytes.
#[repr(transparent)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct DevPtr(pub(crate) u64);
// SAFETY: a plain 8-byte integer, passed by value like a C pointer.
unsafe impl DeviceRepr for DevPtr {}

/// `struct MultiLerpParams` of merge.cu.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Zeroable)]
struct MultiLerpParams {
    out: [u64; MAX_OUTPUTS],
    lambda: [f32; MAX_OUTPUTS],
    k: u32,
    pad: u32,
}
// SAFETY: #[repr(C)], plain data, same layout as the C struct (size checked below and against
// the PTX by the registry tests).
unsafe impl DeviceRepr for MultiLerpParams {}

/// `struct TaskArithParams` of merge.cu.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Zeroable)]
struct TaskArithParams {
    model: [u64; MAX_MODELS],
    weight: [f32; MAX_MODELS],
    m: u32,
    pad: u32,
}
// SAFETY: as above.
unsafe impl DeviceRepr for TaskArithParams {}

pub(crate) trait KernelArg: DeviceRepr {
    const KIND: ArgKind;
}
impl KernelArg for DevPtr {
    const KIND: ArgKind = ArgKind::Ptr;
}
impl KernelArg for u32 {
    const KIND: ArgKind = ArgKind::U32;
}
impl KernelArg for u64 {
    const KIND: ArgKind = ArgKind::U64;
}
impl KernelArg for f32 {
    const KIND: ArgKind = ArgKind::F32;
}
impl KernelArg for MultiLerpParams {
    const KIND: ArgKind = MULTI_LERP_PARAMS;
}
impl KernelArg for TaskArithParams {
    const KIND: ArgKind = TASK_ARITH_PARAMS;
}

const fn struct_size(kind: ArgKind) -> usize {
    match kind {
        ArgKind::Struct { size, .. } => size,
        _ => 0,
    }
}
const _: () = assert!(std::mem::size_of::<MultiLerpParams>() == struct_size(MULTI_LERP_PARAMS));
const _: () = assert!(std::mem::size_of::<TaskArithParams>() == struct_size(TASK_ARITH_PARAMS));
const _: () = assert!(std::mem::align_of::<MultiLerpParams>() == 8);
const _: () = assert!(std::mem::align_of::<TaskArithParams>() == 8);

/// A launch whose arguments are checked, one by one, against the kernel's registered C
/// signature before anything reaches the driver.
pub(crate) struct Launch<'a> {
    sig: &'static KernelSig,
    builder: LaunchArgs<'a>,
    pushed: usize,
}

impl<'a> Launch<'a> {
    pub(crate) fn arg<A: KernelArg>(&mut self, value: &'a A) -> Result<&mut Self> {
        check_arg::<A>(self.sig, self.pushed)?;
        self.builder.arg(value);
        self.pushed += 1;
        Ok(self)
    }

    pub(crate) fn run(mut self, cfg: LaunchConfig) -> Result<()> {
        if self.pushed != self.sig.args.len() {
            return Err(Error::arg(
                "kernel arguments",
                format!(
                    "{} takes {} arguments, {} given",
                    self.sig.name,
                    self.sig.args.len(),
                    self.pushed
                ),
            ));
        }
        // SAFETY: the arguments match the kernel's C signature (checked above and in `arg`),
        // every pointer is a live device allocation of the length the kernel is told, and the
        // stream orders this launch after the writes of its inputs.
        unsafe { self.builder.launch(cfg) }
            .map(|_| ())
            .map_err(Error::driver(format!("launching {}", self.sig.name)))
    }
}

fn check_arg<A: KernelArg>(sig: &KernelSig, index: usize) -> Result<()> {
    let want = sig.args.get(index);
    let size_ok = match A::KIND {
        ArgKind::Struct { size, align, .. } => {
            std::mem::size_of::<A>() == size && std::mem::align_of::<A>() == align
        }
        ArgKind::U32 | ArgKind::F32 => std::mem::size_of::<A>() == 4,
        ArgKind::Ptr | ArgKind::U64 => std::mem::size_of::<A>() == 8,
    };
    if want != Some(&A::KIND) || !size_ok {
        return Err(Error::arg(
            "kernel arguments",
            format!(
                "argument {index} of {} is {:?} in `{}`, not {:?}",
                sig.name,
                want,
                sig.c_signature,
                A::KIND
            ),
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Row statistics as the kernel writes them.

const NO_BAD_COL: u32 = u32::MAX;

/// `struct RowStatsOut` of row_stats.cu (32 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct RowStatsRaw {
    pub entropy: f32,
    pub logsumexp: f32,
    pub max_logit: f32,
    pub argmax: u32,
    pub max_prob: f32,
    pub top1_minus_top2: f32,
    pub bad_col: u32,
    pub ce: f32,
}

impl RowStatsRaw {
    const SIZE: usize = std::mem::size_of::<RowStatsRaw>();

    /// `None` for a row with a non-finite logit.
    pub fn to_row_stats(self) -> Option<RowStats> {
        (self.bad_col == NO_BAD_COL).then_some(RowStats {
            entropy: self.entropy,
            logsumexp: self.logsumexp,
            max_logit: self.max_logit,
            argmax: self.argmax,
            max_prob: self.max_prob,
            top1_minus_top2: self.top1_minus_top2,
        })
    }
}
const _: () = assert!(RowStatsRaw::SIZE == 32);

// ---------------------------------------------------------------------------------------------
// Typed device buffers and views.

/// A device buffer of `len` elements of `T` (f32, f16 or bf16), made by [`Gpu::upload`] or
/// [`Gpu::zeros`].
pub struct DeviceVec<T: Param> {
    buf: CudaSlice<u8>,
    len: usize,
    _t: PhantomData<T>,
}

impl<T: Param> DeviceVec<T> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The whole buffer.
    pub fn view(&self) -> DeviceView<'_, T> {
        DeviceView::new(self.buf.slice(0..self.len * std::mem::size_of::<T>()))
    }

    /// The whole buffer, mutable.
    pub fn view_mut(&mut self) -> DeviceViewMut<'_, T> {
        let bytes = self.len * std::mem::size_of::<T>();
        DeviceViewMut::new(self.buf.slice_mut(0..bytes))
    }

    /// Elements `range`.
    pub fn slice(&self, range: Range<usize>) -> Result<DeviceView<'_, T>> {
        self.view().slice(range)
    }

    /// Elements `range`, mutable.
    pub fn slice_mut(&mut self, range: Range<usize>) -> Result<DeviceViewMut<'_, T>> {
        check_range(&range, self.len)?;
        let size = std::mem::size_of::<T>();
        Ok(DeviceViewMut::new(
            self.buf.slice_mut(range.start * size..range.end * size),
        ))
    }

    /// The underlying byte buffer.
    pub fn buffer(&self) -> &CudaSlice<u8> {
        &self.buf
    }
}

fn check_range(range: &Range<usize>, len: usize) -> Result<()> {
    if range.start > range.end || range.end > len {
        return Err(Error::arg(
            "range",
            format!("{range:?} is outside 0..{len}"),
        ));
    }
    Ok(())
}

/// A read-only view of device elements of `T` (like `&[T]`).
pub struct DeviceView<'a, T: Param> {
    bytes: CudaView<'a, u8>,
    _t: PhantomData<T>,
}

impl<'a, T: Param> DeviceView<'a, T> {
    pub(crate) fn new(bytes: CudaView<'a, u8>) -> Self {
        debug_assert_eq!(bytes.len() % std::mem::size_of::<T>(), 0);
        DeviceView {
            bytes,
            _t: PhantomData,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.bytes.len() / std::mem::size_of::<T>()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Element type.
    pub fn dtype(&self) -> DType {
        T::DTYPE
    }

    /// Elements `range` of this view.
    pub fn slice(&self, range: Range<usize>) -> Result<DeviceView<'a, T>> {
        check_range(&range, self.len())?;
        let size = std::mem::size_of::<T>();
        let v = self
            .bytes
            .try_slice(range.start * size..range.end * size)
            .ok_or_else(|| Error::arg("range", format!("{range:?} is outside the view")))?;
        Ok(DeviceView::new(v))
    }

    /// The bytes, as a cudarc view (for launching other kernels on them).
    pub fn as_bytes(&self) -> &CudaView<'a, u8> {
        &self.bytes
    }
}

/// A mutable view of device elements of `T` (like `&mut [T]`).
pub struct DeviceViewMut<'a, T: Param> {
    bytes: CudaViewMut<'a, u8>,
    _t: PhantomData<T>,
}

impl<'a, T: Param> DeviceViewMut<'a, T> {
    pub(crate) fn new(bytes: CudaViewMut<'a, u8>) -> Self {
        debug_assert_eq!(bytes.len() % std::mem::size_of::<T>(), 0);
        DeviceViewMut {
            bytes,
            _t: PhantomData,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.bytes.len() / std::mem::size_of::<T>()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// A read-only view of the same elements.
    pub fn as_view(&self) -> DeviceView<'_, T> {
        DeviceView::new(self.bytes.as_view())
    }

    /// The bytes, as a cudarc view.
    pub fn as_bytes_mut(&mut self) -> &mut CudaViewMut<'a, u8> {
        &mut self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elementwise_grid_covers_every_chunk_or_strides() {
        // ViT-B/32 size on an H100 (132 SMs): capped, the grid-stride loop covers the rest.
        let cfg = elementwise_config(88_000_000, vec_len::<u16>(), 132);
        assert_eq!(cfg.block_dim, (256, 1, 1));
        assert_eq!(cfg.grid_dim.0, 132 * 32);
        assert_eq!((vec_len::<f32>(), vec_len::<u16>()), (4, 8));
        // Small sizes: exactly enough blocks for one vector per thread.
        for per in [4u64, 8] {
            for n in [1u64, 7, 8, 9, 2047, 2048, 2049, 100_003] {
                let cfg = elementwise_config(n, per, 132);
                let threads = u64::from(cfg.grid_dim.0) * 256;
                assert!(threads * per >= n, "n = {n}");
                assert!(threads * per < n + 256 * per, "n = {n}: one block too many");
            }
        }
        assert_eq!(elementwise_config(0, 8, 0).grid_dim.0, 1);
    }

    #[test]
    fn row_stats_grid_gives_a_warp_per_row() {
        for n in [1u32, 7, 8, 9, 50_000] {
            let cfg = row_stats_config(n);
            let warps = cfg.grid_dim.0 * cfg.block_dim.0 / 32;
            assert!(warps >= n && warps < n + 8, "n = {n}");
        }
    }

    #[test]
    fn launch_arguments_are_checked_against_the_registry() {
        let (_, sig) = find_kernel("lerp_f16").unwrap();
        check_arg::<DevPtr>(sig, 0).unwrap();
        check_arg::<DevPtr>(sig, 1).unwrap();
        check_arg::<f32>(sig, 2).unwrap();
        check_arg::<DevPtr>(sig, 3).unwrap();
        check_arg::<u64>(sig, 4).unwrap();
        // A u32 length where the kernel takes u64, a pointer where it takes a float, one
        // argument too many: refused before the driver sees them.
        assert!(check_arg::<u32>(sig, 4).is_err());
        assert!(check_arg::<DevPtr>(sig, 2).is_err());
        assert!(check_arg::<u64>(sig, 5).is_err());
        let (_, sig) = find_kernel("multi_lerp_bf16").unwrap();
        check_arg::<MultiLerpParams>(sig, 2).unwrap();
        assert!(check_arg::<TaskArithParams>(sig, 2).is_err());
        let (_, sig) = find_kernel("task_arith_f32").unwrap();
        check_arg::<TaskArithParams>(sig, 1).unwrap();
        let (_, sig) = find_kernel("row_stats_f32").unwrap();
        for (i, ok) in [
            check_arg::<DevPtr>(sig, 0),
            check_arg::<u32>(sig, 1),
            check_arg::<u32>(sig, 2),
            check_arg::<f32>(sig, 3),
            check_arg::<DevPtr>(sig, 4),
            check_arg::<DevPtr>(sig, 5),
        ]
        .into_iter()
        .enumerate()
        {
            assert!(ok.is_ok(), "row_stats_f32 argument {i}");
        }
    }

    #[test]
    fn raw_row_stats_convert() {
        let r = RowStatsRaw {
            entropy: 0.5,
            logsumexp: 2.0,
            max_logit: 3.0,
            argmax: 4,
            max_prob: 0.75,
            top1_minus_top2: 0.5,
            bad_col: NO_BAD_COL,
            ce: f32::NAN,
        };
        let s = r.to_row_stats().unwrap();
        assert_eq!((s.entropy, s.logsumexp, s.max_logit), (0.5, 2.0, 3.0));
        assert_eq!((s.argmax, s.max_prob, s.top1_minus_top2), (4, 0.75, 0.5));
        assert!(RowStatsRaw { bad_col: 3, ..r }.to_row_stats().is_none());
    }

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
    fn kernel_limits_and_driver_versions() {
        check_kernel_limits(50_000, 1000).unwrap();
        assert!(check_kernel_limits(1 << 33, 2).is_err());
        assert_eq!(driver_version_string(12040), "12.4");
        assert_eq!(driver_version_string(12090), "12.9");
    }
}
