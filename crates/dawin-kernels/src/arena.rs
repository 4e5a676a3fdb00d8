//! [`DeviceArena`]: all tensors of a checkpoint in one device buffer, and whole-model merges
//! as single launches.

use crate::buffer::{DeviceView, DeviceViewMut};
use crate::device::Gpu;
use crate::error::{Error, Result};
use crate::layout::{state_dict_dtype, state_dict_layout, tensor_bytes_as, ArenaLayout, HostArena};
use cudarc::driver::CudaSlice;
use dawin_core::{DType, Param, StateDict};
use half::{bf16, f16};

/// A parameter arena on the device: one buffer of `layout.size_bytes()` bytes, every tensor at
/// a 256-byte aligned offset, the gaps zero. A merge of two arenas is one launch over the whole
/// buffer, and a forward pass can read its weights straight from the arena a merge just wrote
/// ([`DeviceArena::tensor`], [`DeviceArena::tensor_at`]).
pub struct DeviceArena {
    layout: ArenaLayout,
    buf: CudaSlice<u8>,
}

impl DeviceArena {
    /// A zero-filled arena.
    pub fn zeros(gpu: &Gpu, layout: ArenaLayout) -> Result<DeviceArena> {
        // A zero-sized arena keeps a 1-byte buffer so that it has an address.
        let buf = gpu
            .stream()
            .alloc_zeros::<u8>(layout.size_bytes().max(1))
            .map_err(Error::driver(format!(
                "allocating an arena of {} bytes",
                layout.size_bytes()
            )))?;
        Ok(DeviceArena { layout, buf })
    }

    /// Copies a host arena to the device.
    pub fn upload(gpu: &Gpu, host: &HostArena) -> Result<DeviceArena> {
        let mut arena = DeviceArena::zeros(gpu, host.layout().clone())?;
        if !host.bytes().is_empty() {
            let mut view = arena.buf.slice_mut(0..host.bytes().len());
            gpu.stream()
                .memcpy_htod(host.bytes(), &mut view)
                .map_err(Error::driver("copying an arena to the device"))?;
            // The caller may free `host` as soon as this returns (see Gpu::finish_host_copy).
            gpu.finish_host_copy("copying an arena to the device")?;
        }
        Ok(arena)
    }

    /// Uploads the parameter tensors (f32, f16, bf16, in name order; integer tensors are left
    /// out, see [`crate::param_names`]) of a state dict tensor by tensor, converted to `dtype` on
    /// the host when needed; `None` keeps the dtype the tensors share (mixed dtypes are then an
    /// error naming the tensor).
    pub fn from_state_dict(gpu: &Gpu, sd: &StateDict, dtype: Option<DType>) -> Result<DeviceArena> {
        let dtype = state_dict_dtype(sd, dtype)?;
        let layout = state_dict_layout(sd, dtype)?;
        let mut arena = DeviceArena::zeros(gpu, layout)?;
        let size = dtype.size();
        for e in arena.layout.entries().to_vec() {
            if e.len == 0 {
                continue;
            }
            let bytes = tensor_bytes_as(sd, &e.name, dtype)?;
            let mut view = arena
                .buf
                .slice_mut(e.offset * size..(e.offset + e.len) * size);
            gpu.stream()
                .memcpy_htod(&bytes[..], &mut view)
                .map_err(Error::driver(format!(
                    "copying tensor `{}` of {} to the device",
                    e.name,
                    sd.path().display()
                )))?;
            // `bytes` (a converted copy, or the caller's memory map) is dropped below.
            gpu.finish_host_copy("copying a tensor to the device")?;
        }
        Ok(arena)
    }

    /// Packs host tensors (name, shape, data) into a device arena.
    pub fn from_slices<T: Param>(
        gpu: &Gpu,
        tensors: &[(&str, &[usize], &[T])],
    ) -> Result<DeviceArena> {
        DeviceArena::upload(gpu, &HostArena::from_slices(tensors)?)
    }

    /// Copies the arena back to the host.
    pub fn to_host(&self, gpu: &Gpu) -> Result<HostArena> {
        let n = self.layout.size_bytes();
        let mut bytes = vec![0u8; n];
        if n > 0 {
            gpu.stream()
                .memcpy_dtoh(&self.buf.slice(0..n), &mut bytes[..])
                .map_err(Error::driver("copying an arena from the device"))?;
            gpu.finish_host_copy("copying an arena from the device")?;
        }
        HostArena::from_bytes(self.layout.clone(), &bytes)
    }

    /// The offset table.
    pub fn layout(&self) -> &ArenaLayout {
        &self.layout
    }

    fn check_dtype<T: Param>(&self) -> Result<()> {
        if T::DTYPE != self.layout.dtype() {
            return Err(Error::arg(
                "T",
                format!(
                    "the arena holds {}, not {}",
                    self.layout.dtype().name(),
                    T::DTYPE.name()
                ),
            ));
        }
        Ok(())
    }

