//! The exact per-sample blended forward on the CPU: one batch, one coefficient vector per
//! sample, no merged model built.
//!
//! For sample `i` with coefficients `w_i = (w_i1, …, w_iM)` the result is the forward of
//! `θ(x_i) = θ0 + Σ_j w_ij (θ_j − θ0)` (two models: `w_i1 = λ_i`). Each parametrised operation
//! is evaluated on the blended activation `h_i` as
//!
//! * linear (QKV and output projections, MLP, patch embedding as a linear on im2col patches,
//!   projection, head): `y_i = W0 h_i + b0 + Σ_j w_ij (ΔW_j h_i + Δb_j)` — one GEMM of `h`
//!   against the stacked `[W0; ΔW_1; …; ΔW_M]` (`[(M+1)·out, in]`, so `(M+1)·out` output columns)
//!   and a per-row combine;
//! * layer norm: `n_i = (h_i − μ) / sqrt(σ² + eps)` once, then
//!   `n_i ⊙ (γ0 + Σ_j w_ij Δγ_j) + (β0 + Σ_j w_ij Δβ_j)`;
//! * class and positional embeddings: `c0 + Σ_j w_ij Δc_j`, `p0 + Σ_j w_ij Δp_j` added per sample;
//! * LayerScale (`x += γ ⊙ branch`): the merged model's factor `γ_i = γ0 + Σ_j w_ij Δγ_j` times
//!   the merged model's branch (the blended linear above), i.e. `(Σ_s c_is γ_s) ⊙ (Σ_s c_is
//!   (W_s h_i + b_s))` over the weight sets s — not `Σ_s c_is γ_s ⊙ (W_s h_i + b_s)`, which is no
//!   merged model's output;
//! * attention softmax, the MLP activation, the feature normalisation: as in
//!   [`crate::cpu::forward`].
//!
//! The GEMM work is (M + 1)× one model's; nothing else grows with M beyond O(batch · W · M).
//! A coefficient of exactly 0 skips its delta term, so a sample with all-zero coefficients gets
//! θ0's forward bit for bit; a sample with `w_ij = 1` (others 0) gets θ_j's up to the f32
//! rounding of `W0 h + (W_j − W0) h`.

use rayon::prelude::*;

use super::{activation, attention, check_images, im2col, l2_normalize_rows, layer_norm_row_with};
use crate::blended::BlendedWeights;
use crate::error::{Error, Result};
use crate::weights::{LayerNorm, Linear};

/// Logits `[batch, C]` and normalised features `[batch, E]` of `images` `[batch, 3, S, S]`, sample
/// `i` through the model `θ(x_i) = θ0 + Σ_j w_ij (θ_j − θ0)` with `w_ij = coeffs[i · M + j]`
/// (`coeffs` is `[batch, M]`, M = [`BlendedWeights::models`]).
///
/// Equal, up to f32 rounding, to merging the model per sample and running
/// [`crate::cpu::forward`] on that sample alone. Coefficients may be any finite value (outside
/// [0, 1] extrapolates, as task arithmetic does).
///
/// Errors: bad image buffer (see [`crate::cpu::check_images`]), `coeffs` of the wrong length or
/// with a non-finite value.
pub fn forward(
    images: &[f32],
    batch: usize,
    bw: &BlendedWeights,
    coeffs: &[f32],
) -> Result<(Vec<f32>, Vec<f32>)> {
    let cfg = &bw.config;
    check_images(images, batch, cfg)?;
    check_coeffs(coeffs, batch, bw.models)?;
    let mut feats = encode_images(images, batch, bw, coeffs);
    l2_normalize_rows(&mut feats, cfg.embed_dim);
    let mut logits = vec![0.0f32; batch * cfg.num_classes];
    let mut tmp = Vec::new();
    blended_linear(
        &feats,
        batch,
        1,
        &bw.stacked.head,
        coeffs,
        bw.models,
        &mut tmp,
        &mut logits,
        Residual::None,
    );
    Ok((logits, feats))
}

/// Two models (M = 1): sample `i` through `θ(λ_i) = (1 − λ_i) θ0 + λ_i θ1`, one `λ` per sample
/// (`lambdas` is `[batch]`). The same as [`forward`] with `coeffs = lambdas`; errors when
/// `bw` holds more than one model besides the base.
pub fn forward_lerp(
    images: &[f32],
    batch: usize,
    bw: &BlendedWeights,
    lambdas: &[f32],
) -> Result<(Vec<f32>, Vec<f32>)> {
    if bw.models != 1 {
        return Err(Error::arg(
            "lambdas",
            format!(
                "one λ per sample needs two models (θ0, θ1), these weights hold {} besides θ0: \
                 use forward with a [batch, {}] coefficient matrix",
                bw.models, bw.models
            ),
        ));
    }
    forward(images, batch, bw, lambdas)
}

