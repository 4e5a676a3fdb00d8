//! CPU reference merges, in the tensors' own dtype with `f32` arithmetic.
//!
//! * [`lerp`]: θ(λ) = (1 − λ)·θ0 + λ·θ1, per element `(1 - λ) * a + λ * b` in `f32`, rounded once.
//!   λ = 0 and λ = 1 copy θ0 and θ1 bit for bit.
//! * [`multi_lerp`]: K merged outputs for K coefficients from one pass over θ0 and θ1.
//! * [`task_arithmetic`]: θ = θ0 + Σ_j w_j (θ_j − θ0), evaluated as (1 − Σ_j w_j)·θ0 + Σ_j w_j·θ_j in `f32`.
//!
//! Slices are processed in parallel chunks (rayon); within a chunk, half-precision data are
//! widened to `f32` in blocks so the arithmetic vectorises. The whole-checkpoint versions
//! ([`lerp_state_dicts`], [`multi_lerp_state_dicts`], [`task_arithmetic_state_dicts`]) check the
//! checkpoints are compatible, merge every floating-point tensor (classification head included)
//! and copy integer tensors, which must be identical.
//!
//! Merges of whole models read parameter by parameter ([`ParamSource`]: in memory or from a
//! memory-mapped checkpoint, one pass over the M + 1 models):
//!
//! * [`task_arithmetic_params`]: θ0 + Σ_j w_j τ_j, τ_j = θ_j − θ0, parameter by parameter;
//! * [`ties_merge_params`] / [`ties_task_vector`]: TIES-merging, θ0 + s·τ_m with τ_m the
//!   trimmed, sign-elected disjoint mean of the task vectors;
//! * [`relative_distance`]: ‖θ − θ0‖₂ / ‖θ0‖₂, how far a model lies from its base.

use rayon::prelude::*;

mod params;
mod ties;

pub use params::{check_aligned, relative_distance, task_arithmetic_params, ParamSource};
pub use ties::{ties_merge_params, ties_task_vector};

use crate::dtype::{DType, Param};
use crate::error::{Error, Result};
use crate::state_dict::{OwnedTensor, StateDict, TensorView};

/// Elements per parallel task (256 KiB of f32).
const PAR_CHUNK: usize = 64 * 1024;
/// Elements widened to f32 at a time inside a task (fits in L1 with three buffers).
const BLOCK: usize = 1024;

fn check_len(name: &'static str, got: usize, want: usize) -> Result<()> {
    if got != want {
        return Err(Error::arg(
            name,
            format!("has {got} elements, expected {want}"),
        ));
    }
    Ok(())
}

fn check_lambda(name: &'static str, l: f32) -> Result<()> {
    if !l.is_finite() {
        return Err(Error::arg(name, format!("must be finite, got {l}")));
    }
    Ok(())
}

#[inline(always)]
fn lerp_f32(a: &[f32], b: &[f32], l: f32, out: &mut [f32]) {
    let m = 1.0 - l;
    for ((o, a), b) in out.iter_mut().zip(a).zip(b) {
        *o = m * *a + l * *b;
    }
}

#[inline(always)]
fn lerp_bf16(a: &[u16], b: &[u16], l: f32, out: &mut [u16]) {
    use crate::dtype::{bf16_bits_to_f32 as wide, f32_to_bf16_bits as narrow};
    let m = 1.0 - l;
    for ((o, a), b) in out.iter_mut().zip(a).zip(b) {
        *o = narrow(m * wide(*a) + l * wide(*b));
    }
}

