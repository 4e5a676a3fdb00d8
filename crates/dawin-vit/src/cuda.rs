//! The CLIP ViT forward on a CUDA GPU with the hand-written kernels of `dawin-kernels` (GEMM
//! with fused epilogues, layer norm, attention, im2col, token embeddings, L2 normalisation,
//! launched through its safe launchers): fp16 or bf16 weights and activations, f32 accumulation
//! on the tensor cores, an f32 residual stream and f32 layer-norm statistics.
//!
//! Per image batch (B images, T tokens, rows = B·T), exactly the layers of [`crate::cpu`]:
//!
//! ```text
//! cols    = im2col(images)                          T   [B·G², K'] (K = 3P², padded to K' = ⌈K/8⌉·8)
//! patches = cols · conv1ᵀ                           f32 [B·G², W]
//! x       = ln_pre(patches ⊕ class ⊕ position)      f32 [rows, W]
//! per block: h = ln_1(x); qkv = h·in_projᵀ + b; a = attention(qkv)
//!            x += γ1 ⊙ (a·out_projᵀ + b)           (LayerScale and residual fused in the GEMM
//!                                                    epilogue; γ = 1 without LayerScale)
//!            h = ln_2(x); f = act(h·c_fcᵀ + b) (fused; QuickGELU or exact GELU with erff)
//!            x += γ2 ⊙ (f·c_projᵀ + b)              (fused)
//! f = ln_post(x[:, 0])·proj; f̂ = f/‖f‖; logits = f̂·headᵀ + b_head
//! ```
//!
//! [`CudaVit::forward_blended`] runs issue #8's exact per-sample interpolation: every
//! parametrised op of sample i is `Σ_s c_is op(θ_s; h_i)` with `c_i0 = 1 − Σ_j w_ij`,
//! `c_ij = w_ij` (= `op(θ0; h_i) + Σ_j w_ij (op(θ_j; h_i) − op(θ0; h_i))`), each GEMM over the
//! M + 1 weight sets in one launch with the blend in its epilogue; a LayerScale branch is the
//! merged model's, `(Σ_s c_is γ_s) ⊙ Σ_s c_is (W_s h_i + b_s)`.
//!
//! Each model's parameters live in one [`DeviceArena`] laid out as the parameter list
//! ([`crate::ParamList`]: names as the OpenAI checkpoint spells them, `proj` as `[E, W]`,
//! `conv1.weight` flattened to `[W, K']`), so a merge on the GPU writes a model that this
//! forward then reads, with no copy through the host ([`CudaVit::merge_into`];
//! [`CudaVit::arena_mut`] for other kernels). A forward is a plan of launches over named
//! buffers (`plan.rs`), run by the launchers (`exec.rs`) or, in the tests, by a host
//! interpreter of the kernels' formulas (`host.rs`).
//!
//! Requirements (checked, errors name the config field): width, mlp_dim and embed_dim
//! multiples of 8, head dimension (width / heads) at most 128 (ViT-H/14: 80, g/14: 88,
//! bigG/14: 104), a GPU of compute capability ≥ 8.0.

use std::sync::Arc;

use dawin_kernels::source::MAX_SETS;
use dawin_kernels::{
    ArenaLayout, DType, DeviceArena, DeviceVec, Gpu, Half, HostArena, Param, MAX_HEAD_DIM,
};
use half::{bf16, f16};

use crate::config::VitConfig;
use crate::cpu::check_images;
use crate::model::ForwardOutput;
use crate::params::{Module, ParamKey, ParamList, Part};
use crate::weights::ClipWeights;

mod exec;
mod plan;

use exec::Exec;
use plan::{patch_dim_padded, Work};

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

/// `[batch, M + 1]`: `c_i0 = 1 − Σ_j w_ij`, `c_ij = w_ij`, after checking `coeffs`.
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
    /// The parameter list of `cfg`: tensor i of every arena is its tensor i.
    list: ParamList,
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
        if models.is_empty() || models.len() > MAX_SETS {
            return Err(arg_err(
                "models",
                format!("{} models given, 1 ..= {MAX_SETS} supported", models.len()),
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
            list: ParamList::new(cfg),
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
        profile: Option<&mut Vec<(&'static str, f64)>>,
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
        // The plan reads exactly the tensors of the layout each arena was uploaded with.
        for &s in sets {
            if self.arenas[s].layout() != &self.layouts[s] {
                return Err(arg_err(
                    "arena",
                    format!("the arena of model {s} was replaced by one of another layout"),
                ));
            }
        }
        let ops = plan::plan(cfg, &self.list, batch, sets.len());
        let arenas: Vec<&DeviceArena> = sets.iter().map(|&s| &self.arenas[s]).collect();
        let run = Run {
            images,
            batch,
            coef,
            ops: &ops,
            features,
        };
        let (logits, features) = match self.precision {
            Precision::F16 => self.execute::<f16>(arenas, run, profile)?,
            Precision::Bf16 => self.execute::<bf16>(arenas, run, profile)?,
        };
        Ok(ForwardOutput {
            logits,
            features,
            batch,
            num_classes: cfg.num_classes,
        })
    }

    /// Runs a plan with T activations; returns the logits and, when asked, the features.
    fn execute<T: Half>(
        &self,
        arenas: Vec<&DeviceArena>,
        run: Run<'_>,
        profile: Option<&mut Vec<(&'static str, f64)>>,
    ) -> CudaResult<(Vec<f32>, Option<Vec<f32>>)> {
        let mut ex = Exec::<T>::new(
            &self.gpu, &self.cfg, arenas, run.images, run.batch, run.coef,
        )?;
        ex.run(run.ops, profile)?;
        let logits = ex.download(Work::Logits)?;
        let features = if run.features {
            Some(ex.download(Work::Feats)?)
        } else {
            None
        };
        Ok((logits, features))
    }
}

/// What one forward runs on.
#[derive(Clone, Copy)]
struct Run<'a> {
    images: &'a DeviceVec<f32>,
    batch: usize,
    coef: Option<&'a [f32]>,
    ops: &'a [plan::Op],
    features: bool,
}

#[cfg(test)]
mod host;
