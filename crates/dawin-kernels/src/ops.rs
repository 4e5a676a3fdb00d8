//! The transformer kernels of `kernels/embed.cu`, `norm.cu` and `attention.cu` on device views
//! (sm_80 and newer). T is f16 or bf16 ([`Half`]), statistics and accumulation f32; `c` are the
//! per-row blend coefficients of a launch over several parameter sets (1 without):
//!
//! * [`Gpu::im2col`]: `cols[b·G² + p, c·P² + ky·P + kx] = img[b, c, gy·P + ky, gx·P + kx]`,
//!   columns `3P² .. ld` zero (a patch embedding, a conv of stride = kernel, becomes a GEMM);
//! * [`Gpu::embed_tokens`]: `x[b, 0] = Σ_s c_s (cls_s + pos_s[0])`,
//!   `x[b, 1 + p] = patches[b·P + p] + Σ_s c_s pos_s[1 + p]`;
//! * [`Gpu::layer_norm`]: `y = Σ_s c_s (γ_s ⊙ (x − μ)/√(σ² + ε) + β_s)`;
//! * [`Gpu::attention`]: per (batch, head) `softmax(q kᵀ·scale) v`, head dim 1 ..= 128;
//! * [`Gpu::l2_normalize`]: `f = x/‖x‖₂` (a zero row stays zero), as f32 and as T.
//!
//! Every launcher checks its views against the shape (lengths, strides, limits) and returns an
//! [`crate::Error::InvalidArgument`] naming the argument at fault; each shape's `check` and
//! `*_len` methods are those checks without a device.

use crate::buffer::{DeviceView, DeviceViewMut};
use crate::device::Gpu;
use crate::error::Result;
use crate::launch::{ensure, ensure_len, struct_size, to_u32, Addresses, DevPtr, KernelArg};
use crate::source::{ArgKind, EMBED_PARAMS, LAYER_NORM_PARAMS, MAX_SETS};
use cudarc::driver::{DeviceRepr, LaunchConfig};
use dawin_core::Param;
use half::{bf16, f16};

mod sealed {
    pub trait Sealed {}
    impl Sealed for half::f16 {}
    impl Sealed for half::bf16 {}
}

/// The 16-bit element types of the transformer kernels: [`half::f16`] and [`half::bf16`].
pub trait Half: Param + sealed::Sealed {}
impl Half for f16 {}
impl Half for bf16 {}

/// The largest head dimension of the attention kernels (ViT-bigG/14 has 104).
pub const MAX_HEAD_DIM: usize = 128;
/// The largest head dimension of `attention_*`; wider heads run `attention_wide_*`.
const ATT_NARROW_HEAD_DIM: usize = 64;
/// Queries per block of `attention_*` (4 warps of 8) and of `attention_wide_*` (4 warps of 6).
const ATT_QUERIES_PER_BLOCK: usize = 32;
const ATT_WIDE_QUERIES_PER_BLOCK: usize = 24;

/// Where a GEMM or a layer norm writes: T values or f32 values.
#[derive(Debug)]
pub enum Output<'a, T: Half> {
    /// 16-bit values.
    Half(DeviceViewMut<'a, T>),
    /// f32 values.
    F32(DeviceViewMut<'a, f32>),
}

impl<T: Half> Output<'_, T> {
    pub(crate) fn is_f32(&self) -> bool {
        matches!(self, Output::F32(_))
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            Output::Half(v) => v.len(),
            Output::F32(v) => v.len(),
        }
    }

    pub(crate) fn address<'a>(&'a mut self, addr: &mut Addresses<'a>) -> u64 {
        match self {
            Output::Half(v) => addr.of_mut(v),
            Output::F32(v) => addr.of_mut(v),
        }
    }
}

/// The checks of the number of parameter sets of a launch: 1 ..= [`MAX_SETS`], and 1 without
/// coefficients.
pub(crate) fn check_sets(arg: &'static str, sets: usize, blended: bool) -> Result<()> {
    ensure((1..=MAX_SETS).contains(&sets), arg, || {
        format!("sets = {sets}, must be 1..={MAX_SETS}")
    })?;
    ensure(blended || sets == 1, arg, || {
        format!("{sets} parameter sets need coefficients (coef = None)")
    })
}

