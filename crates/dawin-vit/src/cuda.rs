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
//! [`CudaVit::arena_mut`] for other kernels; caller-held arenas of the same layout, e.g. K
//! outputs of one multi-lerp launch, through [`CudaVit::new_arena`] and
//! [`CudaVit::forward_arenas`]). A forward is a plan of launches over named buffers
//! (`plan.rs`), run by the launchers (`exec.rs`) or by a host interpreter of the kernels'
//! formulas (`interp.rs`: `HostVit`, feature `host-device`, and the tests in `host.rs`).
//! [`VitDevice`] is what a device pipeline (`dawin::cuda`) uses, implemented by both;
//! [`CudaVit::forward_stream`] runs a sequence of batches two deep from pinned host memory.
//!
//! The activation buffers (the workspace) are kept per `CudaVit`: allocated, zero-filled, at
//! the first forward, reallocated only when a larger batch (or a blend over more sets) needs
//! more, and reused as they are by every later forward, views cut to the batch — no kernel
//! reads an activation before the same forward wrote it, which the host interpreter checks with
//! NaN-poisoned buffers reused across batch sizes ([`CudaVit::workspace_bytes`]).
//!
//! **Not run on a GPU yet** (issue #14, docs/gpu-runs.md): everything here is checked on the CPU
//! by the host interpreter and, for the kernels, the host emulation of
//! `crates/dawin-kernels/emulation`; `tests/cuda.rs` is what a GPU session runs.
//!
//! Requirements (checked, errors name the config field): width, mlp_dim and embed_dim
//! multiples of 8, head dimension (width / heads) at most 128 (ViT-H/14: 80, g/14: 88,
//! bigG/14: 104), a GPU of compute capability ≥ 8.0.

use std::sync::{Arc, Mutex};

use dawin_kernels::{ArenaLayout, DType, DeviceArena, DeviceVec, Gpu, PinnedVec};
use half::{bf16, f16};

use crate::config::VitConfig;
use crate::cpu::check_images;
use crate::model::ForwardOutput;
use crate::params::ParamList;
use crate::weights::ClipWeights;

mod args;
mod device;
mod exec;
#[cfg(any(test, feature = "host-device"))]
mod interp;
mod plan;
mod stream;