/// The same loops compiled for AVX2 (chosen at run time). No FMA contraction happens in Rust, so
/// every path computes exactly `(1 - l) * a + l * b` with two roundings, like the scalar code.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx2")]
    pub unsafe fn lerp_f32(a: &[f32], b: &[f32], l: f32, out: &mut [f32]) {
        super::lerp_f32(a, b, l, out)
    }

    #[target_feature(enable = "avx2")]
    pub unsafe fn lerp_bf16(a: &[u16], b: &[u16], l: f32, out: &mut [u16]) {
        super::lerp_bf16(a, b, l, out)
    }

    /// f16 through the F16C conversions, 8 lanes at a time, scalar tail through `half`.
    #[target_feature(enable = "avx2,f16c")]
    pub unsafe fn lerp_f16(a: &[u16], b: &[u16], l: f32, out: &mut [u16]) {
        let n = out.len();
        let (vm, vl) = (_mm256_set1_ps(1.0 - l), _mm256_set1_ps(l));
        let mut i = 0;
        while i + 8 <= n {
            let va = _mm256_cvtph_ps(_mm_loadu_si128(a.as_ptr().add(i) as *const __m128i));
            let vb = _mm256_cvtph_ps(_mm_loadu_si128(b.as_ptr().add(i) as *const __m128i));
            let r = _mm256_add_ps(_mm256_mul_ps(vm, va), _mm256_mul_ps(vl, vb));
            let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(r);
            _mm_storeu_si128(out.as_mut_ptr().add(i) as *mut __m128i, h);
            i += 8;
        }
        let m = 1.0 - l;
        for j in i..n {
            let (x, y) = (
                half::f16::from_bits(a[j]).to_f32(),
                half::f16::from_bits(b[j]).to_f32(),
            );
            out[j] = half::f16::from_f32(m * x + l * y).to_bits();
        }
    }
}

/// One block of `out = (1 − λ)a + λb` in the fastest way the dtype and CPU allow; all paths give
/// bit-identical results.
fn lerp_block<T: Param>(a: &[T], b: &[T], l: f32, out: &mut [T]) {
    #[cfg(target_arch = "x86_64")]
    let avx2 = std::arch::is_x86_feature_detected!("avx2");
    #[cfg(not(target_arch = "x86_64"))]
    let avx2 = false;
    match T::DTYPE {
        DType::F32 => {
            let (a, b, o) = (
                bytemuck::cast_slice(a),
                bytemuck::cast_slice(b),
                bytemuck::cast_slice_mut(out),
            );
            #[cfg(target_arch = "x86_64")]
            if avx2 {
                // SAFETY: AVX2 is present (checked above).
                return unsafe { x86::lerp_f32(a, b, l, o) };
            }
            lerp_f32(a, b, l, o)
        }
        DType::BF16 => {
            let (a, b, o) = (
                bytemuck::cast_slice(a),
                bytemuck::cast_slice(b),
                bytemuck::cast_slice_mut(out),
            );
            #[cfg(target_arch = "x86_64")]
            if avx2 {
                // SAFETY: AVX2 is present (checked above).
                return unsafe { x86::lerp_bf16(a, b, l, o) };
            }
            lerp_bf16(a, b, l, o)
        }
        _ => {
            #[cfg(target_arch = "x86_64")]
            if T::DTYPE == DType::F16 && avx2 && std::arch::is_x86_feature_detected!("f16c") {
                let (a, b, o) = (
                    bytemuck::cast_slice(a),
                    bytemuck::cast_slice(b),
                    bytemuck::cast_slice_mut(out),
                );
                // SAFETY: AVX2 and F16C are present (checked above).
                return unsafe { x86::lerp_f16(a, b, l, o) };
            }
            let mut fa = [0.0f32; BLOCK];
            let mut fb = [0.0f32; BLOCK];
            let mut fo = [0.0f32; BLOCK];
            for ((o, a), b) in out
                .chunks_mut(BLOCK)
                .zip(a.chunks(BLOCK))
                .zip(b.chunks(BLOCK))
            {
                let n = o.len();
                T::slice_to_f32(a, &mut fa[..n]);
                T::slice_to_f32(b, &mut fb[..n]);
                lerp_f32(&fa[..n], &fb[..n], l, &mut fo[..n]);
                T::slice_from_f32(&fo[..n], o);
            }
        }
    }
}

/// `out = (1 − λ)·a + λ·b`, element-wise in `f32`, rounded once to `T`.
///
/// λ = 0 copies `a` and λ = 1 copies `b` exactly (bit for bit, `-0.0` and NaN payloads included).
/// λ outside [0, 1] extrapolates. Errors: length mismatch, non-finite λ.
pub fn lerp<T: Param>(a: &[T], b: &[T], lambda: f32, out: &mut [T]) -> Result<()> {
    check_len("b", b.len(), a.len())?;
    check_len("out", out.len(), a.len())?;
    check_lambda("lambda", lambda)?;
    out.par_chunks_mut(PAR_CHUNK)
        .zip(a.par_chunks(PAR_CHUNK).zip(b.par_chunks(PAR_CHUNK)))
        .for_each(|(o, (a, b))| lerp_exact_ends(a, b, lambda, o));
    Ok(())
}