fn grid_1d(n: u64, threads: u32) -> LaunchConfig {
    let blocks = n.div_ceil(u64::from(threads)).clamp(1, 65_535 * 8);
    LaunchConfig {
        grid_dim: (blocks as u32, 1, 1),
        block_dim: (threads, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// One warp per row, 8 rows per block.
fn warp_per_row(rows: u32) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (rows.div_ceil(8).max(1), 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    }
}

// ---------------------------------------------------------------------------------------------
// im2col

/// The shape of one [`Gpu::im2col`]: f32 images `[batch, 3, size, size]` into T patch rows
/// `[batch·G², ld]`, G = size / patch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Im2colShape {
    /// Images.
    pub batch: usize,
    /// Image side in pixels (a multiple of `patch`).
    pub image_size: usize,
    /// Patch side in pixels.
    pub patch: usize,
    /// Row stride of the output, at least `3·patch²` (the columns beyond are zero).
    pub ld: usize,
}

impl Im2colShape {
    /// Elements the images must hold, `batch·3·size²`.
    pub fn images_len(&self) -> usize {
        self.batch * 3 * self.image_size * self.image_size
    }

    /// Elements the output must hold, `batch·G²·ld`.
    pub fn out_len(&self) -> usize {
        let g = self.image_size / self.patch.max(1);
        self.batch * g * g * self.ld
    }

    /// The checks of [`Gpu::im2col`] that need no buffer.
    pub fn check(&self) -> Result<()> {
        let (size, patch) = (self.image_size, self.patch);
        ensure(patch > 0 && size.is_multiple_of(patch), "patch", || {
            format!("image size {size} is not a multiple of the patch size {patch}")
        })?;
        ensure(self.ld >= 3 * patch * patch, "ld", || {
            format!("{} < 3·patch² = {}", self.ld, 3 * patch * patch)
        })?;
        for (arg, v) in [("batch", self.batch), ("image_size", size), ("ld", self.ld)] {
            to_u32(arg, v)?;
        }
        Ok(())
    }
}

impl Gpu {
    /// im2col of f32 `images` into T `out` (see the module docs).
    pub fn im2col<T: Half>(
        &self,
        shape: &Im2colShape,
        images: &DeviceView<'_, f32>,
        out: &mut DeviceViewMut<'_, T>,
    ) -> Result<()> {
        shape.check()?;
        ensure_len("images", images.len(), shape.images_len())?;
        ensure_len("out", out.len(), shape.out_len())?;
        let mut addr = Addresses::new(self);
        let (pi, po) = (DevPtr(addr.of(images)), DevPtr(addr.of_mut(out)));
        let (batch, size) = (shape.batch as u32, shape.image_size as u32);
        let (patch, ld) = (to_u32("patch", shape.patch)?, shape.ld as u32);
        let mut l = self.launch(&format!("im2col_{}", T::DTYPE.name()))?;
        l.arg(&pi)?.arg(&po)?.arg(&batch)?.arg(&size)?.arg(&patch)?;
        l.arg(&ld)?;
        l.run(grid_1d(shape.out_len() as u64, 256))
    }
}

// ---------------------------------------------------------------------------------------------
// Token embeddings

/// The shape of one [`Gpu::embed_tokens`]: f32 patch embeddings `[batch·patches, width]` into
/// f32 tokens `[batch·(patches + 1), width]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EmbedShape {
    /// Images.
    pub batch: usize,
    /// Patches per image.
    pub patches: usize,
    /// Token width.
    pub width: usize,
}

impl EmbedShape {
    /// Elements the patch embeddings must hold, `batch·patches·width`.
    pub fn patches_len(&self) -> usize {
        self.batch * self.patches * self.width
    }

    /// Elements of a class embedding, `width`.
    pub fn class_len(&self) -> usize {
        self.width
    }

    /// Elements of a positional embedding, `(patches + 1)·width`.
    pub fn positional_len(&self) -> usize {
        (self.patches + 1) * self.width
    }

    /// Elements the output must hold, `batch·(patches + 1)·width`.
    pub fn out_len(&self) -> usize {
        self.batch * self.positional_len()
    }

