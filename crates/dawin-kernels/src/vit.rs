//! Launches of the CLIP ViT kernels of `kernels/vit.cu` (used by `dawin-vit`'s CUDA forward).
//!
//! The kernels take raw device addresses (what [`device_address`] returns for a buffer, plus
//! byte offsets), so one model's parameters can be read straight from a [`crate::DeviceArena`]
//! that a merge wrote. Every launch checks the shapes, strides and alignments it can see and
//! returns an [`Error::InvalidArgument`] naming the field at fault; what it cannot see (that each
//! address points into a live allocation large enough for the shape) is the caller's promise,
//! hence the `unsafe`.
//!
//! Formulas (T is f16 or bf16, accumulation in f32; c the per-row coefficients, 1 without):
//! * [`Gpu::vit_im2col`]: `cols[b·G² + p, c·P² + ky·P + kx] = img[b, c, gy·P + ky, gx·P + kx]`,
//!   columns `3P² .. ld` zero;
//! * [`Gpu::vit_gemm`]: `out[i, n] = epi(Σ_s c[i, s]·(Σ_k A[i, k]·W_s[n, k] + bias_s[n])) (+ res[i, n])`,
//!   `epi` the identity or QuickGELU `x·σ(1.702x)`; one weight set without coefficients, up to
//!   [`VIT_MAX_SETS`] with them (the per-sample blend of issue #8:
//!   `c[i, 0] = 1 − Σ_j w_ij`, `c[i, j] = w_ij` gives `Y0 + Σ_j w_ij (Y_j − Y0)`);
//! * [`Gpu::vit_embed`]: `x[b, 0] = Σ_s c_s (cls_s + pos_s[0])`,
//!   `x[b, 1 + p] = patches[b·P + p] + Σ_s c_s pos_s[1 + p]`;
//! * [`Gpu::vit_layernorm`]: `y = Σ_s c_s (γ_s ⊙ (x − μ)/√(σ² + ε) + β_s)`;
//! * [`Gpu::vit_attention`]: per (batch, head) `softmax(q kᵀ·scale) v`, head dim ≤ 64 and even;
//! * [`Gpu::vit_l2norm`]: `f = x/‖x‖₂` (a zero row stays zero), as f32 and as T.

use crate::error::{Error, Result};
use crate::gpu::{DevPtr, Gpu, KernelArg};
pub use crate::source::VIT_MAX_SETS;
use crate::source::{ArgKind, VIT_EMBED_PARAMS, VIT_GEMM_PARAMS, VIT_LN_PARAMS};
use cudarc::driver::{CudaSlice, DevicePtr, DeviceRepr, LaunchConfig};
use dawin_core::DType;

/// How the GEMM kernels read the tensor-core fragments from shared memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FragmentLoad {
    /// `ldmatrix.x4` (6 instructions per warp and k16 step): the default.
    Ldmatrix,
    /// Plain 32-bit shared loads (24 per warp and k16 step): the `vit_gemm_*lds_*` kernels,
    /// for comparison and as a fallback.
    Lds,
}

impl FragmentLoad {
    /// [`FragmentLoad::Lds`] when the environment variable `DAWIN_VIT_GEMM` is `lds`, else
    /// [`FragmentLoad::Ldmatrix`] (what [`Gpu::vit_gemm`] uses).
    pub fn from_env() -> FragmentLoad {
        match std::env::var("DAWIN_VIT_GEMM").as_deref() {
            Ok("lds") => FragmentLoad::Lds,
            _ => FragmentLoad::Ldmatrix,
        }
    }
}

/// Block tile of the GEMM: rows (of A and of the output).
pub const GEMM_TILE_M: u32 = 128;
/// Block tile of the GEMM: columns (rows of W).
pub const GEMM_TILE_N: u32 = 128;
/// The largest head dimension of the attention kernel (it must also be even).
pub const MAX_HEAD_DIM: u32 = 64;
/// Queries per block of the attention kernel.
const ATT_QUERIES_PER_BLOCK: u32 = 32;

