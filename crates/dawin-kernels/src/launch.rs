//! Launching a kernel: the arguments checked one by one against the kernel's registered C
//! signature ([`crate::source`]), and the launch configurations.

use crate::buffer::{DeviceView, DeviceViewMut};
use crate::device::Gpu;
use crate::error::{Error, Result};
use crate::source::{find_kernel, ArgKind, KernelSig};
use cudarc::driver::{
    CudaFunction, CudaStream, DevicePtr, DevicePtrMut, DeviceRepr, LaunchArgs, LaunchConfig,
    PushKernelArg, SyncOnDrop,
};
use dawin_core::Param;

/// Threads per block of the element-wise kernels.
pub(crate) const ELEMENTWISE_THREADS: u32 = 256;
/// Elements per thread and grid-stride step of the cast kernels (`CAST_PACK` in merge.cu); the
/// other element-wise kernels take one 16-byte vector (`Vec<D>`), [`vec_len`] elements.
pub(crate) const CAST_PACK: u64 = 8;

/// Elements of `T` in one 16-byte vector.
pub(crate) const fn vec_len<T>() -> u64 {
    (16 / std::mem::size_of::<T>()) as u64
}
/// Rows per block of `row_stats_f32` (one warp per row).
pub(crate) const ROWS_PER_BLOCK: u32 = 8;

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

impl Gpu {
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
}

/// A device pointer argument (`const T*` / `T*` in C): 8 bytes.
#[repr(transparent)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct DevPtr(pub(crate) u64);
// SAFETY: a plain 8-byte integer, passed by value like a C pointer.
unsafe impl DeviceRepr for DevPtr {}

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

pub(crate) const fn struct_size(kind: ArgKind) -> usize {
    match kind {
        ArgKind::Struct { size, .. } => size,
        _ => 0,
    }
}

/// The device addresses of the views a launch reads and writes, with the guards that keep
/// cudarc's stream ordering until the launch is queued (dropped after it).
pub(crate) struct Addresses<'a> {
    stream: &'a CudaStream,
    guards: Vec<SyncOnDrop<'a>>,
}

impl<'a> Addresses<'a> {
    pub(crate) fn new(gpu: &'a Gpu) -> Self {
        Addresses {
            stream: &gpu.stream,
            guards: Vec::new(),
        }
    }

    /// The address of a view's first element.
    pub(crate) fn of<T: Param>(&mut self, v: &'a DeviceView<'_, T>) -> u64 {
        let (p, g) = v.bytes.device_ptr(self.stream);
        self.guards.push(g);
        p
    }

    /// The address of a mutable view's first element.
    pub(crate) fn of_mut<T: Param>(&mut self, v: &'a mut DeviceViewMut<'_, T>) -> u64 {
        let (p, g) = v.bytes.device_ptr_mut(self.stream);
        self.guards.push(g);
        p
    }
}

/// `v` as a kernel's `u32`, or an error naming the argument.
pub(crate) fn to_u32(arg: &'static str, v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::arg(arg, format!("{v} exceeds the kernel's 32-bit range")))
}

/// `cond`, or an [`Error::InvalidArgument`] naming `arg`.
pub(crate) fn ensure(cond: bool, arg: &'static str, msg: impl FnOnce() -> String) -> Result<()> {
    if cond {
        Ok(())
    } else {
        Err(Error::arg(arg, msg()))
    }
}

/// A view of `have` elements where the shape needs `need`.
pub(crate) fn ensure_len(arg: &'static str, have: usize, need: usize) -> Result<()> {
    ensure(have >= need, arg, || {
        format!("{have} elements, the shape needs {need}")
    })
}

/// A device address that must be 16-byte aligned (16-byte vector loads).
pub(crate) fn ensure_aligned16(arg: &'static str, addr: u64) -> Result<()> {
    ensure(addr.is_multiple_of(16), arg, || {
        format!("address {addr:#x} is not 16-byte aligned")
    })
}

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

pub(crate) fn check_arg<A: KernelArg>(sig: &KernelSig, index: usize) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merge::{MultiLerpParams, TaskArithParams};

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
}