    /// The whole buffer as elements, padding included (what whole-model merges run over).
    pub fn view<T: Param>(&self) -> Result<DeviceView<'_, T>> {
        self.check_dtype::<T>()?;
        Ok(DeviceView::new(self.buf.slice(0..self.layout.size_bytes())))
    }

    /// The whole buffer as elements, mutable.
    pub fn view_mut<T: Param>(&mut self) -> Result<DeviceViewMut<'_, T>> {
        self.check_dtype::<T>()?;
        let n = self.layout.size_bytes();
        Ok(DeviceViewMut::new(self.buf.slice_mut(0..n)))
    }

    /// One tensor, typed (its first element is 256-byte aligned).
    pub fn tensor<T: Param>(&self, name: &str) -> Result<DeviceView<'_, T>> {
        self.check_dtype::<T>()?;
        let e = self.layout.entry(name)?;
        let size = std::mem::size_of::<T>();
        Ok(DeviceView::new(
            self.buf.slice(e.offset * size..(e.offset + e.len) * size),
        ))
    }

    /// Tensor `index` of the layout ([`ArenaLayout::entries`] order), typed.
    pub fn tensor_at<T: Param>(&self, index: usize) -> Result<DeviceView<'_, T>> {
        self.check_dtype::<T>()?;
        let e = self.layout.entries().get(index).ok_or_else(|| {
            Error::arg(
                "index",
                format!(
                    "tensor {index} of an arena of {}",
                    self.layout.entries().len()
                ),
            )
        })?;
        let size = std::mem::size_of::<T>();
        Ok(DeviceView::new(
            self.buf.slice(e.offset * size..(e.offset + e.len) * size),
        ))
    }
}

/// Calls `$body` with `$T` bound to the element type of `$dtype`.
macro_rules! with_param_type {
    ($dtype:expr, $T:ident => $body:expr) => {
        match $dtype {
            DType::F32 => {
                type $T = f32;
                $body
            }
            DType::F16 => {
                type $T = f16;
                $body
            }
            DType::BF16 => {
                type $T = bf16;
                $body
            }
            other => Err(Error::arg(
                "dtype",
                format!("{} is not a parameter dtype", other.name()),
            )),
        }
    };
}

impl Gpu {
    /// Whole-model lerp, `out = (1 − λ)·a + λ·b` over every tensor: one launch over the arena
    /// buffers. The arenas must hold the same tensors in the same dtype.
    pub fn lerp_arena(
        &self,
        a: &DeviceArena,
        b: &DeviceArena,
        lambda: f32,
        out: &mut DeviceArena,
    ) -> Result<()> {
        a.layout.check_same(&b.layout, "lerp: b")?;
        a.layout.check_same(&out.layout, "lerp: out")?;
        with_param_type!(a.layout.dtype(), T => {
            self.lerp::<T>(&a.view()?, &b.view()?, lambda, &mut out.view_mut()?)
        })
    }

    /// Whole-model multi-lerp: K merged models from one read of `a` and `b`.
    pub fn multi_lerp_arena(
        &self,
        a: &DeviceArena,
        b: &DeviceArena,
        lambdas: &[f32],
        outs: &mut [&mut DeviceArena],
    ) -> Result<()> {
        a.layout.check_same(&b.layout, "multi_lerp: b")?;
        for (k, o) in outs.iter().enumerate() {
            a.layout
                .check_same(&o.layout, &format!("multi_lerp: output {k}"))?;
        }
        with_param_type!(a.layout.dtype(), T => {
            let mut views = outs
                .iter_mut()
                .map(|o| o.view_mut::<T>())
                .collect::<Result<Vec<_>>>()?;
            self.multi_lerp::<T>(&a.view()?, &b.view()?, lambdas, &mut views)
        })
    }

    /// Whole-model task arithmetic, `out = θ0 + Σ_j w_j (θ_j − θ0)`, one launch.
    pub fn task_arithmetic_arena(
        &self,
        base: &DeviceArena,
        models: &[&DeviceArena],
        weights: &[f32],
        out: &mut DeviceArena,
    ) -> Result<()> {
        for (j, m) in models.iter().enumerate() {
            base.layout
                .check_same(&m.layout, &format!("task_arithmetic: model {j}"))?;
        }
        base.layout
            .check_same(&out.layout, "task_arithmetic: out")?;
        with_param_type!(base.layout.dtype(), T => {
            let views = models
                .iter()
                .map(|m| m.view::<T>())
                .collect::<Result<Vec<_>>>()?;
            self.task_arithmetic::<T>(&base.view()?, &views, weights, &mut out.view_mut()?)
        })
    }

    /// Casts every tensor of `src` into `dst`, an arena of the same tensors in another dtype
    /// (e.g. `DeviceArena::zeros(gpu, src.layout().with_dtype(d)?)`): one launch over the whole
    /// buffer, since element offsets do not depend on the dtype.
    pub fn cast_arena(&self, src: &DeviceArena, dst: &mut DeviceArena) -> Result<()> {
        src.layout.check_same_tensors(&dst.layout, "cast: dst")?;
        with_param_type!(src.layout.dtype(), S => {
            with_param_type!(dst.layout.dtype(), D => {
                self.cast::<S, D>(&src.view()?, &mut dst.view_mut()?)
            })
        })
    }
}
