//! Stage 4, merged forwards: sample i through the merged model of its coefficient,
//! `θ(λ_i) = (1 − λ_i) θ0 + λ_i θ1` (two models) or `θ0 + Σ_j w_ij τ_j` (M models).
//!
//! * [`forward_groups`]: one merge per distinct coefficient (per mixture component for `dawin`:
//!   K merges), each group's samples forwarded in batches through it;
//! * [`forward_by_lambda`]: that, for two models and per-sample λ;
//! * [`forward_blended`]: a prepared per-sample forward ([`PerSampleForward`], θ0 and the deltas
//!   stacked once) that runs a batch with one coefficient per sample and builds no merged model
//!   (the multi-task `dawin-sample` runs [`dawin_vit::cpu::blended::forward`] the same way);
//! * [`forward_per_sample_loop`]: the reference loop the others must equal — merge θ(λ_i) and
//!   forward sample i alone, as the authors' per-sample mode does.
use super::logits::{batches, forward_indices};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::model::{Interpolate, PerSampleForward};
use std::collections::BTreeMap;

/// Logits `[N, c]` where sample i runs through the model of its group `keys[i]`: `run(key, idx)`
/// is called once per distinct key (in key order) with the samples of that group and returns
/// their logits `[idx.len(), c]`, which are put back in sample order. Returns the logits and the
/// number of groups (the merges built).
pub(crate) fn forward_groups<K: Ord + Copy>(
    keys: &[K],
    c: usize,
    mut run: impl FnMut(K, &[usize]) -> Result<Vec<f32>>,
) -> Result<(Vec<f32>, usize)> {
    let mut groups: BTreeMap<K, Vec<usize>> = BTreeMap::new();
    for (i, &k) in keys.iter().enumerate() {
        groups.entry(k).or_default().push(i);
    }
    let mut out = vec![0f32; keys.len() * c];
    for (&key, idx) in &groups {
        let z = run(key, idx)?;
        for (r, &i) in idx.iter().enumerate() {
            out[i * c..(i + 1) * c].copy_from_slice(&z[r * c..(r + 1) * c]);
        }
    }
    Ok((out, groups.len()))
}

fn check_coefs(n: usize, data_len: usize) -> Result<()> {
    if n != data_len {
        return Err(Error::invalid(
            "lambdas",
            format!("{n} values for {data_len} samples"),
        ));
    }
    Ok(())
}

/// Logits `[N, C]` where sample i runs through θ(λ_i): one merge per distinct λ (compared by
/// f32 bits), each group's samples forwarded in batches. Exact: equals merging and forwarding
/// one sample at a time ([`forward_per_sample_loop`]). Returns the logits and the merge count.
pub fn forward_by_lambda<M: Interpolate>(
    theta0: &M,
    theta1: &M,
    data: &dyn Dataset,
    lambdas: &[f32],
    batch: usize,
    bar: &indicatif::ProgressBar,
) -> Result<(Vec<f32>, usize)> {
    let (z, n, _) = forward_by_lambda_timed(theta0, theta1, data, lambdas, batch, bar)?;
    Ok((z, n))
}

/// [`forward_by_lambda`], with the time spent in the merged models' forwards (the rest of
/// its time is the merges; on a GPU a merge's launch returns before the merge has run, so its
/// device time shows in the first forward after it).
pub(crate) fn forward_by_lambda_timed<M: Interpolate>(
    theta0: &M,
    theta1: &M,
    data: &dyn Dataset,
    lambdas: &[f32],
    batch: usize,
    bar: &indicatif::ProgressBar,
) -> Result<(Vec<f32>, usize, std::time::Duration)> {
    check_coefs(lambdas.len(), data.len())?;
    // The groups of equal λ (by f32 bits, in bit order), all merged through
    // `Interpolate::for_each_merged` (a device model: one launch for all of them).
    let mut groups: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (i, l) in lambdas.iter().enumerate() {
        groups.entry(l.to_bits()).or_default().push(i);
    }
    let keys: Vec<f32> = groups.keys().map(|&b| f32::from_bits(b)).collect();
    let idx: Vec<&Vec<usize>> = groups.values().collect();
    let c = theta0.num_classes();
    let mut out = vec![0f32; lambdas.len() * c];
    let mut forward_time = std::time::Duration::ZERO;
    theta0.for_each_merged(theta1, &keys, &mut |k, merged| {
        let t = std::time::Instant::now();
        let z = forward_indices(merged, data, idx[k], batch, bar)?;
        forward_time += t.elapsed();
        for (r, &i) in idx[k].iter().enumerate() {
            out[i * c..(i + 1) * c].copy_from_slice(&z[r * c..(r + 1) * c]);
        }
        Ok(())
    })?;
    Ok((out, groups.len(), forward_time))
}