/// [`lerp_block`] except that λ = 0 and λ = 1 copy `a` and `b` bit for bit.
fn lerp_exact_ends<T: Param>(a: &[T], b: &[T], l: f32, out: &mut [T]) {
    if l == 0.0 {
        out.copy_from_slice(a);
    } else if l == 1.0 {
        out.copy_from_slice(b);
    } else {
        lerp_block(a, b, l, out);
    }
}

/// K outputs from one pass over `a` and `b`: `outs[k] = (1 − λ_k)·a + λ_k·b`, with exactly the
/// arithmetic of [`lerp`] (so each output equals a separate `lerp`). `a` and `b` are streamed from
/// memory once, in cache-sized blocks that serve all K outputs.
pub fn multi_lerp<T: Param>(
    a: &[T],
    b: &[T],
    lambdas: &[f32],
    outs: &mut [&mut [T]],
) -> Result<()> {
    check_len("b", b.len(), a.len())?;
    if outs.len() != lambdas.len() {
        return Err(Error::arg(
            "outs",
            format!("{} outputs for {} coefficients", outs.len(), lambdas.len()),
        ));
    }
    for (o, &l) in outs.iter().zip(lambdas) {
        check_len("outs[k]", o.len(), a.len())?;
        check_lambda("lambdas", l)?;
    }
    if lambdas.is_empty() || a.is_empty() {
        return Ok(());
    }
    // Split every output into the same chunks so one task reads a chunk of a and b once and
    // writes that chunk of all K outputs.
    let mut per_chunk: Vec<Vec<&mut [T]>> = (0..a.len().div_ceil(PAR_CHUNK))
        .map(|_| Vec::new())
        .collect();
    for o in outs.iter_mut() {
        for (c, piece) in o.chunks_mut(PAR_CHUNK).enumerate() {
            per_chunk[c].push(piece);
        }
    }
    per_chunk
        .into_par_iter()
        .zip(a.par_chunks(PAR_CHUNK).zip(b.par_chunks(PAR_CHUNK)))
        .for_each(|(mut outs, (a, b))| {
            for start in (0..a.len()).step_by(BLOCK) {
                let end = (start + BLOCK).min(a.len());
                let (a, b) = (&a[start..end], &b[start..end]);
                for (o, &l) in outs.iter_mut().zip(lambdas) {
                    lerp_exact_ends(a, b, l, &mut o[start..end]);
                }
            }
        });
    Ok(())
}

/// Task arithmetic: `out = θ0 + Σ_j w_j (θ_j − θ0)`, evaluated in `f32` in the equivalent form
/// `(1 − Σ_j w_j)·θ0 + Σ_j w_j·θ_j` (sums in model order:
/// `c0 = 1 − (w_1 + … + w_M); acc = c0 * θ0; for j { acc += w_j * θ_j }`), rounded once to `T`.
///
/// This form has no cancellation: with one model and w = 1 the result is that model exactly, and
/// with all weights 0 it is θ0. Errors: no model, weight count or length mismatch, non-finite weights.
pub fn task_arithmetic<T: Param>(
    base: &[T],
    models: &[&[T]],
    weights: &[f32],
    out: &mut [T],
) -> Result<()> {
    if models.is_empty() {
        return Err(Error::arg(
            "models",
            "at least one fine-tuned model is required",
        ));
    }
    if weights.len() != models.len() {
        return Err(Error::arg(
            "weights",
            format!("{} weights for {} models", weights.len(), models.len()),
        ));
    }
    for m in models {
        check_len("models[j]", m.len(), base.len())?;
    }
    for &w in weights {
        check_lambda("weights", w)?;
    }
    check_len("out", out.len(), base.len())?;
    let c0 = 1.0 - weights.iter().fold(0.0f32, |s, &w| s + w);
    out.par_chunks_mut(PAR_CHUNK)
        .enumerate()
        .for_each(|(c, o)| {
            let start = c * PAR_CHUNK;
            let mut acc = [0.0f32; BLOCK];
            let mut f0 = [0.0f32; BLOCK];
            let mut fj = [0.0f32; BLOCK];
            for (bi, o) in o.chunks_mut(BLOCK).enumerate() {
                let s = start + bi * BLOCK;
                let n = o.len();
                T::slice_to_f32(&base[s..s + n], &mut f0[..n]);
                for i in 0..n {
                    acc[i] = c0 * f0[i];
                }
                for (m, &w) in models.iter().zip(weights) {
                    T::slice_to_f32(&m[s..s + n], &mut fj[..n]);
                    for i in 0..n {
                        acc[i] += w * fj[i];
                    }
                }
                T::slice_from_f32(&acc[..n], o);
            }
        });
    Ok(())
}

