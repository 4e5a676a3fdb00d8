//! The text tower's CPU forward in f32, on the vision forward's layer functions
//! ([`crate::cpu`]: `layer_norm`, `linear`, `linear_residual`, `activation`, `gemm`,
//! `softmax_row`) plus the causal attention written here.
//!
//! **Only the positions up to each text's end token are computed.** Under the causal mask the
//! output at position t depends on positions ≤ t only, and the features are taken at the
//! end-of-text position p; so positions after p (the padding up to 77) cannot change the
//! features. Each text is computed over its own `p + 1` positions, and the texts of a batch are
//! packed row after row (no padding at all): a prompt of 12 tokens costs 12 rows, not 77.
//! [`TextPositions::Context`] computes every position of the row instead (what open_clip does),
//! to check this.

use rayon::prelude::*;

use crate::cpu::{
    activation, gemm, layer_norm, layer_norm_row, linear, linear_residual, softmax_row, MatRef,
};
use crate::error::{Error, Result};
use crate::weights::ResidualBlock;

use super::model::{TextConfig, TextWeights};

/// Which positions of each text the forward computes (the features are the same either way).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TextPositions {
    /// Positions `0..=pool_index` of each text, packed without padding (the default: exact,
    /// because the attention is causal).
    #[default]
    UpToPool,
    /// Every position of each row (`row_len`, e.g. 77), as open_clip computes them.
    Context,
}

/// Causal multi-head self-attention over packed texts.
///
/// `qkv` is `[rows, 3·width]` (q, k, v side by side, head h in columns `h·d..(h+1)·d` of each),
/// the texts are consecutive runs of `lens[i]` rows; `out` is `[rows, width]`. Per text and
/// head: `out_h[t] = Σ_{s ≤ t} softmax_s(q_t·k_s / √d) v_s` (keys after t masked out, as
/// open_clip's additive `-inf` mask above the diagonal), softmax with the maximum subtracted.
/// Parallel over texts.
pub fn causal_attention(qkv: &[f32], lens: &[usize], width: usize, heads: usize, out: &mut [f32]) {
    let rows: usize = lens.iter().sum();
    assert_eq!(qkv.len(), rows * 3 * width, "causal_attention: qkv length");
    assert_eq!(out.len(), rows * width, "causal_attention: out length");
    assert!(
        heads > 0 && width.is_multiple_of(heads),
        "causal_attention: heads"
    );
    let d = width / heads;
    let scale = 1.0 / (d as f32).sqrt();
    // One (start row, output rows) per text.
    let mut chunks = Vec::with_capacity(lens.len());
    let (mut rest, mut start) = (out, 0);
    for &l in lens {
        let (c, r) = rest.split_at_mut(l * width);
        chunks.push((start, c));
        rest = r;
        start += l;
    }
    chunks.into_par_iter().for_each(|(start, o)| {
        let l = o.len() / width;
        if l == 0 {
            return;
        }
        let base = &qkv[start * 3 * width..(start + l) * 3 * width];
        let mut scores = vec![0.0f32; l * l];
        let mut oh = vec![0.0f32; l * d];
        for h in 0..heads {
            let view = |off: usize| MatRef {
                data: &base[off + h * d..],
                rows: l,
                cols: d,
                row_stride: 3 * width,
                col_stride: 1,
            };
            let (q, k, v) = (view(0), view(width), view(2 * width));
            gemm(q, k.t(), &mut scores, false, false);
            for (t, row) in scores.chunks_mut(l).enumerate() {
                softmax_row(&mut row[..=t], scale);
                row[t + 1..].fill(0.0);
            }
            gemm(MatRef::new(&scores, l, l), v, &mut oh, false, false);
            for (dst, src) in o.chunks_mut(width).zip(oh.chunks(d)) {
                dst[h * d..(h + 1) * d].copy_from_slice(src);
            }
        }
    });
}

/// Scratch buffers of one forward, reused across blocks.
#[derive(Default)]
struct Workspace {
    h: Vec<f32>,
    qkv: Vec<f32>,
    attn: Vec<f32>,
    mlp: Vec<f32>,
}

/// One residual block in place on the packed rows `x` `[rows, W]`:
/// `x += out_proj(causal_attention(in_proj(ln_1(x))))`, `x += c_proj(act(c_fc(ln_2(x))))`.
fn block(x: &mut [f32], lens: &[usize], cfg: &TextConfig, blk: &ResidualBlock, ws: &mut Workspace) {
    let w = cfg.width;
    let rows = x.len() / w;
    ws.h.resize(rows * w, 0.0);
    ws.qkv.resize(rows * 3 * w, 0.0);
    ws.attn.resize(rows * w, 0.0);
    ws.mlp.resize(rows * cfg.mlp_dim, 0.0);
    layer_norm(x, w, &blk.ln_1, cfg.layer_norm_eps, &mut ws.h);
    linear(&ws.h, rows, &blk.attn_in_proj, &mut ws.qkv);
    causal_attention(&ws.qkv, lens, w, cfg.heads, &mut ws.attn);
    linear_residual(&ws.attn, rows, &blk.attn_out_proj, x);
    layer_norm(x, w, &blk.ln_2, cfg.layer_norm_eps, &mut ws.h);
    linear(&ws.h, rows, &blk.mlp_c_fc, &mut ws.mlp);
    activation(cfg.activation, &mut ws.mlp);
    linear_residual(&ws.mlp, rows, &blk.mlp_c_proj, x);
}