    /// Coefficients of a blend over `sets` parameter sets, `batch·sets` (one row per image).
    pub fn coef_len(&self, sets: usize) -> usize {
        self.batch * sets
    }

    /// The checks of [`Gpu::embed_tokens`] that need no buffer.
    pub fn check(&self, sets: usize, blended: bool) -> Result<()> {
        check_sets("sets", sets, blended)?;
        ensure(self.width > 0, "width", || "must be > 0".into())?;
        for (arg, v) in [
            ("batch", self.batch),
            ("patches", self.patches + 1),
            ("width", self.width),
        ] {
            to_u32(arg, v)?;
        }
        Ok(())
    }
}

/// One parameter set of [`Gpu::embed_tokens`].
#[derive(Debug)]
pub struct EmbedWeights<'a, T: Half> {
    /// The class embedding `[width]`.
    pub class: DeviceView<'a, T>,
    /// The positional embedding `[patches + 1, width]`.
    pub positional: DeviceView<'a, T>,
}

/// `struct EmbedParams` of `embed.cu`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct EmbedParams {
    patches: u64,
    out: u64,
    cls: [u64; MAX_SETS],
    pos: [u64; MAX_SETS],
    coef: u64,
    batch: u32,
    np: u32,
    width: u32,
    sets: u32,
}

impl Gpu {
    /// Class and positional embeddings added to the patch embeddings (see the module docs), over
    /// the parameter sets `sets`, blended with `coef` (`[batch, sets]`) when given.
    pub fn embed_tokens<T: Half>(
        &self,
        shape: &EmbedShape,
        patches: &DeviceView<'_, f32>,
        sets: &[EmbedWeights<'_, T>],
        coef: Option<&DeviceView<'_, f32>>,
        out: &mut DeviceViewMut<'_, f32>,
    ) -> Result<()> {
        shape.check(sets.len(), coef.is_some())?;
        ensure_len("patches", patches.len(), shape.patches_len())?;
        for s in sets {
            ensure_len("class", s.class.len(), shape.class_len())?;
            ensure_len("positional", s.positional.len(), shape.positional_len())?;
        }
        if let Some(c) = coef {
            ensure_len("coef", c.len(), shape.coef_len(sets.len()))?;
        }
        ensure_len("out", out.len(), shape.out_len())?;
        let mut addr = Addresses::new(self);
        let mut p = EmbedParams {
            patches: addr.of(patches),
            out: addr.of_mut(out),
            coef: coef.map_or(0, |c| addr.of(c)),
            batch: shape.batch as u32,
            np: shape.patches as u32,
            width: shape.width as u32,
            sets: sets.len() as u32,
            ..Default::default()
        };
        for (i, s) in sets.iter().enumerate() {
            p.cls[i] = addr.of(&s.class);
            p.pos[i] = addr.of(&s.positional);
        }
        let mut l = self.launch(&format!("embed_tokens_{}", T::DTYPE.name()))?;
        l.arg(&p)?;
        l.run(grid_1d(shape.out_len() as u64, 256))
    }
}

// ---------------------------------------------------------------------------------------------
// Layer norm

/// The shape of one [`Gpu::layer_norm`]: `rows` f32 rows of `d` values (row r at `r·in_stride`)
/// into rows at `r·out_stride`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LayerNormShape {
    /// Rows.
    pub rows: usize,
    /// Row length.
    pub d: usize,
    /// Input row stride in elements, at least `d`.
    pub in_stride: usize,
    /// Output row stride in elements, at least `d`.
    pub out_stride: usize,
    /// Rows per row of blend coefficients; 1 without a blend.
    pub rows_per_coef: usize,
    /// ε.
    pub eps: f32,
}

impl LayerNormShape {
    /// Elements the input must hold, `(rows − 1)·in_stride + d`.
    pub fn in_len(&self) -> usize {
        (self.rows.max(1) - 1) * self.in_stride + self.d
    }

    /// Elements the output must hold, `(rows − 1)·out_stride + d`.
    pub fn out_len(&self) -> usize {
        (self.rows.max(1) - 1) * self.out_stride + self.d
    }

    /// Coefficients of a blend over `sets` parameter sets, `⌈rows / rows_per_coef⌉·sets`.
    pub fn coef_len(&self, sets: usize) -> usize {
        self.rows.div_ceil(self.rows_per_coef.max(1)) * sets
    }