/// `dst[i] = D::from_f32(src[i].to_f32())`: a dtype cast through `f32`.
pub fn cast<S: Param, D: Param>(src: &[S], dst: &mut [D]) -> Result<()> {
    check_len("dst", dst.len(), src.len())?;
    dst.par_chunks_mut(PAR_CHUNK)
        .zip(src.par_chunks(PAR_CHUNK))
        .for_each(|(d, s)| {
            let mut f = [0.0f32; BLOCK];
            for (d, s) in d.chunks_mut(BLOCK).zip(s.chunks(BLOCK)) {
                let n = d.len();
                S::slice_to_f32(s, &mut f[..n]);
                D::slice_from_f32(&f[..n], d);
            }
        });
    Ok(())
}

/// A merge over one tensor's data in any parameter dtype: `inputs` are the checkpoints' slices,
/// `outs` the merged outputs.
trait MergeOp: Sync {
    fn apply<T: Param>(&self, inputs: &[&[T]], outs: &mut [&mut [T]]) -> Result<()>;
}

struct MultiLerp<'a>(&'a [f32]);

impl MergeOp for MultiLerp<'_> {
    fn apply<T: Param>(&self, x: &[&[T]], outs: &mut [&mut [T]]) -> Result<()> {
        multi_lerp(x[0], x[1], self.0, outs)
    }
}

struct TaskArithmetic<'a>(&'a [f32]);

impl MergeOp for TaskArithmetic<'_> {
    fn apply<T: Param>(&self, x: &[&[T]], outs: &mut [&mut [T]]) -> Result<()> {
        task_arithmetic(x[0], &x[1..], self.0, outs[0])
    }
}