use args::{arg_err, blend_coefficients, check_batch, check_sets, model_arena};
pub use args::{check_config, check_merge};
pub use device::VitDevice;
use exec::{Exec, WorkspaceOf, Workspaces};
#[cfg(any(test, feature = "host-device"))]
pub use interp::HostVit;
use plan::Work;

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
/// // θ(0.4) = 0.6·θ0 + 0.4·θ1 merged on the device (one launch) and run from its arena.
/// let mut merged = vit.new_arena()?;
/// vit.gpu().lerp_arena(vit.arena(0).unwrap(), vit.arena(1).unwrap(), 0.4, &mut merged)?;
/// let z = vit.forward_arenas(&[&merged], &images, 4, None, false)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct CudaVit {
    gpu: Arc<Gpu>,
    cfg: VitConfig,
    precision: Precision,
    arenas: Vec<DeviceArena>,
    /// The layout of every arena of this model (same config and precision); a forward refuses
    /// an arena that does not have it (see [`CudaVit::arena_mut`]).
    layout: ArenaLayout,
    /// The parameter list of `cfg`: tensor i of every arena is its tensor i.
    list: ParamList,
    /// The activation buffers, kept between forwards (see `exec::Slots`).
    workspace: Mutex<Workspaces>,
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
    /// Uploads `models` (θ0 first; more for [`CudaVit::forward_blended`], at most
    /// [`dawin_kernels::source::MAX_SETS`] for that) of config `cfg` in `precision`. Errors: no
    /// model, a config the kernels cannot run or weights that do not match it (naming the
    /// model), a device below compute capability 8.0.
    pub fn new(
        gpu: Arc<Gpu>,
        cfg: &VitConfig,
        models: &[&ClipWeights],
        precision: Precision,
    ) -> CudaResult<Self> {
        check_config(cfg)?;
        if models.is_empty() {
            return Err(arg_err("models", "no model given".into()));
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
        models[0]
            .check(cfg)
            .map_err(|e| arg_err("models", format!("model 0 does not match the config: {e}")))?;
        let first = model_arena(cfg, models[0], precision)?;
        let mut vit = CudaVit {
            layout: first.layout().clone(),
            arenas: vec![DeviceArena::upload(&gpu, &first)?],
            gpu,
            cfg: cfg.clone(),
            precision,
            list: ParamList::new(cfg),
            workspace: Mutex::new(Workspaces::default()),
        };
        drop(first);
        for m in &models[1..] {
            vit.push_model(m)?;
        }
        Ok(vit)
    }

    /// Uploads one more model (index [`CudaVit::models`] before the call, returned); the host
    /// copy may be dropped right after, so M models can be uploaded one at a time. Errors:
    /// weights that do not match the config (naming the model).
    pub fn push_model(&mut self, model: &ClipWeights) -> CudaResult<usize> {
        let j = self.arenas.len();
        model.check(&self.cfg).map_err(|e| {
            arg_err(
                "models",
                format!("model {j} does not match the config: {e}"),
            )
        })?;
        let a = self.upload_arena(model)?;
        self.arenas.push(a);
        Ok(j)
    }

    /// Uploads `model` into a new arena of this model's layout that the caller holds (for
    /// [`CudaVit::forward_arenas`]), e.g. a model merged on the host. Errors: weights that do
    /// not match the config.
    pub fn upload_arena(&self, model: &ClipWeights) -> CudaResult<DeviceArena> {
        model
            .check(&self.cfg)
            .map_err(|e| arg_err("model", format!("does not match the config: {e}")))?;
        let host = model_arena(&self.cfg, model, self.precision)?;
        Ok(DeviceArena::upload(&self.gpu, &host)?)
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

    /// A zero-filled arena of this model's layout, for a merge on the device to write
    /// ([`Gpu::lerp_arena`], [`Gpu::multi_lerp_arena`], [`Gpu::task_arithmetic_arena`]) and
    /// [`CudaVit::forward_arenas`] to read.
    pub fn new_arena(&self) -> CudaResult<DeviceArena> {
        Ok(DeviceArena::zeros(&self.gpu, self.layout.clone())?)
    }

    /// Bytes of device memory held by the kept activation buffers (0 before the first
    /// forward): sized by the largest batch (and blend) run so far, reused by every forward.
    pub fn workspace_bytes(&self) -> usize {
        self.workspace
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .bytes()
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
        let a = self
            .arenas
            .get(model)
            .ok_or_else(|| arg_err("model", format!("model {model} of {}", self.arenas.len())))?;
        self.run(images, batch, vec![a], None, features)
    }

    /// The forward over caller-held arenas of this model's layout (an arena a merge on the
    /// device wrote, [`CudaVit::new_arena`], or [`CudaVit::arena`]): one arena and no `coeffs`,
    /// the plain forward of those weights; several, the blended forward of
    /// [`CudaVit::forward_blended`] over them (arena 0 = θ0, `coeffs` `[batch, M]`). Errors: an
    /// arena of another layout, a count outside 1 ..= 8, `coeffs` missing or given wrongly.
    pub fn forward_arenas(
        &self,
        arenas: &[&DeviceArena],
        images: &[f32],
        batch: usize,
        coeffs: Option<&[f32]>,
        features: bool,
    ) -> CudaResult<ForwardOutput> {
        check_images(images, batch, &self.cfg)?;
        let img = self.gpu.upload(images)?;
        self.forward_arenas_device(arenas, &img, batch, coeffs, features)
    }

    /// [`CudaVit::forward_arenas`] of images already on the device (see
    /// [`CudaVit::forward_model_device`]).
    pub fn forward_arenas_device(
        &self,
        arenas: &[&DeviceArena],
        images: &DeviceVec<f32>,
        batch: usize,
        coeffs: Option<&[f32]>,
        features: bool,
    ) -> CudaResult<ForwardOutput> {
        check_sets(arenas.len())?;
        let c = match (arenas.len(), coeffs) {
            (1, None) => None,
            (n, Some(w)) => Some(blend_coefficients(n, batch, w)?),
            (_, None) => return Err(arg_err("coeffs", "a blended forward needs them".into())),
        };
        self.run(images, batch, arenas.to_vec(), c.as_deref(), features)
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
        check_sets(self.arenas.len())?;
        let c = blend_coefficients(self.arenas.len(), batch, coeffs)?;
        self.run(
            images,
            batch,
            self.arenas.iter().collect(),
            Some(&c),
            features,
        )
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
            None => {
                let a = vec![&self.arenas[0]];
                self.run_inner(images, batch, a, None, false, Some(&mut times), None)?
            }
            Some(w) => {
                check_sets(self.arenas.len())?;
                let c = blend_coefficients(self.arenas.len(), batch, w)?;
                let a = self.arenas.iter().collect();
                self.run_inner(images, batch, a, Some(&c), false, Some(&mut times), None)?
            }
        };
        Ok(times)
    }

    fn run(
        &self,
        images: &DeviceVec<f32>,
        batch: usize,
        arenas: Vec<&DeviceArena>,
        coef: Option<&[f32]>,
        features: bool,
    ) -> CudaResult<ForwardOutput> {
        self.run_inner(images, batch, arenas, coef, features, None, None)
    }

    /// The forward of `images` over `arenas`; with `queued`, the logits' download into it is
    /// queued (no wait, empty logits returned: see `stream.rs`).
    #[allow(clippy::too_many_arguments)]
    fn run_inner(
        &self,
        images: &DeviceVec<f32>,
        batch: usize,
        arenas: Vec<&DeviceArena>,
        coef: Option<&[f32]>,
        features: bool,
        profile: Option<&mut Vec<(&'static str, f64)>>,
        queued: Option<&mut PinnedVec<f32>>,
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
        // The plan reads exactly the tensors of this model's layout.
        for (s, a) in arenas.iter().enumerate() {
            if a.layout() != &self.layout {
                return Err(arg_err(
                    "arena",
                    format!(
                        "weight set {s} has another layout than this model's (another config \
                         or precision, or an arena replaced through arena_mut)"
                    ),
                ));
            }
        }
        let ops = plan::plan(cfg, &self.list, batch, arenas.len());
        let run = Run {
            images,
            batch,
            coef,
            ops: &ops,
            features,
        };
        let (logits, features) = match self.precision {
            Precision::F16 => self.execute::<f16>(arenas, run, profile, queued)?,
            Precision::Bf16 => self.execute::<bf16>(arenas, run, profile, queued)?,
        };
        Ok(ForwardOutput {
            logits,
            features,
            batch,
            num_classes: cfg.num_classes,
        })
    }

    /// Runs a plan with T activations in the kept workspace; returns the logits and, when
    /// asked, the features. Forwards of one `CudaVit` run one at a time (the workspace lock).
    fn execute<T: WorkspaceOf>(
        &self,
        arenas: Vec<&DeviceArena>,
        run: Run<'_>,
        profile: Option<&mut Vec<(&'static str, f64)>>,
        queued: Option<&mut PinnedVec<f32>>,
    ) -> CudaResult<(Vec<f32>, Option<Vec<f32>>)> {
        let mut ws = self.workspace.lock().unwrap_or_else(|e| e.into_inner());
        let slots = std::mem::take(T::slots(&mut ws));
        let mut ex = Exec::<T>::new(
            &self.gpu,
            &self.cfg,
            arenas,
            run.images,
            (run.batch, run.coef),
            slots,
        )?;
        let result = ex.run(run.ops, profile).and_then(|()| {
            if let Some(dst) = queued {
                ex.download_async(Work::Logits, dst)?;
                return Ok((Vec::new(), None));
            }
            let logits = ex.download(Work::Logits)?;
            let features = match run.features {
                true => Some(ex.download(Work::Feats)?),
                false => None,
            };
            Ok((logits, features))
        });
        *T::slots(&mut ws) = ex.into_work();
        result
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
