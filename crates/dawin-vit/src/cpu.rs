//! The CPU forward in f32: the reference every other backend is compared with.
//!
//! Built from small layer functions over row-major activations `[rows, features]`
//! (`rows = batch · tokens`), so that variants (e.g. a forward blending two parameter sets per
//! sample) can reuse them. Matrix products go through the `gemm` crate (SIMD, multi-threaded
//! with rayon); norms, activations and attention are parallel over rows, samples and heads.

use rayon::prelude::*;

use crate::config::{Activation, VitConfig};
use crate::error::{Error, Result};
use crate::weights::{ClipWeights, LayerNorm, Linear, ResidualBlock, VisionWeights};

pub mod blended;

/// Products with fewer multiply-adds than this run on the calling thread.
const PARALLEL_GEMM_MIN_MACS: usize = 1 << 18;

/// A row-major `rows × cols` matrix view: element `(r, c)` is `data[r · row_stride + c · col_stride]`.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    /// Backing storage.
    pub data: &'a [f32],
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
    /// Distance between rows, in elements.
    pub row_stride: usize,
    /// Distance between columns, in elements.
    pub col_stride: usize,
}

impl<'a> MatRef<'a> {
    /// A dense row-major matrix (`row_stride = cols`, `col_stride = 1`).
    pub fn new(data: &'a [f32], rows: usize, cols: usize) -> Self {
        MatRef {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transpose, as a view of the same storage.
    pub fn t(self) -> Self {
        MatRef {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }

    fn check(&self, what: &str) {
        if self.rows > 0 && self.cols > 0 {
            let last = (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride;
            assert!(
                last < self.data.len(),
                "{what}: view {}x{} out of bounds",
                self.rows,
                self.cols
            );
        }
    }
}

/// `c = beta · c + a · b` with `c` a dense row-major `[a.rows, b.cols]` matrix (`beta` ∈ {0, 1}:
/// with 0 the old contents of `c` are ignored, NaN included). Multi-threaded when `parallel`
/// and the product is large.
pub fn gemm(a: MatRef<'_>, b: MatRef<'_>, c: &mut [f32], accumulate: bool, parallel: bool) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(b.rows, k, "gemm: inner dimensions differ");
    assert_eq!(c.len(), m * n, "gemm: output has the wrong length");
    a.check("gemm lhs");
    b.check("gemm rhs");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c.fill(0.0);
        }
        return;
    }
    let par = if parallel && m * n * k >= PARALLEL_GEMM_MIN_MACS && rayon::current_num_threads() > 1
    {
        gemm::Parallelism::Rayon(rayon::current_num_threads())
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the views were bounds-checked above, `c` is exclusively borrowed and holds m·n
    // values; gemm reads lhs/rhs through the given strides only.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}

/// `out = x Wᵀ + b` for `x` `[rows, in_dim]`, `out` `[rows, out_dim]`.
pub fn linear(x: &[f32], rows: usize, lin: &Linear, out: &mut [f32]) {
    assert_eq!(x.len(), rows * lin.in_dim, "linear: input length");
    match &lin.bias {
        Some(b) => {
            out.par_chunks_mut(lin.out_dim)
                .for_each(|r| r.copy_from_slice(b));
            gemm(
                MatRef::new(x, rows, lin.in_dim),
                MatRef::new(&lin.weight, lin.out_dim, lin.in_dim).t(),
                out,
                true,
                true,
            );
        }
        None => gemm(
            MatRef::new(x, rows, lin.in_dim),
            MatRef::new(&lin.weight, lin.out_dim, lin.in_dim).t(),
            out,
            false,
            true,
        ),
    }
}

/// `out += x Wᵀ + b` (a linear map added onto a residual stream).
pub fn linear_residual(x: &[f32], rows: usize, lin: &Linear, out: &mut [f32]) {
    assert_eq!(x.len(), rows * lin.in_dim, "linear_residual: input length");
    if let Some(b) = &lin.bias {
        out.par_chunks_mut(lin.out_dim)
            .for_each(|r| r.iter_mut().zip(b).for_each(|(o, b)| *o += b));
    }
    gemm(
        MatRef::new(x, rows, lin.in_dim),
        MatRef::new(&lin.weight, lin.out_dim, lin.in_dim).t(),
        out,
        true,
        true,
    );
}

/// Layer norm over rows of `width`: `out = (x − μ) / sqrt(σ² + eps) · weight + bias`,
/// μ and σ² (biased) per row, accumulated in f64.
pub fn layer_norm(x: &[f32], width: usize, ln: &LayerNorm, eps: f32, out: &mut [f32]) {
    assert_eq!(x.len(), out.len(), "layer_norm: lengths");
    out.par_chunks_mut(width)
        .zip(x.par_chunks(width))
        .for_each(|(o, r)| {
            layer_norm_row(r, ln, eps, o);
        });
}

/// [`layer_norm`] of one row.
pub fn layer_norm_row(x: &[f32], ln: &LayerNorm, eps: f32, out: &mut [f32]) {
    layer_norm_row_with(x, &ln.weight, &ln.bias, eps, out);
}

/// [`layer_norm_row`] with the scale `weight` and shift `bias` given as slices:
/// `out = (x − μ) / sqrt(σ² + eps) · weight + bias`.
pub fn layer_norm_row_with(x: &[f32], weight: &[f32], bias: &[f32], eps: f32, out: &mut [f32]) {
    let n = x.len() as f64;
    let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    let inv = (1.0 / (var + eps as f64).sqrt()) as f32;
    let mean = mean as f32;
    for (((o, &v), &w), &b) in out.iter_mut().zip(x).zip(weight).zip(bias) {
        *o = (v - mean) * inv * w + b;
    }
}

/// QuickGELU in place: `x ← x · σ(1.702 x) = x / (1 + exp(−1.702 x))`, with [`exp_approx`].
pub fn quick_gelu(x: &mut [f32]) {
    x.par_chunks_mut(4096).for_each(|c| {
        for v in c {
            *v /= 1.0 + exp_approx(-1.702 * *v);
        }
    });
}

/// Exact GELU in place: `x ← x · Φ(x) = ½ x (1 + erf(x / √2))` (PyTorch's `nn.GELU()`), with
/// [`erf_approx`].
pub fn gelu(x: &mut [f32]) {
    x.par_chunks_mut(4096).for_each(|c| {
        for v in c {
            *v *= 0.5 * (1.0 + erf_approx(*v * std::f32::consts::FRAC_1_SQRT_2));
        }
    });
}

/// The MLP activation `act` in place ([`quick_gelu`] or [`gelu`]).
pub fn activation(act: Activation, x: &mut [f32]) {
    match act {
        Activation::QuickGelu => quick_gelu(x),
        Activation::Gelu => gelu(x),
    }
}

/// `erf(x)` to about 1e-7 absolute, branch-free so that it vectorises.
///
/// `erf(x) = sign(x) · (1 − t·exp(−x² + P(t)))` with `t = 1 / (1 + |x|/2)` and `P` the degree-9
/// polynomial of Numerical Recipes' `erfcc` (Chebyshev fit, fractional error < 1.2e-7 in
/// `erfc`), evaluated in f32 with [`exp_approx`].
#[inline(always)]
pub fn erf_approx(x: f32) -> f32 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    #[allow(clippy::excessive_precision)]
    let p = -1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let erfc = t * exp_approx(-z * z + p);
    (1.0 - erfc).copysign(x)
}

/// `exp(x)` to about 2 ulp for x in [−87, 88] (clamped outside), in branch-free arithmetic that
/// the compiler vectorises even for the baseline x86-64 target (libm's `expf` is a scalar call).
///
/// Cephes' `expf`: `x = n ln2 + r` with `n = round(x / ln2)` (by the 1.5·2²³ trick), ln2 split in
/// two parts, `exp(r) ≈ 1 + r + r² P(r)` (degree-5 P) on |r| ≤ ln2/2, then `· 2ⁿ` through the
/// exponent bits.
#[inline(always)]
pub fn exp_approx(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 · 2^23
    let x = x.clamp(-87.0, 88.0);
    let t = x * std::f32::consts::LOG2_E + MAGIC;
    let n = t - MAGIC;
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
    #[allow(clippy::excessive_precision)]
    let p = ((((1.987_569_15e-4 * r + 1.398_199_95e-3) * r + 8.333_451_9e-3) * r + 4.166_579_6e-2)
        * r
        + 1.666_666_55e-1)
        * r
        + 5.000_000_1e-1;
    let e = p * r * r + r + 1.0;
    // n is an integer in [-126, 127]; its bits sit in the low mantissa bits of t.
    let ni = (t.to_bits() as i32).wrapping_sub(MAGIC.to_bits() as i32);
    e * f32::from_bits(((ni + 127) as u32) << 23)
}

/// Multi-head self-attention on packed projections.
///
/// `qkv` is `[batch·tokens, 3·width]` (q, k, v side by side, head h in columns `h·d..(h+1)·d` of
/// each), `out` is `[batch·tokens, width]`. Per sample and head:
/// `out_h = softmax(Q_h K_hᵀ / sqrt(d)) V_h`, softmax over keys with the maximum subtracted.
pub fn attention(
    qkv: &[f32],
    batch: usize,
    tokens: usize,
    width: usize,
    heads: usize,
    out: &mut [f32],
) {
    assert_eq!(
        qkv.len(),
        batch * tokens * 3 * width,
        "attention: qkv length"
    );
    assert_eq!(out.len(), batch * tokens * width, "attention: out length");
    let d = width / heads;
    let scale = 1.0 / (d as f32).sqrt();
    let per_sample = tokens * 3 * width;
    let results: Vec<Vec<f32>> = (0..batch * heads)
        .into_par_iter()
        .map(|bh| {
            let (b, h) = (bh / heads, bh % heads);
            let base = &qkv[b * per_sample..(b + 1) * per_sample];
            let view = |off: usize| MatRef {
                data: &base[off + h * d..],
                rows: tokens,
                cols: d,
                row_stride: 3 * width,
                col_stride: 1,
            };
            let (q, k, v) = (view(0), view(width), view(2 * width));
            let mut scores = vec![0.0f32; tokens * tokens];
            gemm(q, k.t(), &mut scores, false, false);
            for row in scores.chunks_mut(tokens) {
                softmax_row(row, scale);
            }
            let mut o = vec![0.0f32; tokens * d];
            gemm(
                MatRef::new(&scores, tokens, tokens),
                v,
                &mut o,
                false,
                false,
            );
            o
        })
        .collect();
    out.par_chunks_mut(tokens * width)
        .enumerate()
        .for_each(|(b, ob)| {
            for h in 0..heads {
                let o = &results[b * heads + h];
                for t in 0..tokens {
                    ob[t * width + h * d..t * width + (h + 1) * d]
                        .copy_from_slice(&o[t * d..(t + 1) * d]);
                }
            }
        });
}

/// `row ← softmax(scale · row)`, with the maximum subtracted before `exp`.
pub fn softmax_row(row: &mut [f32], scale: f32) {
    let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let mut sum = 0.0f32;
    for v in row.iter_mut() {
        *v = ((*v - max) * scale).exp();
        sum += *v;
    }
    let inv = 1.0 / sum;
    row.iter_mut().for_each(|v| *v *= inv);
}

/// Patch embedding, class token and positional embedding:
/// `x[b, 0] = class + pos[0]`, `x[b, 1 + i] = conv1 · patch_i(image_b) + pos[1 + i]`,
/// patches in row-major grid order. `images` is `[batch, 3, S, S]`, `out` `[batch, T, W]`.
pub fn embed(images: &[f32], batch: usize, cfg: &VitConfig, v: &VisionWeights, out: &mut [f32]) {
    let (g, w, t) = (cfg.grid(), cfg.width, cfg.num_tokens());
    assert_eq!(
        images.len(),
        batch * cfg.image_numel(),
        "embed: images length"
    );
    assert_eq!(out.len(), batch * t * w, "embed: out length");
    let cols = im2col(images, batch, cfg);
    let mut patches = vec![0.0f32; batch * g * g * w];
    linear(&cols, batch * g * g, &v.conv1, &mut patches);
    out.par_chunks_mut(t * w).enumerate().for_each(|(b, ob)| {
        for (i, o) in ob[..w].iter_mut().enumerate() {
            *o = v.class_embedding[i] + v.positional_embedding[i];
        }
        let src = &patches[b * g * g * w..(b + 1) * g * g * w];
        for ((o, &x), &pe) in ob[w..]
            .iter_mut()
            .zip(src)
            .zip(&v.positional_embedding[w..])
        {
            *o = x + pe;
        }
    });
}

/// im2col of `images` `[batch, 3, S, S]`: `[batch · G², 3·P·P]`, one row per patch (row-major
/// grid order), values in (channel, row, column) order like the conv weight.
pub fn im2col(images: &[f32], batch: usize, cfg: &VitConfig) -> Vec<f32> {
    let (s, p, g) = (cfg.image_size, cfg.patch_size, cfg.grid());
    let pd = cfg.patch_dim();
    let mut cols = vec![0.0f32; batch * g * g * pd];
    cols.par_chunks_mut(pd).enumerate().for_each(|(idx, row)| {
        let (b, gi) = (idx / (g * g), idx % (g * g));
        let (gy, gx) = (gi / g, gi % g);
        let img = &images[b * 3 * s * s..(b + 1) * 3 * s * s];
        for c in 0..3 {
            for ky in 0..p {
                let src = &img[c * s * s + (gy * p + ky) * s + gx * p..][..p];
                row[(c * p + ky) * p..][..p].copy_from_slice(src);
            }
        }
    });
    cols
}

/// Scratch buffers of one forward, reused across blocks.
#[derive(Default)]
pub struct Workspace {
    h: Vec<f32>,
    qkv: Vec<f32>,
    attn: Vec<f32>,
    mlp: Vec<f32>,
}

impl Workspace {
    fn resize(&mut self, rows: usize, cfg: &VitConfig) {
        self.h.resize(rows * cfg.width, 0.0);
        self.qkv.resize(rows * 3 * cfg.width, 0.0);
        self.attn.resize(rows * cfg.width, 0.0);
        self.mlp.resize(rows * cfg.mlp_dim, 0.0);
    }
}

/// One residual block in place on `x` `[batch·T, W]`:
/// `x += γ1 ⊙ out_proj(attention(in_proj(ln_1(x))))`, then
/// `x += γ2 ⊙ c_proj(act(c_fc(ln_2(x))))`, with `act` = `cfg.activation` and the LayerScale
/// factors γ1, γ2 (`blk.ls_1`, `blk.ls_2`) only when the block has them (else 1).
pub fn residual_block(
    x: &mut [f32],
    batch: usize,
    cfg: &VitConfig,
    blk: &ResidualBlock,
    ws: &mut Workspace,
) {
    let rows = batch * cfg.num_tokens();
    ws.resize(rows, cfg);
    layer_norm(x, cfg.width, &blk.ln_1, cfg.layer_norm_eps, &mut ws.h);
    linear(&ws.h, rows, &blk.attn_in_proj, &mut ws.qkv);
    attention(
        &ws.qkv,
        batch,
        cfg.num_tokens(),
        cfg.width,
        cfg.heads,
        &mut ws.attn,
    );
    branch_residual(
        &ws.attn,
        rows,
        &blk.attn_out_proj,
        blk.ls_1.as_deref(),
        &mut ws.h,
        x,
    );
    layer_norm(x, cfg.width, &blk.ln_2, cfg.layer_norm_eps, &mut ws.h);
    linear(&ws.h, rows, &blk.mlp_c_fc, &mut ws.mlp);
    activation(cfg.activation, &mut ws.mlp);
    branch_residual(
        &ws.mlp,
        rows,
        &blk.mlp_c_proj,
        blk.ls_2.as_deref(),
        &mut ws.h,
        x,
    );
}

/// The end of a residual branch: `out += x Wᵀ + b` ([`linear_residual`]), or with a LayerScale
/// `gamma` `out += γ ⊙ (x Wᵀ + b)` (the branch first computed into `tmp`, `[rows, out_dim]`).
pub fn branch_residual(
    x: &[f32],
    rows: usize,
    lin: &Linear,
    gamma: Option<&[f32]>,
    tmp: &mut [f32],
    out: &mut [f32],
) {
    match gamma {
        None => linear_residual(x, rows, lin, out),
        Some(g) => {
            linear(x, rows, lin, tmp);
            scaled_add(tmp, g, out);
        }
    }
}

/// `out[r] += γ ⊙ y[r]` for every row `r` of `y` and `out` (rows of `γ.len()` values).
pub fn scaled_add(y: &[f32], gamma: &[f32], out: &mut [f32]) {
    assert_eq!(y.len(), out.len(), "scaled_add: lengths");
    out.par_chunks_mut(gamma.len())
        .zip(y.par_chunks(gamma.len()))
        .for_each(|(o, y)| {
            for ((o, &y), &g) in o.iter_mut().zip(y).zip(gamma) {
                *o += g * y;
            }
        });
}

/// `row ← row / ‖row‖₂` for each row of `width` (a zero row stays zero).
pub fn l2_normalize_rows(x: &mut [f32], width: usize) {
    for r in x.chunks_mut(width) {
        let n = r
            .iter()
            .map(|&v| (v as f64) * (v as f64))
            .sum::<f64>()
            .sqrt();
        if n > 0.0 {
            let inv = (1.0 / n) as f32;
            r.iter_mut().for_each(|v| *v *= inv);
        }
    }
}

/// The image features before normalisation, `[batch, E]`: the full tower up to the projection.
pub fn encode_images(images: &[f32], batch: usize, cfg: &VitConfig, v: &VisionWeights) -> Vec<f32> {
    let (t, w) = (cfg.num_tokens(), cfg.width);
    let mut x = vec![0.0f32; batch * t * w];
    embed(images, batch, cfg, v, &mut x);
    let mut y = vec![0.0f32; x.len()];
    layer_norm(&x, w, &v.ln_pre, cfg.layer_norm_eps, &mut y);
    let mut x = y;
    let mut ws = Workspace::default();
    for blk in &v.resblocks {
        residual_block(&mut x, batch, cfg, blk, &mut ws);
    }
    let mut pooled = vec![0.0f32; batch * w];
    pooled.par_chunks_mut(w).enumerate().for_each(|(b, o)| {
        layer_norm_row(
            &x[b * t * w..b * t * w + w],
            &v.ln_post,
            cfg.layer_norm_eps,
            o,
        );
    });
    let mut feats = vec![0.0f32; batch * cfg.embed_dim];
    linear(&pooled, batch, &v.proj, &mut feats);
    feats
}

/// Logits `[batch, C]` and normalised features `[batch, E]` of preprocessed `images`
/// `[batch, 3, S, S]`: `f = proj(ln_post(x_cls))`, `logits = W_head · f/‖f‖ + b_head`.
pub fn forward(
    images: &[f32],
    batch: usize,
    cfg: &VitConfig,
    weights: &ClipWeights,
) -> Result<(Vec<f32>, Vec<f32>)> {
    check_images(images, batch, cfg)?;
    let mut feats = encode_images(images, batch, cfg, &weights.visual);
    l2_normalize_rows(&mut feats, cfg.embed_dim);
    let mut logits = vec![0.0f32; batch * cfg.num_classes];
    linear(&feats, batch, &weights.head, &mut logits);
    Ok((logits, feats))
}

/// Checks the input buffer of a forward: length `batch · 3 · S · S`, every value finite.
pub fn check_images(images: &[f32], batch: usize, cfg: &VitConfig) -> Result<()> {
    let per = cfg.image_numel();
    if batch == 0 {
        return Err(Error::arg("batch", "must be > 0"));
    }
    if images.len() != batch * per {
        let extra = if images.len().is_multiple_of(batch) {
            let got = images.len() / batch;
            let side = ((got / 3) as f64).sqrt().round() as usize;
            if 3 * side * side == got {
                format!(
                    " (that is {side}×{side} images; resize them to {0}×{0})",
                    cfg.image_size
                )
            } else {
                String::new()
            }
        } else {
            String::new()
        };
        return Err(Error::arg(
            "images",
            format!(
                "{} values for batch {batch}, expected {} = {batch} × 3 × {} × {}{extra}",
                images.len(),
                batch * per,
                cfg.image_size,
                cfg.image_size
            ),
        ));
    }
    if let Some(i) = images.iter().position(|v| !v.is_finite()) {
        return Err(Error::arg(
            "images",
            format!(
                "image {} holds a non-finite value ({}) at offset {}",
                i / per,
                images[i],
                i % per
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        let mut c = vec![0.0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k)
                    .map(|l| a[i * k + l] as f64 * b[l * n + j] as f64)
                    .sum::<f64>() as f32;
            }
        }
        c
    }

    #[test]
    fn gemm_matches_naive_products_with_strides() {
        let (m, k, n) = (37, 70, 53);
        let a: Vec<f32> = (0..m * k)
            .map(|i| ((i * 7919) % 101) as f32 / 50.0 - 1.0)
            .collect();
        let b: Vec<f32> = (0..k * n)
            .map(|i| ((i * 104_729) % 97) as f32 / 48.0 - 1.0)
            .collect();
        let want = naive(&a, &b, m, k, n);
        let mut c = vec![f32::NAN; m * n];
        gemm(
            MatRef::new(&a, m, k),
            MatRef::new(&b, k, n),
            &mut c,
            false,
            true,
        );
        for (x, y) in c.iter().zip(&want) {
            assert!((x - y).abs() < 1e-4, "{x} vs {y}");
        }
        // bᵀ stored as [n, k], viewed transposed; accumulate onto ones.
        let bt = crate::weights::transpose(&b, k, n);
        let mut c = vec![1.0f32; m * n];
        gemm(
            MatRef::new(&a, m, k),
            MatRef::new(&bt, n, k).t(),
            &mut c,
            true,
            false,
        );
        for (x, y) in c.iter().zip(&want) {
            assert!((x - (y + 1.0)).abs() < 1e-4, "{x} vs {y}");
        }
    }

    #[test]
    fn layer_norm_and_softmax_by_hand() {
        let ln = LayerNorm {
            weight: vec![2.0, 1.0, 1.0, 1.0],
            bias: vec![0.0, 0.0, 0.0, 1.0],
        };
        let mut out = vec![0.0; 4];
        // mean 2.5, var 1.25
        layer_norm(&[1.0, 2.0, 3.0, 4.0], 4, &ln, 0.0, &mut out);
        let s = 1.0 / 1.25f32.sqrt();
        let want = [-1.5 * s * 2.0, -0.5 * s, 0.5 * s, 1.5 * s + 1.0];
        for (x, y) in out.iter().zip(want) {
            assert!((x - y).abs() < 1e-6);
        }
        let mut r = vec![0.0, 2.0f32.ln(), 1000.0];
        softmax_row(&mut r, 1.0);
        assert_eq!(r, vec![0.0, 0.0, 1.0]);
        let mut r = vec![0.0, 2.0f32.ln()];
        softmax_row(&mut r, 1.0);
        assert!((r[0] - 1.0 / 3.0).abs() < 1e-7 && (r[1] - 2.0 / 3.0).abs() < 1e-7);
    }

    /// `torch.nn.functional.gelu` (exact, float64) at these points, torch 2.15.0.
    #[test]
    fn gelu_matches_pytorch() {
        let xs = [
            -6.0f32, -3.0, -1.5, -0.5, -1e-3, 0.0, 1e-3, 0.25, 0.7, 1.0, 2.0, 4.5, 9.0,
        ];
        let want = [
            -5.919525869479969e-09,
            -0.00404969409489031,
            -0.10021080190328704,
            -0.15426876936299344,
            -0.000499601057786089,
            0.0,
            0.000500398942213911,
            0.14967658142073093,
            0.5306254434438489,
            0.841344746068543,
            1.9544997361036416,
            4.4999847104709385,
            9.0,
        ];
        let mut got = xs.to_vec();
        activation(Activation::Gelu, &mut got);
        for ((x, g), w) in xs.iter().zip(&got).zip(want) {
            let err = (*g as f64 - w).abs();
            assert!(err <= 2e-7 * (1.0 + w.abs()), "gelu({x}) = {g}, torch {w}");
        }
        // QuickGELU differs from it by ~2e-2 at x = 2: the two must not be confused.
        let mut q = xs.to_vec();
        activation(Activation::QuickGelu, &mut q);
        assert!((q[10] as f64 - want[10]).abs() > 1e-2);
    }

    #[test]
    fn exp_approx_is_within_a_few_ulp() {
        let mut worst = 0.0f64;
        let mut x = -87.0f32;
        while x <= 88.0 {
            let want = (x as f64).exp();
            let got = exp_approx(x) as f64;
            worst = worst.max((got - want).abs() / want);
            x += 0.000_731;
        }
        assert!(
            worst < 3.0 * f32::EPSILON as f64,
            "max relative error {worst:e}"
        );
        assert_eq!(exp_approx(0.0), 1.0);
        assert!(exp_approx(-1000.0) > 0.0 && exp_approx(1000.0).is_finite());
    }

    #[test]
    fn quick_gelu_by_hand() {
        let mut x = vec![0.0, 1.0, -1.0];
        quick_gelu(&mut x);
        let s = |v: f64| 1.0 / (1.0 + (-1.702 * v).exp());
        assert_eq!(x[0], 0.0);
        assert!((x[1] as f64 - s(1.0)).abs() < 1e-7);
        assert!((x[2] as f64 + s(-1.0)).abs() < 1e-7);
    }

    #[test]
    fn attention_with_one_token_returns_v() {
        // One token: softmax over a single key is 1, so out = v for each head.
        let (w, heads) = (4, 2);
        let qkv: Vec<f32> = (0..2 * 3 * w).map(|i| i as f32).collect();
        let mut out = vec![0.0; 2 * w];
        attention(&qkv, 2, 1, w, heads, &mut out);
        assert_eq!(out, vec![8.0, 9.0, 10.0, 11.0, 20.0, 21.0, 22.0, 23.0]);
    }

    #[test]
    fn attention_matches_a_naive_loop() {
        let (b, t, w, heads) = (2, 5, 8, 2);
        let d = w / heads;
        let qkv: Vec<f32> = (0..b * t * 3 * w)
            .map(|i| (((i * 31) % 17) as f32 - 8.0) / 8.0)
            .collect();
        let mut out = vec![0.0; b * t * w];
        attention(&qkv, b, t, w, heads, &mut out);
        for bi in 0..b {
            for h in 0..heads {
                for i in 0..t {
                    let q = |j: usize, c: usize| {
                        qkv[(bi * t + j) * 3 * w + c * w + h * d..][..d].to_vec()
                    };
                    let qi = q(i, 0);
                    let s: Vec<f64> = (0..t)
                        .map(|j| {
                            qi.iter()
                                .zip(q(j, 1))
                                .map(|(a, b)| (*a * b) as f64)
                                .sum::<f64>()
                                / (d as f64).sqrt()
                        })
                        .collect();
                    let mx = s.iter().cloned().fold(f64::MIN, f64::max);
                    let e: Vec<f64> = s.iter().map(|v| (v - mx).exp()).collect();
                    let z: f64 = e.iter().sum();
                    for c in 0..d {
                        let want: f64 = (0..t).map(|j| e[j] / z * q(j, 2)[c] as f64).sum();
                        let got = out[(bi * t + i) * w + h * d + c] as f64;
                        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
                    }
                }
            }
        }
    }
}