/// The unnormalised features `[n, E]` of `n` texts given as rows of `row_len` ids, each pooled
/// at `pool_index[i]`: `ln_final(x[pool]) · text_projection` after the blocks (module
/// documentation for which positions are computed). Errors: lengths that disagree, a pool index
/// past its row or the model's context, an id outside the vocabulary (naming text and position).
pub fn encode(
    ids: &[u32],
    row_len: usize,
    pool_index: &[usize],
    positions: TextPositions,
    cfg: &TextConfig,
    w: &TextWeights,
) -> Result<Vec<f32>> {
    let n = pool_index.len();
    if n == 0 {
        return Err(Error::arg("ids", "no text to encode"));
    }
    if ids.len() != n * row_len {
        return Err(Error::arg(
            "ids",
            format!(
                "{} ids for {n} texts of {row_len} ids ({} expected)",
                ids.len(),
                n * row_len
            ),
        ));
    }
    let lens: Vec<usize> = match positions {
        TextPositions::UpToPool => pool_index.iter().map(|p| p + 1).collect(),
        TextPositions::Context => vec![row_len; n],
    };
    for (i, (&p, &l)) in pool_index.iter().zip(&lens).enumerate() {
        if p >= row_len || l > cfg.context_length {
            return Err(Error::arg(
                "ids",
                format!(
                    "text {i} is pooled at position {p} of {} computed ({row_len} ids per row); \
                     the model has {} positions",
                    l, cfg.context_length
                ),
            ));
        }
        let row = &ids[i * row_len..i * row_len + l];
        if let Some(t) = row.iter().position(|&id| id as usize >= cfg.vocab_size) {
            return Err(Error::arg(
                "ids",
                format!(
                    "text {i} holds id {} at position {t}, outside the vocabulary of {} ids",
                    row[t], cfg.vocab_size
                ),
            ));
        }
    }
    let width = cfg.width;
    // Row r of the packed activations is (text, position).
    let mut at = Vec::with_capacity(lens.iter().sum());
    for (i, &l) in lens.iter().enumerate() {
        at.extend((0..l).map(|t| (i * row_len + t, t)));
    }
    let mut x = vec![0.0f32; at.len() * width];
    x.par_chunks_mut(width).zip(&at).for_each(|(o, &(k, t))| {
        let e = &w.token_embedding[ids[k] as usize * width..][..width];
        let p = &w.positional_embedding[t * width..][..width];
        for ((o, &e), &p) in o.iter_mut().zip(e).zip(p) {
            *o = e + p;
        }
    });
    let mut ws = Workspace::default();
    for blk in &w.resblocks {
        block(&mut x, &lens, cfg, blk, &mut ws);
    }
    let mut starts = Vec::with_capacity(n);
    let mut s = 0;
    for &l in &lens {
        starts.push(s);
        s += l;
    }
    let mut pooled = vec![0.0f32; n * width];
    pooled.par_chunks_mut(width).enumerate().for_each(|(i, o)| {
        let r = starts[i] + pool_index[i];
        layer_norm_row(
            &x[r * width..(r + 1) * width],
            &w.ln_final,
            cfg.layer_norm_eps,
            o,
        );
    });
    let mut feats = vec![0.0f32; n * cfg.embed_dim];
    linear(&pooled, n, &w.text_projection, &mut feats);
    Ok(feats)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The causal attention against a direct evaluation of its formula in f64.
    #[test]
    fn causal_attention_matches_a_naive_loop() {
        let (w, heads) = (8, 2);
        let d = w / heads;
        let lens = [3usize, 1, 5];
        let rows: usize = lens.iter().sum();
        let qkv: Vec<f32> = (0..rows * 3 * w)
            .map(|i| (((i * 37) % 23) as f32 - 11.0) / 9.0)
            .collect();
        let mut out = vec![f32::NAN; rows * w];
        causal_attention(&qkv, &lens, w, heads, &mut out);
        let mut start = 0;
        for &l in &lens {
            for h in 0..heads {
                let at =
                    |r: usize, c: usize, j: usize| qkv[(start + r) * 3 * w + c * w + h * d + j];
                for t in 0..l {
                    let s: Vec<f64> = (0..=t)
                        .map(|u| {
                            (0..d)
                                .map(|j| at(t, 0, j) as f64 * at(u, 1, j) as f64)
                                .sum::<f64>()
                                / (d as f64).sqrt()
                        })
                        .collect();
                    let mx = s.iter().cloned().fold(f64::MIN, f64::max);
                    let e: Vec<f64> = s.iter().map(|v| (v - mx).exp()).collect();
                    let z: f64 = e.iter().sum();
                    for j in 0..d {
                        let want: f64 = (0..=t).map(|u| e[u] / z * at(u, 2, j) as f64).sum();
                        let got = out[(start + t) * w + h * d + j] as f64;
                        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
                    }
                }
            }
            start += l;
        }
    }

    /// Position 0 sees only itself: its output is its own v.
    #[test]
    fn the_first_position_attends_to_itself_only() {
        let (w, heads) = (4, 2);
        let qkv: Vec<f32> = (0..2 * 3 * w).map(|i| i as f32).collect();
        let mut out = vec![0.0; 2 * w];
        causal_attention(&qkv, &[2], w, heads, &mut out);
        assert_eq!(&out[..w], &qkv[2 * w..3 * w]);
    }
}