/// Runs `op` with the tensors' bytes viewed as `T` (copying only when unaligned) and returns the
/// bytes of its `n_out` outputs.
fn with_typed<T: Param>(
    views: &[TensorView<'_>],
    n_out: usize,
    op: &impl MergeOp,
) -> Result<Vec<Vec<u8>>> {
    let cows: Vec<_> = views
        .iter()
        .map(|v| v.as_cow::<T>().expect("dtype checked by the caller"))
        .collect();
    let slices: Vec<&[T]> = cows.iter().map(|c| c.as_ref()).collect();
    let n = views[0].numel();
    let mut outs: Vec<Vec<T>> = (0..n_out).map(|_| vec![T::from_f32(0.0); n]).collect();
    {
        let mut refs: Vec<&mut [T]> = outs.iter_mut().map(|o| o.as_mut_slice()).collect();
        op.apply(&slices, &mut refs)?;
    }
    Ok(outs
        .into_iter()
        .map(|o| bytemuck::cast_slice(&o).to_vec())
        .collect())
}

/// Merges one tensor across checkpoints. Float tensors go through `op` in their own dtype;
/// other tensors must be byte-identical across `views` and are copied to every output.
fn merge_tensor(
    views: &[TensorView<'_>],
    n_out: usize,
    op: &impl MergeOp,
) -> Result<Vec<OwnedTensor>> {
    let v0 = &views[0];
    let bytes = match v0.dtype {
        DType::F32 => with_typed::<f32>(views, n_out, op)?,
        DType::F16 => with_typed::<half::f16>(views, n_out, op)?,
        DType::BF16 => with_typed::<half::bf16>(views, n_out, op)?,
        _ => {
            if let Some(v) = views.iter().find(|v| v.bytes != v0.bytes) {
                return Err(Error::Mismatch(format!(
                    "non-floating-point tensor `{}` ({}) differs between checkpoints and cannot be interpolated",
                    v.name, v.dtype
                )));
            }
            vec![v0.bytes.to_vec(); n_out]
        }
    };
    Ok(bytes
        .into_iter()
        .map(|bytes| OwnedTensor {
            name: v0.name.to_string(),
            dtype: v0.dtype,
            shape: v0.shape.to_vec(),
            bytes,
        })
        .collect())
}

/// Merges whole checkpoints tensor by tensor: `outs[k]` is the k-th merged checkpoint.
fn merge_state_dicts(
    dicts: &[&StateDict],
    n_out: usize,
    op: &impl MergeOp,
) -> Result<Vec<Vec<OwnedTensor>>> {
    for d in &dicts[1..] {
        dicts[0].check_compatible(d)?;
    }
    let mut outs: Vec<Vec<OwnedTensor>> = (0..n_out)
        .map(|_| Vec::with_capacity(dicts[0].len()))
        .collect();
    for name in dicts[0].names() {
        let views = dicts
            .iter()
            .map(|d| d.tensor(name))
            .collect::<Result<Vec<_>>>()?;
        for (k, t) in merge_tensor(&views, n_out, op)?.into_iter().enumerate() {
            outs[k].push(t);
        }
    }
    Ok(outs)
}

/// θ(λ) = (1 − λ)·θ0 + λ·θ1 for every floating-point tensor of two compatible checkpoints
/// (integer tensors must be identical and are copied). λ must lie in [0, 1].
pub fn lerp_state_dicts(
    theta0: &StateDict,
    theta1: &StateDict,
    lambda: f32,
) -> Result<Vec<OwnedTensor>> {
    Ok(multi_lerp_state_dicts(theta0, theta1, &[lambda])?.remove(0))
}

/// K merged checkpoints θ(λ_k) from one pass over θ0 and θ1 (see [`multi_lerp`]).
/// Every λ_k must lie in [0, 1].
pub fn multi_lerp_state_dicts(
    theta0: &StateDict,
    theta1: &StateDict,
    lambdas: &[f32],
) -> Result<Vec<Vec<OwnedTensor>>> {
    for &l in lambdas {
        if !(0.0..=1.0).contains(&l) {
            return Err(Error::arg("lambda", format!("must lie in [0, 1], got {l}")));
        }
    }
    merge_state_dicts(&[theta0, theta1], lambdas.len(), &MultiLerp(lambdas))
}

/// θ0 + Σ_j w_j (θ_j − θ0) over whole checkpoints (see [`task_arithmetic`]).
pub fn task_arithmetic_state_dicts(
    base: &StateDict,
    models: &[&StateDict],
    weights: &[f32],
) -> Result<Vec<OwnedTensor>> {
    if models.is_empty() {
        return Err(Error::arg(
            "models",
            "at least one fine-tuned model is required",
        ));
    }
    if weights.len() != models.len() {
        return Err(Error::arg(
            "weights",
            format!("{} weights for {} models", weights.len(), models.len()),
        ));
    }
    let mut dicts = vec![base];
    dicts.extend_from_slice(models);
    Ok(merge_state_dicts(&dicts, 1, &TaskArithmetic(weights))?.remove(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::{bf16, f16};

    /// Every vectorised path equals the scalar formula `T::from_f32((1 − λ)a + λb)` bit for bit,
    /// on a length that is no multiple of any vector width and across chunk boundaries.
    fn check<T: Param>() {
        let n = PAR_CHUNK + 3 * BLOCK + 13;
        let mut x = 0x9e37_79b9u32;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x as f32 / u32::MAX as f32 - 0.5) * 200.0
        };
        let a: Vec<T> = (0..n).map(|_| T::from_f32(next())).collect();
        let b: Vec<T> = (0..n).map(|_| T::from_f32(next())).collect();
        for l in [0.37f32, 0.5, 1e-3, 0.999, -0.25, 1.5] {
            let mut out = vec![T::from_f32(f32::NAN); n];
            lerp(&a, &b, l, &mut out).unwrap();
            for i in 0..n {
                let want = T::from_f32((1.0 - l) * a[i].to_f32() + l * b[i].to_f32());
                assert_eq!(out[i], want, "{:?} λ={l} i={i}", T::DTYPE);
            }
        }
    }

    #[test]
    fn vectorised_lerp_equals_scalar_formula() {
        check::<f32>();
        check::<f16>();
        check::<bf16>();
    }
}