    /// The checks of [`Gpu::layer_norm`] that need no buffer.
    pub fn check(&self, sets: usize, blended: bool) -> Result<()> {
        check_sets("sets", sets, blended)?;
        ensure(self.rows_per_coef > 0, "rows_per_coef", || {
            "must be > 0".into()
        })?;
        ensure(self.rows > 0, "rows", || "must be > 0".into())?;
        ensure(self.d > 0 && self.in_stride >= self.d, "in_stride", || {
            format!("{} < d = {}", self.in_stride, self.d)
        })?;
        ensure(self.out_stride >= self.d, "out_stride", || {
            format!("{} < d = {}", self.out_stride, self.d)
        })?;
        for (arg, v) in [
            ("rows", self.rows),
            ("in_stride", self.in_stride),
            ("out_stride", self.out_stride),
        ] {
            to_u32(arg, v)?;
        }
        Ok(())
    }
}

/// One parameter set of [`Gpu::layer_norm`].
#[derive(Debug)]
pub struct NormWeights<'a, T: Half> {
    /// The scale γ `[d]`.
    pub weight: DeviceView<'a, T>,
    /// The shift β `[d]`.
    pub bias: DeviceView<'a, T>,
}

/// `struct LayerNormParams` of `norm.cu`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct LayerNormParams {
    input: u64,
    out: u64,
    gamma: [u64; MAX_SETS],
    beta: [u64; MAX_SETS],
    coef: u64,
    rows: u32,
    d: u32,
    in_stride: u32,
    out_stride: u32,
    rows_per_coef: u32,
    sets: u32,
    out_f32: u32,
    eps: f32,
}

impl Gpu {
    /// Layer norm with f32 statistics, one warp per row (see the module docs), over the
    /// parameter sets `sets`, blended with `coef` (`[⌈rows / rows_per_coef⌉, sets]`) when given.
    pub fn layer_norm<T: Half>(
        &self,
        shape: &LayerNormShape,
        x: &DeviceView<'_, f32>,
        sets: &[NormWeights<'_, T>],
        coef: Option<&DeviceView<'_, f32>>,
        mut out: Output<'_, T>,
    ) -> Result<()> {
        shape.check(sets.len(), coef.is_some())?;
        ensure_len("x", x.len(), shape.in_len())?;
        for s in sets {
            ensure_len("weight", s.weight.len(), shape.d)?;
            ensure_len("bias", s.bias.len(), shape.d)?;
        }
        if let Some(c) = coef {
            ensure_len("coef", c.len(), shape.coef_len(sets.len()))?;
        }
        ensure_len("out", out.len(), shape.out_len())?;
        let mut addr = Addresses::new(self);
        let out_f32 = out.is_f32();
        let mut p = LayerNormParams {
            input: addr.of(x),
            out: out.address(&mut addr),
            coef: coef.map_or(0, |c| addr.of(c)),
            rows: shape.rows as u32,
            d: to_u32("d", shape.d)?,
            in_stride: shape.in_stride as u32,
            out_stride: shape.out_stride as u32,
            rows_per_coef: to_u32("rows_per_coef", shape.rows_per_coef)?,
            sets: sets.len() as u32,
            out_f32: u32::from(out_f32),
            eps: shape.eps,
            ..Default::default()
        };
        for (i, s) in sets.iter().enumerate() {
            p.gamma[i] = addr.of(&s.weight);
            p.beta[i] = addr.of(&s.bias);
        }
        let mut l = self.launch(&format!("layer_norm_{}", T::DTYPE.name()))?;
        l.arg(&p)?;
        l.run(warp_per_row(p.rows))
    }
}

// ---------------------------------------------------------------------------------------------
// Attention

/// The shape of one [`Gpu::attention`]: T `qkv` `[batch·seq, 3·heads·head_dim]` (q | k | v,
/// head h at columns `h·head_dim` of each third) into T `[batch·seq, heads·head_dim]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttentionShape {
    /// Sequences.
    pub batch: usize,
    /// Tokens per sequence.
    pub seq: usize,
    /// Heads.
    pub heads: usize,
    /// Head dimension: 1 ..= [`MAX_HEAD_DIM`].
    pub head_dim: usize,
    /// Scale of the scores, usually `1/√head_dim`.
    pub scale: f32,
}

