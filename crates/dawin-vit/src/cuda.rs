//! The CLIP ViT forward on a CUDA GPU with the hand-written kernels of `kernels/vit.cu`
//! (launched through [`dawin_kernels::vit`]): fp16 or bf16 weights and activations, f32
//! accumulation on the tensor cores, an f32 residual stream and f32 layer-norm statistics.
//!
//! Per image batch (B images, T tokens, rows = B·T), exactly the layers of [`crate::cpu`]:
//!
//! ```text
//! cols    = im2col(images)                          T   [B·G², K'] (K = 3P², padded to K' = ⌈K/8⌉·8)
//! patches = cols · conv1ᵀ                           f32 [B·G², W]
//! x       = ln_pre(patches ⊕ class ⊕ position)      f32 [rows, W]
//! per block: h = ln_1(x); qkv = h·in_projᵀ + b; a = attention(qkv)
//!            x += a·out_projᵀ + b                   (residual fused in the GEMM epilogue)
//!            h = ln_2(x); f = QuickGELU(h·c_fcᵀ + b) (fused); x += f·c_projᵀ + b (fused)
//! f = ln_post(x[:, 0])·proj; f̂ = f/‖f‖; logits = f̂·headᵀ + b_head
//! ```
//!
//! [`CudaVit::forward_blended`] runs issue #8's exact per-sample interpolation: every
//! parametrised op of sample i is `Σ_s c_is op(θ_s; h_i)` with `c_i0 = 1 − Σ_j w_ij`,
//! `c_ij = w_ij` (= `op(θ0; h_i) + Σ_j w_ij (op(θ_j; h_i) − op(θ0; h_i))`), each GEMM over the
//! M + 1 weight sets in one launch with the blend in its epilogue.
//!
//! Each model's parameters live in one [`DeviceArena`] (names as the OpenAI checkpoint spells
//! them, `proj` stored transposed as `[E, W]`, `conv1.weight` flattened to `[W, K']`), so a
//! merge on the GPU writes a model that this forward then reads, with no copy through the host
//! ([`CudaVit::merge_into`]; [`CudaVit::arena_mut`] for other kernels).
//!
//! Requirements (checked, errors name the config field): width, mlp_dim and embed_dim
//! multiples of 8, head dimension even and ≤ 64, a GPU of compute capability ≥ 8.0.

use std::sync::Arc;

use dawin_kernels::vit::{device_address, EmbedParams, GemmParams, LnParams, VIT_MAX_SETS};
use dawin_kernels::{ArenaLayout, DType, DeviceArena, DeviceVec, Gpu, HostArena, Param};
use half::{bf16, f16};

use crate::config::VitConfig;
use crate::cpu::check_images;
use crate::model::ForwardOutput;
use crate::params::{Module, ParamKey, ParamList, Part};
use crate::weights::ClipWeights;