fn check_coeffs(coeffs: &[f32], batch: usize, m: usize) -> Result<()> {
    if coeffs.len() != batch * m {
        return Err(Error::arg(
            "coeffs",
            format!(
                "{} coefficients for batch {batch} and {m} model(s) besides θ0, expected {}",
                coeffs.len(),
                batch * m
            ),
        ));
    }
    if let Some(i) = coeffs.iter().position(|v| !v.is_finite()) {
        return Err(Error::arg(
            "coeffs",
            format!(
                "sample {} has a non-finite coefficient ({}) for θ{}",
                i / m,
                coeffs[i],
                i % m + 1
            ),
        ));
    }
    Ok(())
}

/// The blended image features before normalisation, `[batch, E]` (inputs checked by the caller:
/// panics on wrong lengths).
pub fn encode_images(
    images: &[f32],
    batch: usize,
    bw: &BlendedWeights,
    coeffs: &[f32],
) -> Vec<f32> {
    let cfg = &bw.config;
    let m = bw.models;
    assert_eq!(coeffs.len(), batch * m, "encode_images: coeffs length");
    let (t, w, eps) = (cfg.num_tokens(), cfg.width, cfg.layer_norm_eps);
    let np = cfg.num_patches();
    let mut tmp = Vec::new();

    // Patch embedding: a blended linear over the im2col rows (G² rows per sample).
    let cols = im2col(images, batch, cfg);
    let mut patches = vec![0.0f32; batch * np * w];
    blended_linear(
        &cols,
        batch * np,
        np,
        &bw.stacked.visual.conv1,
        coeffs,
        m,
        &mut tmp,
        &mut patches,
        Residual::None,
    );
    let sv = &bw.stacked.visual;
    let class = blend_vec(&sv.class_embedding, coeffs, m, batch);
    let pos = blend_vec(&sv.positional_embedding, coeffs, m, batch);
    let mut x = vec![0.0f32; batch * t * w];
    x.par_chunks_mut(t * w).enumerate().for_each(|(b, xb)| {
        let pb = &pos[b * t * w..(b + 1) * t * w];
        for ((o, &c), &p) in xb[..w].iter_mut().zip(&class[b * w..]).zip(pb) {
            *o = c + p;
        }
        for ((o, &v), &p) in xb[w..]
            .iter_mut()
            .zip(&patches[b * np * w..(b + 1) * np * w])
            .zip(&pb[w..])
        {
            *o = v + p;
        }
    });
    let mut h = vec![0.0f32; x.len()];
    blended_layer_norm(&x, t, &sv.ln_pre, eps, coeffs, m, &mut h);
    std::mem::swap(&mut x, &mut h);

    let rows = batch * t;
    let mut qkv = vec![0.0f32; rows * 3 * w];
    let mut attn = vec![0.0f32; rows * w];
    let mut mlp = vec![0.0f32; rows * cfg.mlp_dim];
    for blk in &sv.resblocks {
        blended_layer_norm(&x, t, &blk.ln_1, eps, coeffs, m, &mut h);
        blended_linear(
            &h,
            rows,
            t,
            &blk.attn_in_proj,
            coeffs,
            m,
            &mut tmp,
            &mut qkv,
            Residual::None,
        );
        attention(&qkv, batch, t, w, cfg.heads, &mut attn);
        let g1 = blk.ls_1.as_ref().map(|g| blend_vec(g, coeffs, m, batch));
        blended_linear(
            &attn,
            rows,
            t,
            &blk.attn_out_proj,
            coeffs,
            m,
            &mut tmp,
            &mut x,
            Residual::Add(g1.as_deref()),
        );
        blended_layer_norm(&x, t, &blk.ln_2, eps, coeffs, m, &mut h);
        blended_linear(
            &h,
            rows,
            t,
            &blk.mlp_c_fc,
            coeffs,
            m,
            &mut tmp,
            &mut mlp,
            Residual::None,
        );
        activation(cfg.activation, &mut mlp);
        let g2 = blk.ls_2.as_ref().map(|g| blend_vec(g, coeffs, m, batch));
        blended_linear(
            &mlp,
            rows,
            t,
            &blk.mlp_c_proj,
            coeffs,
            m,
            &mut tmp,
            &mut x,
            Residual::Add(g2.as_deref()),
        );
    }

    // ln_post on the class token of each sample, then the blended projection.
    let gamma = blend_vec(&sv.ln_post.weight, coeffs, m, batch);
    let beta = blend_vec(&sv.ln_post.bias, coeffs, m, batch);
    let mut pooled = vec![0.0f32; batch * w];
    pooled.par_chunks_mut(w).enumerate().for_each(|(b, o)| {
        layer_norm_row_with(
            &x[b * t * w..b * t * w + w],
            &gamma[b * w..(b + 1) * w],
            &beta[b * w..(b + 1) * w],
            eps,
            o,
        );
    });
    let mut feats = vec![0.0f32; batch * cfg.embed_dim];
    blended_linear(
        &pooled,
        batch,
        1,
        &sv.proj,
        coeffs,
        m,
        &mut tmp,
        &mut feats,
        Residual::None,
    );
    feats
}