/// The device address of a buffer's first byte (valid while the buffer lives).
pub fn device_address(gpu: &Gpu, buf: &CudaSlice<u8>) -> u64 {
    let (p, _guard) = buf.device_ptr(gpu.stream());
    p
}

/// `struct VitGemmParams` of `vit.cu`: one GEMM with its epilogue (see the module docs).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GemmParams {
    /// `const T*` A, `[m, lda]` row-major; 16-byte aligned.
    pub a: u64,
    /// `const T*` W of each set, `[n, k]` row-major (a Linear weight); 16-byte aligned.
    pub w: [u64; VIT_MAX_SETS],
    /// `const T*` bias of each set, `[n]`, or 0 for none.
    pub bias: [u64; VIT_MAX_SETS],
    /// Output, `[m, ldo]`: `T*`, or `float*` when `out_f32` is 1.
    pub out: u64,
    /// `const float*` residual `[m, ldo]` added last, or 0; may equal `out` (in-place add).
    pub res: u64,
    /// `const float*` coefficients `[⌈m / rows_per_coef⌉, sets]`, or 0 (one set, c = 1).
    pub coef: u64,
    /// Rows of A and of the output.
    pub m: u32,
    /// Columns of the output (rows of W).
    pub n: u32,
    /// Inner dimension; a multiple of 8.
    pub k: u32,
    /// Row stride of A in elements; a multiple of 8, ≥ k.
    pub lda: u32,
    /// Row stride of the output in elements, ≥ n.
    pub ldo: u32,
    /// Weight sets (1 ..= [`VIT_MAX_SETS`]; 1 without coefficients).
    pub sets: u32,
    /// Output rows per coefficient row (e.g. tokens per image).
    pub rows_per_coef: u32,
    /// 1: QuickGELU after the bias (and the blend).
    pub gelu: u32,
    /// 1: `out` is `float*`.
    pub out_f32: u32,
    /// Zero.
    pub pad: u32,
}

/// `struct VitLnParams` of `vit.cu`: a layer norm over rows of an f32 matrix.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct LnParams {
    /// `const float*` input, row r at `in + r·in_stride` elements.
    pub input: u64,
    /// Output (`T*`, or `float*` when `out_f32` is 1), row r at `out + r·out_stride`.
    pub out: u64,
    /// `const T*` scale γ of each set, `[d]`.
    pub gamma: [u64; VIT_MAX_SETS],
    /// `const T*` shift β of each set, `[d]`.
    pub beta: [u64; VIT_MAX_SETS],
    /// `const float*` coefficients `[⌈rows / rows_per_coef⌉, sets]`, or 0.
    pub coef: u64,
    /// Rows.
    pub rows: u32,
    /// Row length.
    pub d: u32,
    /// Input row stride (elements).
    pub in_stride: u32,
    /// Output row stride (elements).
    pub out_stride: u32,
    /// Rows per coefficient row.
    pub rows_per_coef: u32,
    /// Parameter sets.
    pub sets: u32,
    /// 1: `out` is `float*`.
    pub out_f32: u32,
    /// ε.
    pub eps: f32,
}

/// `struct VitEmbedParams` of `vit.cu`: class and position embeddings added to the patch
/// embeddings.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct EmbedParams {
    /// `const float*` patch embeddings `[batch·np, width]`.
    pub patches: u64,
    /// `float*` token embeddings `[batch·(np + 1), width]`.
    pub out: u64,
    /// `const T*` class embedding of each set, `[width]`.
    pub cls: [u64; VIT_MAX_SETS],
    /// `const T*` position embedding of each set, `[np + 1, width]`.
    pub pos: [u64; VIT_MAX_SETS],
    /// `const float*` coefficients `[batch, sets]`, or 0.
    pub coef: u64,
    /// Images.
    pub batch: u32,
    /// Patches per image.
    pub np: u32,
    /// Model width.
    pub width: u32,
    /// Parameter sets.
    pub sets: u32,
}