/// Logits `[N, C]` where sample i runs through θ(λ_i) with a prepared blended forward
/// ([`Interpolate::per_sample_forward`]), in batches of `batch` samples; no merged model is built.
pub fn forward_blended(
    blend: &dyn PerSampleForward,
    data: &dyn Dataset,
    lambdas: &[f32],
    batch: usize,
    bar: &indicatif::ProgressBar,
) -> Result<Vec<f32>> {
    check_coefs(lambdas.len(), data.len())?;
    let idx: Vec<usize> = (0..data.len()).collect();
    batches(data, &idx, batch, bar, |x, chunk| {
        let l = &lambdas[chunk[0]..chunk[0] + chunk.len()];
        blend.forward(x, chunk.len(), l)
    })
}

/// Logits of sample i through θ(λ_i) for every sample: the blended forward when one is
/// prepared (no merge), else one merge per distinct λ ([`forward_by_lambda`]). Returns the
/// logits and the merges built.
pub(crate) fn per_sample_logits<M: Interpolate>(
    (m0, m1): (&M, &M),
    blend: Option<&dyn PerSampleForward>,
    data: &dyn Dataset,
    lambdas: &[f32],
    batch: usize,
    bar: &indicatif::ProgressBar,
) -> Result<(Vec<f32>, usize)> {
    match blend {
        Some(b) => Ok((forward_blended(b, data, lambdas, batch, bar)?, 0)),
        None => forward_by_lambda(m0, m1, data, lambdas, batch, bar),
    }
}

/// The reference per-sample loop: for each sample, merge θ(λ_i) and forward that one sample
/// (batch 1), as the authors' per-sample mode does. Slow; for tests.
pub fn forward_per_sample_loop<M: Interpolate>(
    theta0: &M,
    theta1: &M,
    data: &dyn Dataset,
    lambdas: &[f32],
) -> Result<Vec<f32>> {
    let mut out = Vec::new();
    for (i, &l) in lambdas.iter().enumerate() {
        let merged = theta0.interpolate(theta1, l)?;
        out.extend(merged.forward(&data.load(&[i])?, 1)?);
    }
    Ok(out)
}

/// Logits `[b, C]` of an in-memory batch `x` (`[b, input_numel]`), sample i through θ(λ_i):
/// the blended forward when prepared, else one merge per distinct λ of the batch.
pub(crate) fn batch_by_lambda<M: Interpolate>(
    (m0, m1): (&M, &M),
    blend: Option<&dyn PerSampleForward>,
    x: &[f32],
    lambdas: &[f32],
) -> Result<Vec<f32>> {
    let b = lambdas.len();
    if let Some(bl) = blend {
        return bl.forward(x, b, lambdas);
    }
    let n = m0.input_numel();
    let bits: Vec<u32> = lambdas.iter().map(|l| l.to_bits()).collect();
    let (z, _) = forward_groups(&bits, m0.num_classes(), |l, idx| {
        let merged = m0.interpolate(m1, f32::from_bits(l))?;
        let xs: Vec<f32> = idx
            .iter()
            .flat_map(|&i| x[i * n..(i + 1) * n].iter().copied())
            .collect();
        merged.forward(&xs, idx.len())
    })?;
    Ok(z)
}
