//! Argument checks of the CUDA forward and merges (no GPU needed), and the host side of a
//! model's parameter arena.

use dawin_kernels::source::MAX_SETS;
use dawin_kernels::{HostArena, Param, MAX_HEAD_DIM};
use half::{bf16, f16};

use super::plan::patch_dim_padded;
use super::{CudaError, CudaResult, Precision};
use crate::config::VitConfig;
use crate::params::{Module, ParamKey, ParamList, Part};
use crate::weights::ClipWeights;

pub(super) fn cfg_err(msg: String) -> CudaError {
    CudaError::Vit(crate::Error::Config(msg))
}

pub(super) fn arg_err(arg: &'static str, msg: String) -> CudaError {
    CudaError::Vit(crate::Error::Argument { arg, msg })
}

/// Checks that the kernels can run `cfg` (see the module docs); no GPU needed.
pub fn check_config(cfg: &VitConfig) -> CudaResult<()> {
    cfg.validate()?;
    for (name, v) in [
        ("width", cfg.width),
        ("mlp_dim", cfg.mlp_dim),
        ("embed_dim", cfg.embed_dim),
    ] {
        if !v.is_multiple_of(8) {
            return Err(cfg_err(format!(
                "{name} = {v}: the CUDA forward needs a multiple of 8"
            )));
        }
    }
    let hd = cfg.head_dim();
    if hd == 0 || hd > MAX_HEAD_DIM {
        return Err(cfg_err(format!(
            "heads = {}: head dimension {hd} (width / heads) is above the {MAX_HEAD_DIM} the \
             CUDA attention kernels support",
            cfg.heads
        )));
    }
    Ok(())
}

/// The arena of one model: `(name, shape, values)` in f32, converted by the caller: every
/// tensor of the parameter list in list order, named as [`crate::ParamDef::name`] says, the patch
/// embedding's columns padded with zeros from `3P²` to `K'`.
pub(super) fn arena_tensors(
    cfg: &VitConfig,
    w: &ClipWeights,
) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let (pd, kp) = (cfg.patch_dim(), patch_dim_padded(cfg));
    ParamList::new(cfg)
        .iter()
        .zip(w.params())
        .map(|(def, data)| {
            if def.key == ParamKey::new(Module::PatchEmbedding, Part::Weight) {
                let mut conv = vec![0.0f32; def.shape[0] * kp];
                for (o, r) in conv.chunks_mut(kp).zip(data.chunks(pd)) {
                    o[..pd].copy_from_slice(r);
                }
                (def.name(), vec![def.shape[0], kp], conv)
            } else {
                (def.name(), def.shape.clone(), data.to_vec())
            }
        })
        .collect()
}

pub(super) fn host_arena<T: Param>(
    tensors: &[(String, Vec<usize>, Vec<f32>)],
    conv: fn(f32) -> T,
) -> CudaResult<HostArena> {
    let converted: Vec<Vec<T>> = tensors
        .iter()
        .map(|(_, _, v)| v.iter().map(|&x| conv(x)).collect())
        .collect();
    let refs: Vec<(&str, &[usize], &[T])> = tensors
        .iter()
        .zip(&converted)
        .map(|((n, s, _), c)| (n.as_str(), s.as_slice(), c.as_slice()))
        .collect();
    Ok(HostArena::from_slices(&refs)?)
}

/// The largest batch one forward takes (32-bit element indices of the biggest activation).
pub(super) fn check_batch(cfg: &VitConfig, batch: usize) -> CudaResult<()> {
    let rows = batch * cfg.num_tokens();
    if rows > u32::MAX as usize / (4 * cfg.width.max(cfg.mlp_dim)) {
        return Err(arg_err(
            "batch",
            format!("{batch} images are too many for one forward"),
        ));
    }
    Ok(())
}

/// Checks the arguments of [`super::CudaVit::merge_into`] for a `CudaVit` of `n` models; no GPU
/// needed.
pub fn check_merge(
    n: usize,
    base: usize,
    models: &[usize],
    weights: &[f32],
    out: usize,
) -> CudaResult<()> {
    let in_range = |arg: &'static str, i: usize| {
        if i < n {
            Ok(())
        } else {
            Err(arg_err(
                arg,
                format!("model {i} of {n} (indices are 0 ..= {})", n - 1),
            ))
        }
    };
    in_range("base", base)?;
    in_range("out", out)?;
    if models.is_empty() {
        return Err(arg_err("models", "no model to merge with the base".into()));
    }
    for &j in models {
        in_range("models", j)?;
    }
    if weights.len() != models.len() {
        return Err(arg_err(
            "weights",
            format!("{} weights for {} models", weights.len(), models.len()),
        ));
    }
    if let Some((j, w)) = weights.iter().enumerate().find(|(_, w)| !w.is_finite()) {
        return Err(arg_err("weights", format!("weight {j} is {w}")));
    }
    if out == base || models.contains(&out) {
        return Err(arg_err(
            "out",
            format!("model {out} is also an input of the merge; write it into another model"),
        ));
    }
    Ok(())
}

/// `[batch, M + 1]`: `c_i0 = 1 − Σ_j w_ij`, `c_ij = w_ij`, after checking `coeffs`.
pub(super) fn blend_coefficients(
    models: usize,
    batch: usize,
    coeffs: &[f32],
) -> CudaResult<Vec<f32>> {
    let m = models - 1;
    if m == 0 {
        return Err(arg_err(
            "coeffs",
            "the blended forward needs at least two models".into(),
        ));
    }
    if coeffs.len() != batch * m {
        return Err(arg_err(
            "coeffs",
            format!(
                "{} values for {batch} samples and {m} models (need batch · M = {})",
                coeffs.len(),
                batch * m
            ),
        ));
    }
    if let Some(i) = coeffs.iter().position(|c| !c.is_finite()) {
        return Err(arg_err(
            "coeffs",
            format!("value {} (sample {}) is not finite", coeffs[i], i / m),
        ));
    }
    // c_i0 = 1 − Σ_j w_ij, c_ij = w_ij.
    let mut c = Vec::with_capacity(batch * (m + 1));
    for w in coeffs.chunks(m) {
        let s: f64 = w.iter().map(|&x| f64::from(x)).sum();
        c.push((1.0 - s) as f32);
        c.extend_from_slice(w);
    }
    Ok(c)
}

/// The host arena [`super::CudaVit::new`] uploads for `w`: every tensor of the parameter list
/// converted to `precision` (round to nearest even).
pub(super) fn model_arena(
    cfg: &VitConfig,
    w: &ClipWeights,
    precision: Precision,
) -> CudaResult<HostArena> {
    let tensors = arena_tensors(cfg, w);
    match precision {
        Precision::F16 => host_arena(&tensors, f16::from_f32),
        Precision::Bf16 => host_arena(&tensors, bf16::from_f32),
    }
}

/// A blended forward runs at most [`MAX_SETS`] weight sets in one launch.
pub(super) fn check_sets(sets: usize) -> CudaResult<()> {
    if sets == 0 || sets > MAX_SETS {
        return Err(arg_err(
            "models",
            format!("{sets} weight sets for one forward, 1 ..= {MAX_SETS} supported"),
        ));
    }
    Ok(())
}