// SAFETY: #[repr(C)] plain data with the layout of the C structs (sizes checked below and
// against the PTX by the registry tests).
unsafe impl DeviceRepr for GemmParams {}
unsafe impl DeviceRepr for LnParams {}
unsafe impl DeviceRepr for EmbedParams {}
impl KernelArg for GemmParams {
    const KIND: ArgKind = VIT_GEMM_PARAMS;
}
impl KernelArg for LnParams {
    const KIND: ArgKind = VIT_LN_PARAMS;
}
impl KernelArg for EmbedParams {
    const KIND: ArgKind = VIT_EMBED_PARAMS;
}

const fn struct_size(kind: ArgKind) -> usize {
    match kind {
        ArgKind::Struct { size, .. } => size,
        _ => 0,
    }
}
const _: () = assert!(std::mem::size_of::<GemmParams>() == struct_size(VIT_GEMM_PARAMS));
const _: () = assert!(std::mem::size_of::<LnParams>() == struct_size(VIT_LN_PARAMS));
const _: () = assert!(std::mem::size_of::<EmbedParams>() == struct_size(VIT_EMBED_PARAMS));

fn suffix(dtype: DType) -> Result<&'static str> {
    match dtype {
        DType::F16 => Ok("f16"),
        DType::BF16 => Ok("bf16"),
        other => Err(Error::arg(
            "dtype",
            format!("the ViT kernels take f16 or bf16, not {}", other.name()),
        )),
    }
}

fn check(cond: bool, arg: &'static str, msg: impl FnOnce() -> String) -> Result<()> {
    if cond {
        Ok(())
    } else {
        Err(Error::arg(arg, msg()))
    }
}

