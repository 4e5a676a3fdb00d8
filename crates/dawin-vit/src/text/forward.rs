//! The text tower's CPU forward in f32, on the vision forward's layer functions
//! ([`crate::cpu`]: `layer_norm`, `linear`, `linear_residual`, `activation`, `gemm`,
//! `softmax_row`) plus the causal attention written here.
//!
//! **Only the positions up to each text's end token are computed, and shared prefixes once.**
//! Under the causal mask the output at position t depends on the ids at positions ≤ t only, and
//! the features are taken at the end-of-text position p. So
//! * positions after p (the padding up to 77) cannot change the features: each text is computed
//!   over its own `p + 1` positions, packed row after row without padding (a prompt of 12 tokens
//!   costs 12 rows, not 77);
//! * texts whose first k ids are equal have equal activations at positions < k, in every layer:
//!   each distinct prefix of the batch is computed once (the rows are the nodes of the batch's
//!   prefix tree, grouped into [`Segment`]s that attend to their ancestors' rows). Zero-shot
//!   prompts share their template's beginning (`<start> a photo of a`) across classes and the
//!   class name across templates' beginnings, so this is exact and saves much of the work.
//!
//! [`TextPositions::Context`] computes every position of every row separately (what open_clip
//! does), to check both.

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

/// A run of consecutive rows of the packed activations: consecutive positions of one or more
/// texts, after the positions of its ancestors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Number of rows.
    pub len: usize,
    /// The segment (index) whose rows are the positions just before these (its own ancestors'
    /// before its own); `None`: the rows start at position 0.
    pub parent: Option<usize>,
}

impl Segment {
    /// A run starting at position 0.
    pub fn new(len: usize) -> Self {
        Segment { len, parent: None }
    }
}