impl AttentionShape {
    /// Elements `qkv` must hold, `batch·seq·3·heads·head_dim`.
    pub fn qkv_len(&self) -> usize {
        3 * self.out_len()
    }

    /// Elements the output must hold, `batch·seq·heads·head_dim`.
    pub fn out_len(&self) -> usize {
        self.batch * self.seq * self.heads * self.head_dim
    }

    /// The kernel (without its type suffix) and the queries per block of its grid:
    /// `attention_` (32) for head dims ≤ 64, `attention_wide_` (24) above.
    pub fn kernel(&self) -> (&'static str, usize) {
        if self.head_dim <= ATT_NARROW_HEAD_DIM {
            ("attention_", ATT_QUERIES_PER_BLOCK)
        } else {
            ("attention_wide_", ATT_WIDE_QUERIES_PER_BLOCK)
        }
    }

    /// The checks of [`Gpu::attention`] that need no buffer.
    pub fn check(&self) -> Result<()> {
        let (batch, seq, heads, hd) = (self.batch, self.seq, self.heads, self.head_dim);
        ensure(hd > 0 && hd <= MAX_HEAD_DIM, "hd", || {
            format!(
                "head dimension {hd} is not supported by the attention kernels (1 ..= {MAX_HEAD_DIM})"
            )
        })?;
        ensure(
            batch > 0 && seq > 0 && heads > 0,
            "batch, seq, heads",
            || format!("empty attention ({batch}, {seq}, {heads})"),
        )?;
        ensure(batch <= 65_535 && heads <= 65_535, "batch", || {
            format!("batch {batch} / heads {heads} above the grid limit 65535")
        })?;
        to_u32("seq", seq)?;
        Ok(())
    }
}

