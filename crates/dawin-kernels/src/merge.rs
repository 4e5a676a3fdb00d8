//! The merge kernels of `kernels/merge.cu` on device views: lerp, multi-lerp, task arithmetic
//! and casts, each computing exactly what its CPU reference in `dawin_core::merge` computes.

use crate::buffer::{DeviceView, DeviceViewMut};
use crate::checks::{check_len, check_lerp, check_multi_lerp, check_task_arithmetic};
use crate::device::Gpu;
use crate::error::{Error, Result};
use crate::launch::{elementwise_config, struct_size, vec_len, DevPtr, KernelArg, CAST_PACK};
use crate::source::{ArgKind, MAX_MODELS, MAX_OUTPUTS, MULTI_LERP_PARAMS, TASK_ARITH_PARAMS};
use bytemuck::Zeroable;
use cudarc::driver::{DevicePtr, DevicePtrMut, DeviceRepr, SyncOnDrop};
use dawin_core::Param;

impl Gpu {
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
}

/// `struct MultiLerpParams` of merge.cu.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Zeroable)]
pub(crate) struct MultiLerpParams {
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
pub(crate) struct TaskArithParams {
    model: [u64; MAX_MODELS],
    weight: [f32; MAX_MODELS],
    m: u32,
    pad: u32,
}
// SAFETY: as above.
unsafe impl DeviceRepr for TaskArithParams {}

impl KernelArg for MultiLerpParams {
    const KIND: ArgKind = MULTI_LERP_PARAMS;
}
impl KernelArg for TaskArithParams {
    const KIND: ArgKind = TASK_ARITH_PARAMS;
}

const _: () = assert!(std::mem::size_of::<MultiLerpParams>() == struct_size(MULTI_LERP_PARAMS));
const _: () = assert!(std::mem::size_of::<TaskArithParams>() == struct_size(TASK_ARITH_PARAMS));
const _: () = assert!(std::mem::align_of::<MultiLerpParams>() == 8);
const _: () = assert!(std::mem::align_of::<TaskArithParams>() == 8);