fn check_sets(sets: u32, coef: u64, what: &'static str) -> Result<()> {
    check((1..=VIT_MAX_SETS as u32).contains(&sets), what, || {
        format!("sets = {sets}, must be 1..={VIT_MAX_SETS}")
    })?;
    check(coef != 0 || sets == 1, what, || {
        format!("{sets} weight sets need coefficients (coef = 0)")
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

/// Checks of [`Gpu::vit_gemm`] that need no device (shapes, strides, alignment, sets).
pub fn check_gemm(p: &GemmParams) -> Result<()> {
    check(p.k > 0 && p.k.is_multiple_of(8), "k", || {
        format!("{} must be a positive multiple of 8", p.k)
    })?;
    check(p.lda.is_multiple_of(8) && p.lda >= p.k, "lda", || {
        format!("{} must be a multiple of 8 and ≥ k = {}", p.lda, p.k)
    })?;
    check(p.ldo >= p.n, "ldo", || format!("{} < n = {}", p.ldo, p.n))?;
    check(p.m > 0 && p.n > 0, "m, n", || {
        format!("empty GEMM ({} × {})", p.m, p.n)
    })?;
    check_sets(p.sets, p.coef, "sets")?;
    check(p.rows_per_coef > 0, "rows_per_coef", || {
        "must be > 0".into()
    })?;
    check(p.a.is_multiple_of(16), "a", || {
        format!("address {:#x} is not 16-byte aligned", p.a)
    })?;
    for s in 0..p.sets as usize {
        check(p.w[s] != 0 && p.w[s].is_multiple_of(16), "w", || {
            format!(
                "set {s}: address {:#x} is null or not 16-byte aligned",
                p.w[s]
            )
        })?;
    }
    check(p.out != 0, "out", || "null".into())?;
    check(p.res == 0 || p.out_f32 == 1, "res", || {
        "a residual needs an f32 output".into()
    })
}

impl Gpu {
    /// im2col of f32 images `[batch, 3, size, size]` (address `img`) into T `[batch·G², ld]`
    /// (address `out`), G = size / patch; see the module docs.
    ///
    /// # Safety
    /// `img` and `out` must be live device allocations of at least those sizes.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn vit_im2col(
        &self,
        dtype: DType,
        img: u64,
        out: u64,
        batch: u32,
        size: u32,
        patch: u32,
        ld: u32,
    ) -> Result<()> {
        let name = format!("vit_im2col_{}", suffix(dtype)?);
        check(patch > 0 && size.is_multiple_of(patch), "patch", || {
            format!("image size {size} is not a multiple of the patch size {patch}")
        })?;
        check(ld >= 3 * patch * patch, "ld", || {
            format!("{ld} < 3·patch² = {}", 3 * patch * patch)
        })?;
        let g = u64::from(size / patch);
        let n = u64::from(batch) * g * g * u64::from(ld);
        let (pi, po) = (DevPtr(img), DevPtr(out));
        let mut l = self.launch(&name)?;
        l.arg(&pi)?
            .arg(&po)?
            .arg(&batch)?
            .arg(&size)?
            .arg(&patch)?
            .arg(&ld)?;
        l.run(grid_1d(n, 256))
    }

    /// One GEMM with its fused epilogue (bias, QuickGELU, blend over weight sets, residual
    /// add); the blend kernel runs when `p.coef` is not 0. Requirements (errors name the
    /// field): k, lda multiples of 8, A and every W 16-byte aligned, 1 ..= [`VIT_MAX_SETS`]
    /// sets; m and n are arbitrary.
    ///
    /// Fragments are read with [`FragmentLoad::from_env`] (`ldmatrix` unless
    /// `DAWIN_VIT_GEMM=lds`).
    ///
    /// # Safety
    /// Every address in `p` must point to a live device allocation of the documented shape.
    pub unsafe fn vit_gemm(&self, dtype: DType, p: &GemmParams) -> Result<()> {
        self.vit_gemm_with(dtype, p, FragmentLoad::from_env())
    }

    /// [`Gpu::vit_gemm`] with an explicit fragment load.
    ///
    /// # Safety
    /// As for [`Gpu::vit_gemm`].
    pub unsafe fn vit_gemm_with(
        &self,
        dtype: DType,
        p: &GemmParams,
        load: FragmentLoad,
    ) -> Result<()> {
        check_gemm(p)?;
        let blend = if p.coef != 0 { "blend_" } else { "" };
        let lds = if load == FragmentLoad::Lds {
            "lds_"
        } else {
            ""
        };
        let name = format!("vit_gemm_{blend}{lds}{}", suffix(dtype)?);
        let cfg = LaunchConfig {
            grid_dim: (p.n.div_ceil(GEMM_TILE_N), p.m.div_ceil(GEMM_TILE_M), 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        check(cfg.grid_dim.1 <= 65_535, "m", || {
            format!("{} rows need more than 65535 row tiles", p.m)
        })?;
        let mut l = self.launch(&name)?;
        l.arg(p)?;
        l.run(cfg)
    }

    /// Class and position embeddings (see the module docs).
    ///
    /// # Safety
    /// Every address in `p` must point to a live device allocation of the documented shape.
    pub unsafe fn vit_embed(&self, dtype: DType, p: &EmbedParams) -> Result<()> {
        check_sets(p.sets, p.coef, "sets")?;
        let name = format!("vit_embed_{}", suffix(dtype)?);
        let n = u64::from(p.batch) * u64::from(p.np + 1) * u64::from(p.width);
        let mut l = self.launch(&name)?;
        l.arg(p)?;
        l.run(grid_1d(n, 256))
    }

    /// Layer norm with f32 statistics, one warp per row (see the module docs).
    ///
    /// # Safety
    /// Every address in `p` must point to a live device allocation of the documented shape.
    pub unsafe fn vit_layernorm(&self, dtype: DType, p: &LnParams) -> Result<()> {
        check_sets(p.sets, p.coef, "sets")?;
        check(p.rows_per_coef > 0, "rows_per_coef", || {
            "must be > 0".into()
        })?;
        check(p.d > 0 && p.in_stride >= p.d, "in_stride", || {
            format!("{} < d = {}", p.in_stride, p.d)
        })?;
        let name = format!("vit_layernorm_{}", suffix(dtype)?);
        let mut l = self.launch(&name)?;
        l.arg(p)?;
        l.run(LaunchConfig {
            grid_dim: (p.rows.div_ceil(8).max(1), 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        })
    }

    /// Multi-head attention `softmax(q kᵀ·scale) v` of T `qkv` `[batch·seq, 3·heads·hd]`
    /// (q | k | v) into T `out` `[batch·seq, heads·hd]`; the head dimension `hd` is even and
    /// at most [`MAX_HEAD_DIM`].
    ///
    /// # Safety
    /// `qkv` and `out` must be live device allocations of at least those sizes.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn vit_attention(
        &self,
        dtype: DType,
        qkv: u64,
        out: u64,
        batch: u32,
        seq: u32,
        heads: u32,
        hd: u32,
        scale: f32,
    ) -> Result<()> {
        check(
            hd > 0 && hd.is_multiple_of(2) && hd <= MAX_HEAD_DIM,
            "hd",
            || format!("head dimension {hd} must be even and at most {MAX_HEAD_DIM}"),
        )?;
        check(
            batch > 0 && seq > 0 && heads > 0,
            "batch, seq, heads",
            || format!("empty attention ({batch}, {seq}, {heads})"),
        )?;
        check(batch <= 65_535 && heads <= 65_535, "batch", || {
            format!("batch {batch} / heads {heads} above the grid limit 65535")
        })?;
        let name = format!("vit_attention_{}", suffix(dtype)?);
        let (pq, po) = (DevPtr(qkv), DevPtr(out));
        let mut l = self.launch(&name)?;
        l.arg(&pq)?
            .arg(&po)?
            .arg(&batch)?
            .arg(&seq)?
            .arg(&heads)?
            .arg(&hd)?
            .arg(&scale)?;
        l.run(LaunchConfig {
            grid_dim: (seq.div_ceil(ATT_QUERIES_PER_BLOCK), heads, batch),
            block_dim: (128, 1, 1),
            shared_mem_bytes: 0,
        })
    }

    /// L2 normalisation of f32 rows `x` `[rows, d]` into f32 `feats` and T `out`.
    ///
    /// # Safety
    /// The three addresses must be live device allocations of at least `rows·d` elements.
    pub unsafe fn vit_l2norm(
        &self,
        dtype: DType,
        x: u64,
        feats: u64,
        out: u64,
        rows: u32,
        d: u32,
    ) -> Result<()> {
        let name = format!("vit_l2norm_{}", suffix(dtype)?);
        let (px, pf, po) = (DevPtr(x), DevPtr(feats), DevPtr(out));
        let mut l = self.launch(&name)?;
        l.arg(&px)?.arg(&pf)?.arg(&po)?.arg(&rows)?.arg(&d)?;
        l.run(LaunchConfig {
            grid_dim: (rows.div_ceil(8).max(1), 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok_gemm() -> GemmParams {
        let mut p = GemmParams {
            a: 0x1000,
            out: 0x3000,
            m: 5,
            n: 10,
            k: 16,
            lda: 16,
            ldo: 10,
            sets: 1,
            rows_per_coef: 1,
            ..Default::default()
        };
        p.w[0] = 0x2000;
        p
    }

    type Mutation = fn(&mut GemmParams);

    #[test]
    fn gemm_requirements_name_the_field() {
        assert!(check_gemm(&ok_gemm()).is_ok());
        let cases: [(&str, Mutation); 7] = [
            ("`k`", |p| p.k = 12),
            ("`lda`", |p| p.lda = 12),
            ("`ldo`", |p| p.ldo = 9),
            ("`a`", |p| p.a = 0x1008),
            ("`w`", |p| p.w[0] = 0x2004),
            ("`sets`", |p| p.sets = 2),
            ("`res`", |p| p.res = 0x4000),
        ];
        for (field, f) in cases {
            let mut p = ok_gemm();
            f(&mut p);
            let e = check_gemm(&p).unwrap_err().to_string();
            assert!(e.contains(field), "{field}: {e}");
        }
        let mut p = ok_gemm();
        p.sets = 9;
        p.coef = 0x5000;
        assert!(check_gemm(&p).unwrap_err().to_string().contains("1..=8"));
    }

    #[test]
    fn only_half_types() {
        assert!(suffix(DType::F32)
            .unwrap_err()
            .to_string()
            .contains("f16 or bf16"));
        assert_eq!(suffix(DType::BF16).unwrap(), "bf16");
    }
}