impl Gpu {
    /// Multi-head attention `softmax(q kᵀ·scale) v` (see the module docs).
    pub fn attention<T: Half>(
        &self,
        shape: &AttentionShape,
        qkv: &DeviceView<'_, T>,
        out: &mut DeviceViewMut<'_, T>,
    ) -> Result<()> {
        shape.check()?;
        ensure_len("qkv", qkv.len(), shape.qkv_len())?;
        ensure_len("out", out.len(), shape.out_len())?;
        let mut addr = Addresses::new(self);
        let (pq, po) = (DevPtr(addr.of(qkv)), DevPtr(addr.of_mut(out)));
        let (batch, seq) = (shape.batch as u32, shape.seq as u32);
        let (heads, hd) = (shape.heads as u32, shape.head_dim as u32);
        let (kernel, per_block) = shape.kernel();
        let mut l = self.launch(&format!("{kernel}{}", T::DTYPE.name()))?;
        l.arg(&pq)?.arg(&po)?.arg(&batch)?.arg(&seq)?.arg(&heads)?;
        l.arg(&hd)?.arg(&shape.scale)?;
        l.run(LaunchConfig {
            grid_dim: (shape.seq.div_ceil(per_block) as u32, heads, batch),
            block_dim: (128, 1, 1),
            shared_mem_bytes: 0,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// L2 normalisation

/// The shape of one [`Gpu::l2_normalize`]: f32 rows `[rows, d]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct L2NormShape {
    /// Rows.
    pub rows: usize,
    /// Row length.
    pub d: usize,
}

impl L2NormShape {
    /// Elements of the input and of each output, `rows·d`.
    pub fn len(&self) -> usize {
        self.rows * self.d
    }

    /// True when there is no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The checks of [`Gpu::l2_normalize`] that need no buffer.
    pub fn check(&self) -> Result<()> {
        ensure(self.rows > 0 && self.d > 0, "rows, d", || {
            format!("empty rows ({} × {})", self.rows, self.d)
        })?;
        to_u32("rows", self.rows)?;
        to_u32("d", self.d)?;
        Ok(())
    }
}

impl Gpu {
    /// L2 normalisation of the f32 rows `x` into f32 `feats` and T `out` (see the module docs).
    pub fn l2_normalize<T: Half>(
        &self,
        shape: &L2NormShape,
        x: &DeviceView<'_, f32>,
        feats: &mut DeviceViewMut<'_, f32>,
        out: &mut DeviceViewMut<'_, T>,
    ) -> Result<()> {
        shape.check()?;
        ensure_len("x", x.len(), shape.len())?;
        ensure_len("feats", feats.len(), shape.len())?;
        ensure_len("out", out.len(), shape.len())?;
        let mut addr = Addresses::new(self);
        let px = DevPtr(addr.of(x));
        let pf = DevPtr(addr.of_mut(feats));
        let po = DevPtr(addr.of_mut(out));
        let (rows, d) = (shape.rows as u32, shape.d as u32);
        let mut l = self.launch(&format!("l2_normalize_{}", T::DTYPE.name()))?;
        l.arg(&px)?.arg(&pf)?.arg(&po)?.arg(&rows)?.arg(&d)?;
        l.run(warp_per_row(rows))
    }
}

// SAFETY: #[repr(C)] plain data with the layout of the C structs (sizes checked below and
// against the PTX by the registry tests).
unsafe impl DeviceRepr for EmbedParams {}
unsafe impl DeviceRepr for LayerNormParams {}
impl KernelArg for EmbedParams {
    const KIND: ArgKind = EMBED_PARAMS;
}
impl KernelArg for LayerNormParams {
    const KIND: ArgKind = LAYER_NORM_PARAMS;
}
const _: () = assert!(std::mem::size_of::<EmbedParams>() == struct_size(EMBED_PARAMS));
const _: () = assert!(std::mem::size_of::<LayerNormParams>() == struct_size(LAYER_NORM_PARAMS));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_name_the_field_at_fault() {
        let im = Im2colShape {
            batch: 2,
            image_size: 24,
            patch: 6,
            ld: 112,
        };
        im.check().unwrap();
        assert_eq!((im.images_len(), im.out_len()), (2 * 3 * 576, 2 * 16 * 112));
        let e = Im2colShape { patch: 7, ..im }.check().unwrap_err();
        assert!(e.to_string().contains("`patch`"), "{e}");
        let e = Im2colShape { ld: 100, ..im }.check().unwrap_err();
        assert!(e.to_string().contains("`ld`"), "{e}");

        let ln = LayerNormShape {
            rows: 3,
            d: 8,
            in_stride: 16,
            out_stride: 8,
            rows_per_coef: 2,
            eps: 1e-5,
        };
        ln.check(2, true).unwrap();
        assert_eq!((ln.in_len(), ln.out_len(), ln.coef_len(2)), (40, 24, 4));
        let e = LayerNormShape { in_stride: 4, ..ln }
            .check(1, false)
            .unwrap_err();
        assert!(e.to_string().contains("`in_stride`"), "{e}");
        assert!(ln
            .check(2, false)
            .unwrap_err()
            .to_string()
            .contains("coefficients"));

        let att = AttentionShape {
            batch: 2,
            seq: 17,
            heads: 2,
            head_dim: 32,
            scale: 0.1,
        };
        att.check().unwrap();
        assert_eq!(att.qkv_len(), 3 * att.out_len());
        for (hd, kernel) in [
            (1, "attention_"),
            (33, "attention_"),
            (64, "attention_"),
            (65, "attention_wide_"),
            (104, "attention_wide_"),
            (128, "attention_wide_"),
        ] {
            let a = AttentionShape {
                head_dim: hd,
                ..att
            };
            a.check().unwrap();
            assert_eq!(a.kernel().0, kernel, "{hd}");
        }
        for hd in [0, 129, 256] {
            let e = AttentionShape {
                head_dim: hd,
                ..att
            }
            .check()
            .unwrap_err();
            assert!(e.to_string().contains("`hd`"), "{hd}: {e}");
        }

        let emb = EmbedShape {
            batch: 2,
            patches: 16,
            width: 8,
        };
        emb.check(3, true).unwrap();
        assert_eq!((emb.positional_len(), emb.out_len()), (17 * 8, 2 * 17 * 8));
        assert!(emb
            .check(9, true)
            .unwrap_err()
            .to_string()
            .contains("1..=8"));
        assert!(L2NormShape { rows: 0, d: 4 }.check().is_err());
    }
}