/// Per-sample vectors `[batch, len]` from a stacked `v = [v0; Δv_1; …; Δv_M]`:
/// `v_i = v0 + Σ_j w_ij Δv_j` (a zero coefficient skips its term).
fn blend_vec(v: &[f32], coeffs: &[f32], m: usize, batch: usize) -> Vec<f32> {
    let n = v.len() / (m + 1);
    let mut out = vec![0.0f32; batch * n];
    out.par_chunks_mut(n).enumerate().for_each(|(i, o)| {
        o.copy_from_slice(&v[..n]);
        for (j, &wj) in coeffs[i * m..(i + 1) * m].iter().enumerate() {
            if wj != 0.0 {
                let d = &v[(j + 1) * n..(j + 2) * n];
                o.iter_mut().zip(d).for_each(|(o, d)| *o += wj * d);
            }
        }
    });
    out
}

/// Layer norm of `x` `[batch · per_sample, W]` with per-sample scale and shift
/// `γ_i = γ0 + Σ_j w_ij Δγ_j`, `β_i = β0 + Σ_j w_ij Δβ_j`.
fn blended_layer_norm(
    x: &[f32],
    per_sample: usize,
    ln: &LayerNorm,
    eps: f32,
    coeffs: &[f32],
    m: usize,
    out: &mut [f32],
) {
    let w = ln.weight.len() / (m + 1);
    let batch = x.len() / (w * per_sample);
    let gamma = blend_vec(&ln.weight, coeffs, m, batch);
    let beta = blend_vec(&ln.bias, coeffs, m, batch);
    out.par_chunks_mut(w)
        .zip(x.par_chunks(w))
        .enumerate()
        .for_each(|(r, (o, xr))| {
            let b = r / per_sample;
            layer_norm_row_with(
                xr,
                &gamma[b * w..(b + 1) * w],
                &beta[b * w..(b + 1) * w],
                eps,
                o,
            );
        });
}

/// How [`blended_linear`] writes its result.
#[derive(Clone, Copy)]
enum Residual<'a> {
    /// `out = y`.
    None,
    /// `out += y`, or `out += γ_i ⊙ y` with per-sample LayerScale factors `γ` `[batch, out]`
    /// (already blended: `γ_i = γ0 + Σ_j w_ij Δγ_j`).
    Add(Option<&'a [f32]>),
}

/// Blended linear over `x` `[rows, in]` whose rows belong to sample `row / per_sample`:
/// `y_r = W0 x_r + b0 + Σ_j w_ij (ΔW_j x_r + Δb_j)`, written to `out` `[rows, out]` or added
/// onto it (see [`Residual`]; with LayerScale the merged model's branch is
/// `γ_i ⊙ y_r`, the blended γ times the blended linear, not a blend of `γ_s ⊙ (W_s x + b_s)`).
/// One GEMM against the stacked weight into `tmp` `[rows, (M+1)·out]`, then the per-row combine.
#[allow(clippy::too_many_arguments)]
fn blended_linear(
    x: &[f32],
    rows: usize,
    per_sample: usize,
    lin: &Linear,
    coeffs: &[f32],
    m: usize,
    tmp: &mut Vec<f32>,
    out: &mut [f32],
    residual: Residual<'_>,
) {
    let n = lin.out_dim / (m + 1);
    let stride = (m + 1) * n;
    assert_eq!(out.len(), rows * n, "blended_linear: out length");
    tmp.resize(rows * stride, 0.0);
    super::linear(x, rows, lin, tmp);
    if let Residual::Add(Some(gamma)) = residual {
        // y_r in place in the first n columns of its tmp row, then out += γ_i ⊙ y_r.
        out.par_chunks_mut(n)
            .zip(tmp.par_chunks_mut(stride))
            .enumerate()
            .for_each(|(r, (o, t))| {
                let s = r / per_sample;
                let (y, deltas) = t.split_at_mut(n);
                for (j, &wj) in coeffs[s * m..(s + 1) * m].iter().enumerate() {
                    if wj != 0.0 {
                        let d = &deltas[j * n..(j + 1) * n];
                        y.iter_mut().zip(d).for_each(|(y, d)| *y += wj * d);
                    }
                }
                let g = &gamma[s * n..(s + 1) * n];
                for ((o, &y), &g) in o.iter_mut().zip(y.iter()).zip(g) {
                    *o += g * y;
                }
            });
        return;
    }
    let add = matches!(residual, Residual::Add(_));
    out.par_chunks_mut(n)
        .zip(tmp.par_chunks(stride))
        .enumerate()
        .for_each(|(r, (o, t))| {
            let s = r / per_sample;
            if add {
                o.iter_mut().zip(&t[..n]).for_each(|(o, v)| *o += v);
            } else {
                o.copy_from_slice(&t[..n]);
            }
            for (j, &wj) in coeffs[s * m..(s + 1) * m].iter().enumerate() {
                if wj != 0.0 {
                    let d = &t[(j + 1) * n..(j + 2) * n];
                    o.iter_mut().zip(d).for_each(|(o, d)| *o += wj * d);
                }
            }
        });
}