/// Causal multi-head self-attention over packed segments.
///
/// `qkv` is `[rows, 3·width]` (q, k, v side by side, head h in columns `h·d..(h+1)·d` of each);
/// the segments tile the rows in order, each after its parent; `out` is `[rows, width]`. For a
/// row at position t of a text, per head: `out_h[t] = Σ_{s ≤ t} softmax_s(q_t·k_s / √d) v_s`
/// over the text's positions s ≤ t (keys after t masked out, as open_clip's additive `-inf`
/// mask above the diagonal): the rows of the segment's ancestors, then its own rows up to
/// itself. Softmax with the maximum subtracted; parallel over segments.
pub fn causal_attention(
    qkv: &[f32],
    segments: &[Segment],
    width: usize,
    heads: usize,
    out: &mut [f32],
) {
    let rows: usize = segments.iter().map(|s| s.len).sum();
    assert_eq!(qkv.len(), rows * 3 * width, "causal_attention: qkv length");
    assert_eq!(out.len(), rows * width, "causal_attention: out length");
    assert!(
        heads > 0 && width.is_multiple_of(heads),
        "causal_attention: heads"
    );
    let d = width / heads;
    let scale = 1.0 / (d as f32).sqrt();
    let mut starts = Vec::with_capacity(segments.len());
    let mut start = 0;
    for (i, seg) in segments.iter().enumerate() {
        assert!(
            seg.parent.is_none_or(|p| p < i),
            "causal_attention: a parent comes first"
        );
        starts.push(start);
        start += seg.len;
    }
    // One (key rows: ancestors' then own, start row, output rows) per segment.
    let mut chunks = Vec::with_capacity(segments.len());
    let mut rest = out;
    for (i, seg) in segments.iter().enumerate() {
        let (c, r) = rest.split_at_mut(seg.len * width);
        let mut chain = vec![i];
        while let Some(p) = segments[*chain.last().expect("non-empty")].parent {
            chain.push(p);
        }
        let keys: Vec<usize> = (chain.iter().rev())
            .flat_map(|&j| starts[j]..starts[j] + segments[j].len)
            .collect();
        chunks.push((keys, starts[i], c));
        rest = r;
    }
    chunks.into_par_iter().for_each(|(keys, start, o)| {
        let l = o.len() / width;
        if l == 0 {
            return;
        }
        let n = keys.len();
        let pl = n - l; // ancestors' rows
        let mut k = vec![0.0f32; n * d];
        let mut v = vec![0.0f32; n * d];
        let mut p = vec![0.0f32; l * n];
        let mut oh = vec![0.0f32; l * d];
        for h in 0..heads {
            for (j, &r) in keys.iter().enumerate() {
                let row = &qkv[r * 3 * width..(r + 1) * 3 * width];
                k[j * d..(j + 1) * d].copy_from_slice(&row[width + h * d..width + (h + 1) * d]);
                v[j * d..(j + 1) * d]
                    .copy_from_slice(&row[2 * width + h * d..2 * width + (h + 1) * d]);
            }
            let q = MatRef {
                data: &qkv[start * 3 * width + h * d..],
                rows: l,
                cols: d,
                row_stride: 3 * width,
                col_stride: 1,
            };
            gemm(q, MatRef::new(&k, n, d).t(), &mut p, false, false);
            for (t, row) in p.chunks_mut(n).enumerate() {
                softmax_row(&mut row[..pl + t + 1], scale);
                row[pl + t + 1..].fill(0.0);
            }
            gemm(
                MatRef::new(&p, l, n),
                MatRef::new(&v, n, d),
                &mut oh,
                false,
                false,
            );
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
fn block(
    x: &mut [f32],
    segments: &[Segment],
    cfg: &TextConfig,
    blk: &ResidualBlock,
    ws: &mut Workspace,
) {
    let w = cfg.width;
    let rows = x.len() / w;
    ws.h.resize(rows * w, 0.0);
    ws.qkv.resize(rows * 3 * w, 0.0);
    ws.attn.resize(rows * w, 0.0);
    ws.mlp.resize(rows * cfg.mlp_dim, 0.0);
    layer_norm(x, w, &blk.ln_1, cfg.layer_norm_eps, &mut ws.h);
    linear(&ws.h, rows, &blk.attn_in_proj, &mut ws.qkv);
    causal_attention(&ws.qkv, segments, w, cfg.heads, &mut ws.attn);
    linear_residual(&ws.attn, rows, &blk.attn_out_proj, x);
    layer_norm(x, w, &blk.ln_2, cfg.layer_norm_eps, &mut ws.h);
    linear(&ws.h, rows, &blk.mlp_c_fc, &mut ws.mlp);
    activation(cfg.activation, &mut ws.mlp);
    linear_residual(&ws.mlp, rows, &blk.mlp_c_proj, x);
}

/// Which rows the forward computes: per row the index in `ids` of its id and its position; the
/// segments; the row each text is pooled at.
struct Plan {
    rows: Vec<(usize, usize)>,
    segments: Vec<Segment>,
    pool_rows: Vec<usize>,
}

/// The prefix tree of the texts (each up to its pool index), one row per node, i.e. per
/// distinct prefix. Texts are inserted in sorted order, so that a text shares with the previous
/// one exactly their common leading ids, and the rows come in depth-first preorder; a row whose
/// parent has one child continues its parent's segment (it is the next row), any other row
/// starts a segment whose parent segment ends with the row's parent.
fn plan(ids: &[u32], row_len: usize, pool_index: &[usize], positions: TextPositions) -> Plan {
    let n = pool_index.len();
    let mut p = Plan {
        rows: Vec::new(),
        segments: Vec::new(),
        pool_rows: vec![0; n],
    };
    if positions == TextPositions::Context {
        for (i, &pool) in pool_index.iter().enumerate() {
            p.pool_rows[i] = p.rows.len() + pool;
            p.rows.extend((0..row_len).map(|t| (i * row_len + t, t)));
            p.segments.push(Segment::new(row_len));
        }
        return p;
    }
    let text = |i: usize| &ids[i * row_len..i * row_len + pool_index[i] + 1];
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| text(a).cmp(text(b)));
    // The tree: each row's parent row and number of children.
    let mut parent: Vec<Option<usize>> = Vec::new();
    let mut children: Vec<usize> = Vec::new();
    let mut path: Vec<usize> = Vec::new(); // the previous text's rows
    let mut prev: &[u32] = &[];
    for i in order {
        let t_ids = text(i);
        let shared = prev.iter().zip(t_ids).take_while(|(a, b)| a == b).count();
        path.truncate(shared);
        for t in shared..t_ids.len() {
            let up = t.checked_sub(1).map(|u| path[u]);
            if let Some(u) = up {
                children[u] += 1;
            }
            path.push(p.rows.len());
            p.rows.push((i * row_len + t, t));
            parent.push(up);
            children.push(0);
        }
        p.pool_rows[i] = path[t_ids.len() - 1];
        prev = t_ids;
    }
    let mut seg_of = Vec::with_capacity(p.rows.len());
    for (r, &up) in parent.iter().enumerate() {
        match up {
            Some(u) if children[u] == 1 => {
                debug_assert_eq!(u + 1, r);
                p.segments.last_mut().expect("the parent's segment").len += 1;
            }
            up => p.segments.push(Segment {
                len: 1,
                parent: up.map(|u| seg_of[u]),
            }),
        }
        seg_of.push(p.segments.len() - 1);
    }
    p
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
    for (i, &p) in pool_index.iter().enumerate() {
        let l = match positions {
            TextPositions::UpToPool => p + 1,
            TextPositions::Context => row_len,
        };
        if p >= row_len || l > cfg.context_length {
            return Err(Error::arg(
                "ids",
                format!(
                    "text {i} is pooled at position {p} of {l} computed ({row_len} ids per row); \
                     the model has {} positions",
                    cfg.context_length
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
    let plan = plan(ids, row_len, pool_index, positions);
    let mut x = vec![0.0f32; plan.rows.len() * width];
    x.par_chunks_mut(width)
        .zip(&plan.rows)
        .for_each(|(o, &(k, t))| {
            let e = &w.token_embedding[ids[k] as usize * width..][..width];
            let p = &w.positional_embedding[t * width..][..width];
            for ((o, &e), &p) in o.iter_mut().zip(e).zip(p) {
                *o = e + p;
            }
        });
    let mut ws = Workspace::default();
    for blk in &w.resblocks {
        block(&mut x, &plan.segments, cfg, blk, &mut ws);
    }
    let mut pooled = vec![0.0f32; n * width];
    pooled.par_chunks_mut(width).enumerate().for_each(|(i, o)| {
        let r = plan.pool_rows[i];
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

/// Number of rows the forward computes for these texts ([`encode`]'s work, in positions): with
/// [`TextPositions::UpToPool`], each text's positions up to its end token, shared prefixes
/// counted once.
pub fn computed_positions(
    ids: &[u32],
    row_len: usize,
    pool_index: &[usize],
    positions: TextPositions,
) -> usize {
    plan(ids, row_len, pool_index, positions).rows.len()
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
        let segs: Vec<Segment> = lens.iter().map(|&l| Segment::new(l)).collect();
        causal_attention(&qkv, &segs, w, heads, &mut out);
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
        causal_attention(&qkv, &[Segment::new(2)], w, heads, &mut out);
        assert_eq!(&out[..w], &qkv[2 * w..3 * w]);
    }

    /// A text continuing a parent segment attends exactly as the whole text would: the
    /// attention over [prefix (2 rows)][text a: 3 rows][text b: 1 row] equals that of the texts
    /// written out in full.
    #[test]
    fn a_shared_prefix_is_the_same_as_the_text_written_out() {
        let (w, heads) = (8, 2);
        let qkv_row = |i: usize| -> Vec<f32> {
            (0..3 * w)
                .map(|j| ((((i * 3 * w + j) * 53) % 29) as f32 - 14.0) / 10.0)
                .collect()
        };
        // Rows 0, 1: prefix; 2..5: a's own; 5: b's own.
        let shared: Vec<f32> = (0..6).flat_map(qkv_row).collect();
        let segs = [
            Segment::new(2),
            Segment {
                len: 3,
                parent: Some(0),
            },
            Segment {
                len: 1,
                parent: Some(0),
            },
        ];
        let mut out = vec![f32::NAN; 6 * w];
        causal_attention(&shared, &segs, w, heads, &mut out);
        // Written out: a = rows 0, 1, 2, 3, 4; b = rows 0, 1, 5.
        let full: Vec<f32> = [0, 1, 2, 3, 4, 0, 1, 5]
            .into_iter()
            .flat_map(qkv_row)
            .collect();
        let mut want = vec![0.0; 8 * w];
        causal_attention(
            &full,
            &[Segment::new(5), Segment::new(3)],
            w,
            heads,
            &mut want,
        );
        let pick = |rows: &[usize], v: &[f32]| -> Vec<f32> {
            rows.iter()
                .flat_map(|&r| v[r * w..(r + 1) * w].to_vec())
                .collect()
        };
        let got = pick(&[0, 1, 2, 3, 4, 5], &out);
        let exp = pick(&[0, 1, 2, 3, 4, 7], &want);
        for (g, e) in got.iter().zip(&exp) {
            assert!((g - e).abs() < 1e-6, "{g} vs {e}");
        }
    }

    /// The plan computes one row per distinct prefix, each row at the right id and position,
    /// each segment after its parent, and pools every text at its own last position.
    #[test]
    fn the_plan_is_the_prefix_tree() {
        let texts: Vec<Vec<u32>> = vec![
            vec![1, 5, 6, 7, 9],
            vec![1, 5, 6, 8, 9],
            vec![1, 2, 9],
            vec![1, 5, 6, 7, 9], // a duplicate
            vec![1, 5, 6, 7, 3, 9],
            vec![4, 9],
        ];
        let row_len = 6;
        let mut ids = vec![0u32; texts.len() * row_len];
        for (i, t) in texts.iter().enumerate() {
            ids[i * row_len..i * row_len + t.len()].copy_from_slice(t);
        }
        let pool: Vec<usize> = texts.iter().map(|t| t.len() - 1).collect();
        let p = plan(&ids, row_len, &pool, TextPositions::UpToPool);
        // Distinct prefixes, counted by hand: 1 · 1,5 · 1,5,6 · 1,5,6,7 · 1,5,6,7,9 · 1,5,6,7,3 ·
        // 1,5,6,7,3,9 · 1,5,6,8 · 1,5,6,8,9 · 1,2 · 1,2,9 · 4 · 4,9.
        assert_eq!(p.rows.len(), 13);
        assert_eq!(p.segments.iter().map(|s| s.len).sum::<usize>(), 13);
        // Each row's position is its depth: a segment's first row follows its parent's last.
        let mut start = vec![0; p.segments.len()];
        let mut r = 0;
        for (j, s) in p.segments.iter().enumerate() {
            start[j] = r;
            if let Some(q) = s.parent {
                assert!(q < j);
                let parent_last = start[q] + p.segments[q].len - 1;
                assert_eq!(p.rows[r].1, p.rows[parent_last].1 + 1);
            } else {
                assert_eq!(p.rows[r].1, 0);
            }
            for k in 1..s.len {
                assert_eq!(p.rows[r + k].1, p.rows[r].1 + k);
            }
            r += s.len;
        }
        // Walking up from each text's pooled row spells the text.
        for (i, t) in texts.iter().enumerate() {
            let row = p.pool_rows[i];
            let (k, pos) = p.rows[row];
            assert_eq!(pos, t.len() - 1);
            assert_eq!(ids[k], *t.last().unwrap());
        }
        assert_eq!(
            p.pool_rows[0], p.pool_rows[3],
            "duplicates share their rows"
        );
    }
}