/// Errors of the CUDA forward: the GPU side (no driver, no device, a launch) or the model side
/// (config, shapes, arguments).
#[derive(Debug, thiserror::Error)]
pub enum CudaError {
    /// From the GPU: [`dawin_kernels::Error::is_no_gpu`] tells a missing GPU apart.
    #[error(transparent)]
    Gpu(#[from] dawin_kernels::Error),
    /// From the model: a config the kernels cannot run, a bad argument.
    #[error(transparent)]
    Vit(#[from] crate::Error),
}

impl CudaError {
    /// True when there is no usable GPU (no driver, no device, PTX the driver cannot load).
    pub fn is_no_gpu(&self) -> bool {
        matches!(self, CudaError::Gpu(e) if e.is_no_gpu())
    }
}

/// Result alias of this module.
pub type CudaResult<T> = std::result::Result<T, CudaError>;

/// Storage type of weights and activations on the GPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    /// IEEE half precision (10-bit mantissa).
    F16,
    /// bfloat16 (8-bit mantissa, f32 range).
    Bf16,
}

impl Precision {
    /// The dtype of the arena.
    pub fn dtype(self) -> DType {
        match self {
            Precision::F16 => DType::F16,
            Precision::Bf16 => DType::BF16,
        }
    }
}

fn cfg_err(msg: String) -> CudaError {
    CudaError::Vit(crate::Error::Config(msg))
}

fn arg_err(arg: &'static str, msg: String) -> CudaError {
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
    if hd == 0 || !hd.is_multiple_of(2) || hd > 64 {
        return Err(cfg_err(format!(
            "heads = {}: head dimension {hd} (width / heads) must be even and at most 64 for \
             the CUDA forward",
            cfg.heads
        )));
    }
    Ok(())
}

/// `K' = ⌈3P² / 8⌉·8`, the padded patch dimension.
fn patch_dim_padded(cfg: &VitConfig) -> usize {
    cfg.patch_dim().div_ceil(8) * 8
}

/// The arena of one model: `(name, shape, values)` in f32, converted by the caller: every
/// tensor of the parameter list in list order, named as [`crate::ParamDef::name`] says, the patch
/// embedding's columns padded with zeros from `3P²` to `K'`.
fn arena_tensors(cfg: &VitConfig, w: &ClipWeights) -> Vec<(String, Vec<usize>, Vec<f32>)> {
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

fn host_arena<T: Param>(
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

/// Device addresses of one model's parameters.
#[derive(Clone, Debug)]
struct ModelPtrs {
    conv1: u64,
    cls: u64,
    pos: u64,
    ln_pre: (u64, u64),
    blocks: Vec<BlockPtrs>,
    ln_post: (u64, u64),
    proj: u64,
    head: (u64, u64),
}

#[derive(Clone, Debug)]
struct BlockPtrs {
    ln_1: (u64, u64),
    qkv: (u64, u64),
    out: (u64, u64),
    ln_2: (u64, u64),
    fc: (u64, u64),
    proj: (u64, u64),
}

/// Addresses of one model's tensors in an arena of `layout` starting at address `base`, each
/// found through the parameter list.
fn model_ptrs(base: u64, layout: &ArenaLayout, cfg: &VitConfig) -> CudaResult<ModelPtrs> {
    let size = layout.dtype().size() as u64;
    let list = ParamList::new(cfg);
    // A tensor the config does not have (a linear map without a bias) has no arena entry:
    // address 0 (the kernel adds nothing).
    let opt = |key: ParamKey| -> CudaResult<u64> {
        match list.index_of(&key).and_then(|i| list.get(i)) {
            Some(def) => Ok(base + layout.entry(&def.name())?.offset as u64 * size),
            None => Ok(0),
        }
    };
    let at = |module: Module, part: Part, layer: Option<usize>| -> CudaResult<u64> {
        opt(ParamKey {
            module,
            part,
            layer,
        })
    };
    let pair = |module: Module, layer: Option<usize>| -> CudaResult<(u64, u64)> {
        Ok((
            at(module, Part::Weight, layer)?,
            at(module, Part::Bias, layer)?,
        ))
    };
    let blocks = (0..cfg.layers)
        .map(|i| {
            let l = Some(i);
            Ok(BlockPtrs {
                ln_1: pair(Module::Ln1, l)?,
                qkv: pair(Module::AttnInProj, l)?,
                out: pair(Module::AttnOutProj, l)?,
                ln_2: pair(Module::Ln2, l)?,
                fc: pair(Module::MlpFc, l)?,
                proj: pair(Module::MlpProj, l)?,
            })
        })
        .collect::<CudaResult<Vec<_>>>()?;
    Ok(ModelPtrs {
        conv1: at(Module::PatchEmbedding, Part::Weight, None)?,
        cls: at(Module::ClassEmbedding, Part::Weight, None)?,
        pos: at(Module::PositionalEmbedding, Part::Weight, None)?,
        ln_pre: pair(Module::LnPre, None)?,
        blocks,
        ln_post: pair(Module::LnPost, None)?,
        proj: at(Module::Proj, Part::Weight, None)?,
        head: pair(Module::Head, None)?,
    })
}

/// The largest batch one forward takes (32-bit element indices of the biggest activation).
fn check_batch(cfg: &VitConfig, batch: usize) -> CudaResult<()> {
    let rows = batch * cfg.num_tokens();
    if rows > u32::MAX as usize / (4 * cfg.width.max(cfg.mlp_dim)) {
        return Err(arg_err(
            "batch",
            format!("{batch} images are too many for one forward"),
        ));
    }
    Ok(())
}

/// Addresses of the activation buffers of one forward (element counts in [`work_sizes`]).
#[derive(Clone, Copy, Debug, Default)]
struct WorkAddrs {
    img: u64,
    cols: u64,
    patches: u64,
    emb: u64,
    x: u64,
    h: u64,
    qkv: u64,
    att: u64,
    mlp: u64,
    pooled: u64,
    feat_raw: u64,
    feats: u64,
    feat_t: u64,
    logits: u64,
    coef: u64,
}

/// `(name, elements, f32?)` of every activation buffer of a forward of `batch` images, in
/// the order of [`WorkAddrs`] (`coef`: `[batch, sets]`, only for a blended forward).
#[cfg(test)]
fn work_sizes(cfg: &VitConfig, batch: usize, sets: usize) -> Vec<(&'static str, usize, bool)> {
    let rows = batch * cfg.num_tokens();
    let np = batch * cfg.num_patches();
    vec![
        ("img", batch * cfg.image_numel(), true),
        ("cols", np * patch_dim_padded(cfg), false),
        ("patches", np * cfg.width, true),
        ("emb", rows * cfg.width, true),
        ("x", rows * cfg.width, true),
        ("h", rows * cfg.width, false),
        ("qkv", rows * 3 * cfg.width, false),
        ("att", rows * cfg.width, false),
        ("mlp", rows * cfg.mlp_dim, false),
        ("pooled", batch * cfg.width, false),
        ("feat_raw", batch * cfg.embed_dim, true),
        ("feats", batch * cfg.embed_dim, true),
        ("feat_t", batch * cfg.embed_dim, false),
        ("logits", batch * cfg.num_classes, true),
        ("coef", batch * sets, true),
    ]
}

/// One kernel launch of a forward, with its device addresses.
#[derive(Clone, Debug)]
enum Op {
    Im2col {
        img: u64,
        out: u64,
        batch: u32,
        size: u32,
        patch: u32,
        ld: u32,
    },
    Gemm(GemmParams),
    Embed(EmbedParams),
    LayerNorm(LnParams),
    Attention {
        qkv: u64,
        out: u64,
        batch: u32,
        seq: u32,
        heads: u32,
        hd: u32,
        scale: f32,
    },
    L2Norm {
        x: u64,
        feats: u64,
        out: u64,
        rows: u32,
        d: u32,
    },
}

/// The launches of one forward of `batch` images over the weight sets `models` (one: a plain
/// forward; several: the blend with coefficients at `wa.coef`), in order (see the module docs).
fn plan(cfg: &VitConfig, batch: usize, models: &[ModelPtrs], wa: &WorkAddrs) -> Vec<Op> {
    let u = |v: usize| v as u32;
    let (w, e, c, t) = (cfg.width, cfg.embed_dim, cfg.num_classes, cfg.num_tokens());
    let (kp, np) = (patch_dim_padded(cfg), cfg.num_patches());
    let rows = batch * t;
    let nsets = u(models.len());
    let coef = if models.len() > 1 { wa.coef } else { 0 };
    let mut ops = Vec::with_capacity(6 + 7 * cfg.layers);
    // One GEMM over the sets: `pick` gives (weight, bias) of a model.
    #[allow(clippy::too_many_arguments)]
    let gemm = |a: u64,
                m: usize,
                k: usize,
                n: usize,
                pick: &dyn Fn(&ModelPtrs) -> (u64, u64),
                out: u64,
                out_f32: bool,
                res: u64,
                gelu: bool,
                rows_per_coef: usize|
     -> Op {
        let mut p = GemmParams {
            a,
            out,
            res,
            coef,
            m: u(m),
            n: u(n),
            k: u(k),
            lda: u(k),
            ldo: u(n),
            sets: nsets,
            rows_per_coef: u(rows_per_coef),
            gelu: u32::from(gelu),
            out_f32: u32::from(out_f32),
            ..Default::default()
        };
        for (s, mp) in models.iter().enumerate() {
            (p.w[s], p.bias[s]) = pick(mp);
        }
        Op::Gemm(p)
    };
    let ln = |input: u64,
              rows: usize,
              in_stride: usize,
              out: u64,
              out_f32: bool,
              pick: &dyn Fn(&ModelPtrs) -> (u64, u64),
              rows_per_coef: usize|
     -> Op {
        let mut p = LnParams {
            input,
            out,
            coef,
            rows: u(rows),
            d: u(w),
            in_stride: u(in_stride),
            out_stride: u(w),
            rows_per_coef: u(rows_per_coef),
            sets: nsets,
            out_f32: u32::from(out_f32),
            eps: cfg.layer_norm_eps,
            ..Default::default()
        };
        for (s, mp) in models.iter().enumerate() {
            (p.gamma[s], p.beta[s]) = pick(mp);
        }
        Op::LayerNorm(p)
    };

    ops.push(Op::Im2col {
        img: wa.img,
        out: wa.cols,
        batch: u(batch),
        size: u(cfg.image_size),
        patch: u(cfg.patch_size),
        ld: u(kp),
    });
    ops.push(gemm(
        wa.cols,
        batch * np,
        kp,
        w,
        &|m| (m.conv1, 0),
        wa.patches,
        true,
        0,
        false,
        np,
    ));
    let mut ep = EmbedParams {
        patches: wa.patches,
        out: wa.emb,
        coef,
        batch: u(batch),
        np: u(np),
        width: u(w),
        sets: nsets,
        ..Default::default()
    };
    for (s, mp) in models.iter().enumerate() {
        ep.cls[s] = mp.cls;
        ep.pos[s] = mp.pos;
    }
    ops.push(Op::Embed(ep));
    ops.push(ln(wa.emb, rows, w, wa.x, true, &|m| m.ln_pre, t));
    let scale = 1.0 / (cfg.head_dim() as f32).sqrt();
    for l in 0..cfg.layers {
        ops.push(ln(wa.x, rows, w, wa.h, false, &|m| m.blocks[l].ln_1, t));
        ops.push(gemm(
            wa.h,
            rows,
            w,
            3 * w,
            &|m| m.blocks[l].qkv,
            wa.qkv,
            false,
            0,
            false,
            t,
        ));
        ops.push(Op::Attention {
            qkv: wa.qkv,
            out: wa.att,
            batch: u(batch),
            seq: u(t),
            heads: u(cfg.heads),
            hd: u(cfg.head_dim()),
            scale,
        });
        ops.push(gemm(
            wa.att,
            rows,
            w,
            w,
            &|m| m.blocks[l].out,
            wa.x,
            true,
            wa.x,
            false,
            t,
        ));
        ops.push(ln(wa.x, rows, w, wa.h, false, &|m| m.blocks[l].ln_2, t));
        ops.push(gemm(
            wa.h,
            rows,
            w,
            cfg.mlp_dim,
            &|m| m.blocks[l].fc,
            wa.mlp,
            false,
            0,
            true,
            t,
        ));
        ops.push(gemm(
            wa.mlp,
            rows,
            cfg.mlp_dim,
            w,
            &|m| m.blocks[l].proj,
            wa.x,
            true,
            wa.x,
            false,
            t,
        ));
    }
    // Class tokens: rows b·T of x.
    ops.push(ln(wa.x, batch, t * w, wa.pooled, false, &|m| m.ln_post, 1));
    ops.push(gemm(
        wa.pooled,
        batch,
        w,
        e,
        &|m| (m.proj, 0),
        wa.feat_raw,
        true,
        0,
        false,
        1,
    ));
    ops.push(Op::L2Norm {
        x: wa.feat_raw,
        feats: wa.feats,
        out: wa.feat_t,
        rows: u(batch),
        d: u(e),
    });
    ops.push(gemm(
        wa.feat_t,
        batch,
        e,
        c,
        &|m| m.head,
        wa.logits,
        true,
        0,
        false,
        1,
    ));
    ops
}

/// Launches one op of a [`plan`].
///
/// # Safety
/// The op's addresses must be live device buffers of the shapes the op names.
unsafe fn launch(gpu: &Gpu, dt: DType, op: &Op) -> CudaResult<()> {
    match *op {
        Op::Im2col {
            img,
            out,
            batch,
            size,
            patch,
            ld,
        } => gpu.vit_im2col(dt, img, out, batch, size, patch, ld)?,
        Op::Gemm(ref p) => gpu.vit_gemm(dt, p)?,
        Op::Embed(ref p) => gpu.vit_embed(dt, p)?,
        Op::LayerNorm(ref p) => gpu.vit_layernorm(dt, p)?,
        Op::Attention {
            qkv,
            out,
            batch,
            seq,
            heads,
            hd,
            scale,
        } => gpu.vit_attention(dt, qkv, out, batch, seq, heads, hd, scale)?,
        Op::L2Norm {
            x,
            feats,
            out,
            rows,
            d,
        } => gpu.vit_l2norm(dt, x, feats, out, rows, d)?,
    }
    Ok(())
}

/// `[batch, M + 1]`: `c_i0 = 1 − Σ_j w_ij`, `c_ij = w_ij`, after checking `coeffs`.
/// Checks the arguments of [`CudaVit::merge_into`] for a `CudaVit` of `n` models; no GPU
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

fn blend_coefficients(models: usize, batch: usize, coeffs: &[f32]) -> CudaResult<Vec<f32>> {
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

/// A CLIP ViT classifier (or several with the same config, for the blended forward) on a GPU.
///
/// ```no_run
/// use std::sync::Arc;
/// use dawin_vit::cuda::{CudaVit, Precision};
/// use dawin_vit::{ClipWeights, VitConfig};
///
/// let cfg = VitConfig::vit_b32(10);
/// let (zs, ft) = (ClipWeights::random(&cfg, 0)?, ClipWeights::random(&cfg, 1)?);
/// let gpu = Arc::new(dawin_kernels::Gpu::new()?);
/// let vit = CudaVit::new(gpu, &cfg, &[&zs, &ft], Precision::Bf16)?;
/// let images = vec![0.0f32; 4 * cfg.image_numel()];
/// let out = vit.forward(&images, 4, false)?;                 // θ0
/// let mixed = vit.forward_blended(&images, 4, &[0.0, 0.3, 0.7, 1.0], true)?; // one λ per image
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct CudaVit {
    gpu: Arc<Gpu>,
    cfg: VitConfig,
    precision: Precision,
    arenas: Vec<DeviceArena>,
    /// The layout each arena was uploaded with; a forward refuses an arena that no longer has
    /// it (see [`CudaVit::arena_mut`]).
    layouts: Vec<ArenaLayout>,
}

impl std::fmt::Debug for CudaVit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaVit")
            .field("gpu", &self.gpu.name())
            .field("config", &self.cfg)
            .field("precision", &self.precision)
            .field("models", &self.arenas.len())
            .finish()
    }
}

/// Activation buffers of one forward.
struct Work {
    cols: DeviceVec<f16>,
    patches: DeviceVec<f32>,
    emb: DeviceVec<f32>,
    x: DeviceVec<f32>,
    h: DeviceVec<f16>,
    qkv: DeviceVec<f16>,
    att: DeviceVec<f16>,
    mlp: DeviceVec<f16>,
    pooled: DeviceVec<f16>,
    feat_raw: DeviceVec<f32>,
    feats: DeviceVec<f32>,
    feat_t: DeviceVec<f16>,
    logits: DeviceVec<f32>,
    coef: Option<DeviceVec<f32>>,
}

fn addr<T: Param>(gpu: &Gpu, v: &DeviceVec<T>) -> u64 {
    device_address(gpu, v.buffer())
}

impl CudaVit {
    /// Uploads `models` (θ0 first; more for [`CudaVit::forward_blended`]) of config `cfg` in
    /// `precision`. Errors: no model, more than 8, a config the kernels cannot run or weights
    /// that do not match it (naming the model), a device below compute capability 8.0.
    pub fn new(
        gpu: Arc<Gpu>,
        cfg: &VitConfig,
        models: &[&ClipWeights],
        precision: Precision,
    ) -> CudaResult<Self> {
        check_config(cfg)?;
        if models.is_empty() || models.len() > VIT_MAX_SETS {
            return Err(arg_err(
                "models",
                format!(
                    "{} models given, 1 ..= {VIT_MAX_SETS} supported",
                    models.len()
                ),
            ));
        }
        for (j, m) in models.iter().enumerate() {
            m.check(cfg).map_err(|e| {
                arg_err(
                    "models",
                    format!("model {j} does not match the config: {e}"),
                )
            })?;
        }
        let (major, minor) = gpu.compute_capability();
        if major < 8 {
            return Err(arg_err(
                "gpu",
                format!(
                    "{} has compute capability {major}.{minor}; the ViT kernels need 8.0 or newer",
                    gpu.name()
                ),
            ));
        }
        let mut arenas = Vec::with_capacity(models.len());
        for m in models {
            let tensors = arena_tensors(cfg, m);
            let host = match precision {
                Precision::F16 => host_arena(&tensors, f16::from_f32)?,
                Precision::Bf16 => host_arena(&tensors, bf16::from_f32)?,
            };
            arenas.push(DeviceArena::upload(&gpu, &host)?);
        }
        Ok(CudaVit {
            gpu,
            cfg: cfg.clone(),
            precision,
            layouts: arenas.iter().map(|a| a.layout().clone()).collect(),
            arenas,
        })
    }

    /// [`CudaVit::new`] on the first CUDA device; without a GPU this is an error for which
    /// [`CudaError::is_no_gpu`] is true (the config is checked first).
    pub fn on_default_device(
        cfg: &VitConfig,
        models: &[&ClipWeights],
        precision: Precision,
    ) -> CudaResult<Self> {
        check_config(cfg)?;
        let gpu = Arc::new(Gpu::new()?);
        Self::new(gpu, cfg, models, precision)
    }

    /// The config.
    pub fn config(&self) -> &VitConfig {
        &self.cfg
    }

    /// The precision of weights and activations.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// The GPU.
    pub fn gpu(&self) -> &Arc<Gpu> {
        &self.gpu
    }

    /// Number of models held.
    pub fn models(&self) -> usize {
        self.arenas.len()
    }

    /// The parameter arena of model `i` (names in the module docs).
    pub fn arena(&self, i: usize) -> Option<&DeviceArena> {
        self.arenas.get(i)
    }

    /// The parameter arena of model `i`, for a merge to write into: the forward reads the new
    /// values. An arena replaced by one of another layout makes the forward an error.
    pub fn arena_mut(&mut self, i: usize) -> Option<&mut DeviceArena> {
        self.arenas.get_mut(i)
    }

    /// Merges on the GPU, into model `out`'s arena, with no copy through the host:
    ///
    /// ```text
    /// θ_out = θ_base + Σ_j w_j (θ_models[j] − θ_base)  (computed as (1 − Σw)·θ_base + Σ w_j θ_models[j])
    /// ```
    ///
    /// One model is the lerp `θ_out = (1 − λ)θ_base + λθ_models[0]` with `λ = weights[0]`
    /// (exact copies at λ = 0 and 1). One launch over the whole arena, element-wise in f32 and
    /// rounded once to the arena's f16/bf16; [`CudaVit::forward_model`] of `out` then reads the
    /// merged weights. Errors (no GPU work done): an index out of range, `out` among the
    /// inputs, a weight count that differs from `models`, a non-finite weight.
    pub fn merge_into(
        &mut self,
        base: usize,
        models: &[usize],
        weights: &[f32],
        out: usize,
    ) -> CudaResult<()> {
        check_merge(self.arenas.len(), base, models, weights, out)?;
        // Take `out` out of the list so that the inputs can be borrowed beside it; indices
        // above it move down by one while it is out.
        let mut target = self.arenas.remove(out);
        let at = |i: usize| if i > out { i - 1 } else { i };
        let result = if models.len() == 1 {
            self.gpu.lerp_arena(
                &self.arenas[at(base)],
                &self.arenas[at(models[0])],
                weights[0],
                &mut target,
            )
        } else {
            let inputs: Vec<&DeviceArena> = models.iter().map(|&j| &self.arenas[at(j)]).collect();
            self.gpu
                .task_arithmetic_arena(&self.arenas[at(base)], &inputs, weights, &mut target)
        };
        self.arenas.insert(out, target);
        Ok(result?)
    }

    /// Logits `[batch, C]` (and the normalised features `[batch, E]` when `features`) of model
    /// 0 for preprocessed f32 `images` `[batch, 3, S, S]`.
    pub fn forward(
        &self,
        images: &[f32],
        batch: usize,
        features: bool,
    ) -> CudaResult<ForwardOutput> {
        self.forward_model(0, images, batch, features)
    }

    /// [`CudaVit::forward`] of model `model`.
    pub fn forward_model(
        &self,
        model: usize,
        images: &[f32],
        batch: usize,
        features: bool,
    ) -> CudaResult<ForwardOutput> {
        check_images(images, batch, &self.cfg)?;
        let img = self.gpu.upload(images)?;
        self.forward_model_device(model, &img, batch, features)
    }

    /// [`CudaVit::forward_model`] of images already on the device (`[batch, 3, S, S]`, f32,
    /// preprocessed; not checked for finiteness here): no host-to-device copy of the batch.
    pub fn forward_model_device(
        &self,
        model: usize,
        images: &DeviceVec<f32>,
        batch: usize,
        features: bool,
    ) -> CudaResult<ForwardOutput> {
        if model >= self.arenas.len() {
            return Err(arg_err(
                "model",
                format!("model {model} of {}", self.arenas.len()),
            ));
        }
        self.run(images, batch, &[model], None, features)
    }

    /// [`CudaVit::forward_blended`] of images already on the device (see
    /// [`CudaVit::forward_model_device`]).
    pub fn forward_blended_device(
        &self,
        images: &DeviceVec<f32>,
        batch: usize,
        coeffs: &[f32],
        features: bool,
    ) -> CudaResult<ForwardOutput> {
        let c = blend_coefficients(self.arenas.len(), batch, coeffs)?;
        let sets: Vec<usize> = (0..self.arenas.len()).collect();
        self.run(images, batch, &sets, Some(&c), features)
    }

    /// The exact per-sample interpolated forward (issue #8): sample i through
    /// `θ0 + Σ_j w_ij (θ_j − θ0)` with `w_ij = coeffs[i·M + j]`, M = models − 1, without
    /// building any merged model. Two models: `coeffs` is one λ per sample.
    pub fn forward_blended(
        &self,
        images: &[f32],
        batch: usize,
        coeffs: &[f32],
        features: bool,
    ) -> CudaResult<ForwardOutput> {
        check_images(images, batch, &self.cfg)?;
        blend_coefficients(self.arenas.len(), batch, coeffs)?;
        let img = self.gpu.upload(images)?;
        self.forward_blended_device(&img, batch, coeffs, features)
    }

    fn alloc(&self, batch: usize, coef: Option<&[f32]>) -> CudaResult<Work> {
        let cfg = &self.cfg;
        let g = &self.gpu;
        let rows = batch * cfg.num_tokens();
        let np = batch * cfg.num_patches();
        Ok(Work {
            cols: g.zeros(np * patch_dim_padded(cfg))?,
            patches: g.zeros(np * cfg.width)?,
            emb: g.zeros(rows * cfg.width)?,
            x: g.zeros(rows * cfg.width)?,
            h: g.zeros(rows * cfg.width)?,
            qkv: g.zeros(rows * 3 * cfg.width)?,
            att: g.zeros(rows * cfg.width)?,
            mlp: g.zeros(rows * cfg.mlp_dim)?,
            pooled: g.zeros(batch * cfg.width)?,
            feat_raw: g.zeros(batch * cfg.embed_dim)?,
            feats: g.zeros(batch * cfg.embed_dim)?,
            feat_t: g.zeros(batch * cfg.embed_dim)?,
            logits: g.zeros(batch * cfg.num_classes)?,
            coef: coef.map(|c| g.upload(c)).transpose()?,
        })
    }

    /// Seconds spent per kind of kernel (`gemm`, `attention`, `layernorm`, `other`) in one
    /// forward of images already on the device: model 0, or the blend over all models with
    /// `coeffs` (`[batch, M]`) when given. Every launch is timed alone (the stream is
    /// synchronised after it), so the sum exceeds a normal forward's time by the launch
    /// latencies; this is a breakdown for optimisation work, used by the `vit_cuda` bench.
    pub fn profile_device(
        &self,
        images: &DeviceVec<f32>,
        batch: usize,
        coeffs: Option<&[f32]>,
    ) -> CudaResult<Vec<(&'static str, f64)>> {
        let mut times = vec![
            ("gemm", 0.0),
            ("attention", 0.0),
            ("layernorm", 0.0),
            ("other", 0.0),
        ];
        match coeffs {
            None => self.run_inner(images, batch, &[0], None, false, Some(&mut times))?,
            Some(w) => {
                let c = blend_coefficients(self.arenas.len(), batch, w)?;
                let sets: Vec<usize> = (0..self.arenas.len()).collect();
                self.run_inner(images, batch, &sets, Some(&c), false, Some(&mut times))?
            }
        };
        Ok(times)
    }

    fn run(
        &self,
        images: &DeviceVec<f32>,
        batch: usize,
        sets: &[usize],
        coef: Option<&[f32]>,
        features: bool,
    ) -> CudaResult<ForwardOutput> {
        self.run_inner(images, batch, sets, coef, features, None)
    }

    fn run_inner(
        &self,
        images: &DeviceVec<f32>,
        batch: usize,
        sets: &[usize],
        coef: Option<&[f32]>,
        features: bool,
        mut profile: Option<&mut Vec<(&'static str, f64)>>,
    ) -> CudaResult<ForwardOutput> {
        let cfg = &self.cfg;
        if batch == 0 || images.len() != batch * cfg.image_numel() {
            return Err(arg_err(
                "images",
                format!(
                    "{} values on the device for {batch} images of {} (3·{}·{})",
                    images.len(),
                    cfg.image_numel(),
                    cfg.image_size,
                    cfg.image_size
                ),
            ));
        }
        check_batch(cfg, batch)?;
        let gpu = &*self.gpu;
        let wk = self.alloc(batch, coef)?;
        let wa = WorkAddrs {
            img: addr(gpu, images),
            cols: addr(gpu, &wk.cols),
            patches: addr(gpu, &wk.patches),
            emb: addr(gpu, &wk.emb),
            x: addr(gpu, &wk.x),
            h: addr(gpu, &wk.h),
            qkv: addr(gpu, &wk.qkv),
            att: addr(gpu, &wk.att),
            mlp: addr(gpu, &wk.mlp),
            pooled: addr(gpu, &wk.pooled),
            feat_raw: addr(gpu, &wk.feat_raw),
            feats: addr(gpu, &wk.feats),
            feat_t: addr(gpu, &wk.feat_t),
            logits: addr(gpu, &wk.logits),
            coef: wk.coef.as_ref().map_or(0, |v| addr(gpu, v)),
        };
        // Addresses are taken now, from arenas whose layout is checked: the kernels read
        // exactly the tensors of that layout.
        let mut ptrs = Vec::with_capacity(sets.len());
        for &s in sets {
            if self.arenas[s].layout() != &self.layouts[s] {
                return Err(arg_err(
                    "arena",
                    format!("the arena of model {s} was replaced by one of another layout"),
                ));
            }
            let base = device_address(gpu, self.arenas[s].buffer());
            ptrs.push(model_ptrs(base, self.arenas[s].layout(), cfg)?);
        }
        let dt = self.precision.dtype();
        if profile.is_some() {
            gpu.synchronize()?;
        }
        for op in plan(cfg, batch, &ptrs, &wa) {
            let t0 = std::time::Instant::now();
            // SAFETY: every address of the plan is a buffer of `wk` (sized by `alloc` from the
            // same config and batch), the images (length checked above) or a tensor of an arena
            // held by `self` whose layout was checked above; the shapes are those of `plan`.
            unsafe { launch(gpu, dt, &op)? };
            if let Some(times) = profile.as_deref_mut() {
                gpu.synchronize()?;
                let kind = match op {
                    Op::Gemm(_) => 0,
                    Op::Attention { .. } => 1,
                    Op::LayerNorm(_) => 2,
                    _ => 3,
                };
                times[kind].1 += t0.elapsed().as_secs_f64();
            }
        }
        let logits = gpu.download(&wk.logits.view())?;
        let feats = if features {
            Some(gpu.download(&wk.feats.view())?)
        } else {
            None
        };
        Ok(ForwardOutput {
            logits,
            features: feats,
            batch,
            num_classes: cfg.num_classes,
        })
    }
}

#[cfg(test)]
#[path = "cuda_host.rs"]
mod host;
