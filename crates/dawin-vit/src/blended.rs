//! M + 1 parameter sets of one CLIP ViT, stacked for the exact per-sample blended forward.
//!
//! DaWin's per-sample variant evaluates, for every sample `x_i`, the merged model
//!
//! `θ(x_i) = θ0 + Σ_{j=1..M} w_ij (θ_j − θ0)`
//!
//! (two models: M = 1 and `w_i1 = λ_i`, i.e. `θ(λ_i) = (1 − λ_i) θ0 + λ_i θ1`; M models in the
//! task-arithmetic form: `w_ij = s · λ_ij`). Every parametrised operation of the ViT is affine in
//! its own parameters given its input — a linear map `W h + b`, a layer norm's `γ ⊙ n + β`, the
//! added class and positional embeddings, the head — so the merged model's layer output on its
//! own activation `h_i` is exactly
//!
//! `op(θ(x_i); h_i) = op(θ0; h_i) + Σ_j w_ij · op_Δ(θ_j − θ0; h_i)`,
//!
//! with `op_Δ` the same map with the deltas as parameters (for a linear: `ΔW_j h_i + Δb_j`).
//! The parameter-free parts (attention softmax, QuickGELU, normalisation statistics) act on the
//! blended activations as usual. A whole batch with one coefficient vector per sample therefore
//! runs without building any merged model: each linear layer is one GEMM of `h` against
//! `[W0; ΔW_1; …; ΔW_M]` (stacked along the output dimension) followed by a per-row combine;
//! see [`crate::cpu::blended`].
//!
//! Memory: [`BlendedWeights`] holds θ0 and the M deltas in f32, i.e. (M + 1) copies of the
//! model (ViT-B/32 ≈ 88 M parameters ≈ 350 MB per copy). The source weights can be dropped once
//! it is built.

use rayon::prelude::*;

use crate::config::VitConfig;
use crate::error::{Error, Result};
use crate::model::ClipClassifier;
use crate::weights::ClipWeights;

/// A base model θ0 and M other models θ_1 … θ_M of the same config, stored as θ0 and the deltas
/// `Δθ_j = θ_j − θ0` (every parameter, classification head included), ready for
/// [`crate::cpu::blended::forward`]:
///
/// `θ(x_i) = θ0 + Σ_j w_ij Δθ_j` for each sample `i`.
///
/// Holds (M + 1) model copies in f32; the deltas are computed once, in f32.
///
/// ```
/// use dawin_vit::{cpu, BlendedWeights, ClipWeights, VitConfig};
///
/// let cfg = VitConfig { image_size: 16, patch_size: 8, width: 32, layers: 1, heads: 2,
///                       mlp_dim: 64, embed_dim: 16, num_classes: 3, layer_norm_eps: 1e-5,
///                       activation: Default::default(), layer_scale: false };
/// let (zs, ft) = (ClipWeights::random(&cfg, 0)?, ClipWeights::random(&cfg, 1)?);
/// let bw = BlendedWeights::new(&cfg, &zs, &[&ft])?;
/// let images = vec![0.1f32; 3 * cfg.image_numel()];
/// // One λ per sample: θ0, θ1 and their midpoint, in one batch.
/// let (logits, _features) = cpu::blended::forward_lerp(&images, 3, &bw, &[0.0, 1.0, 0.5])?;
/// let (zs_logits, _) = cpu::forward(&images[..cfg.image_numel()], 1, &cfg, &zs)?;
/// assert!((logits[0] - zs_logits[0]).abs() < 1e-5);
/// # Ok::<(), dawin_vit::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct BlendedWeights {
    pub(crate) config: VitConfig,
    pub(crate) models: usize,
    /// Every tensor of the parameter list as `[θ0; Δθ_1; …; Δθ_M]`, stacked along its first
    /// dimension (a linear map `[(M+1)·out, in]`, a vector `(M+1)·len` long).
    pub(crate) stacked: ClipWeights,
}

/// `dst = [base, others[0] − base, …]`.
fn stack_into(dst: &mut [f32], base: &[f32], others: &[&[f32]]) {
    let n = base.len();
    dst[..n].copy_from_slice(base);
    for (o, other) in dst[n..].chunks_mut(n.max(1)).zip(others) {
        o.par_chunks_mut(1 << 16)
            .zip(other.par_chunks(1 << 16).zip(base.par_chunks(1 << 16)))
            .for_each(|(o, (x, b))| {
                for ((o, x), b) in o.iter_mut().zip(x).zip(b) {
                    *o = x - b;
                }
            });
    }
}

impl BlendedWeights {
    /// Stacks the base `θ0` and the models `others` = `[θ_1, …, θ_M]` (M ≥ 1) of config `cfg`.
    ///
    /// Errors: no other model, or a weight set whose tensors do not match `cfg` (the error
    /// names the model and the tensor).
    pub fn new(cfg: &VitConfig, base: &ClipWeights, others: &[&ClipWeights]) -> Result<Self> {
        cfg.validate()?;
        if others.is_empty() {
            return Err(Error::arg(
                "others",
                "at least one model besides the base is required",
            ));
        }
        base.check(cfg)
            .map_err(|e| Error::arg("base", format!("θ0 does not match the config: {e}")))?;
        for (j, o) in others.iter().enumerate() {
            o.check(cfg).map_err(|e| {
                Error::arg(
                    "others",
                    format!("θ{} does not match the config of θ0: {e}", j + 1),
                )
            })?;
        }
        let bp = base.params();
        let ops: Vec<Vec<&[f32]>> = others.iter().map(|o| o.params()).collect();
        let mut stacked = ClipWeights::build(cfg, others.len() + 1, |_, _| {});
        for (k, dst) in stacked.params_mut().into_iter().enumerate() {
            let os: Vec<&[f32]> = ops.iter().map(|p| p[k]).collect();
            stack_into(dst, bp[k], &os);
        }
        Ok(BlendedWeights {
            config: cfg.clone(),
            models: others.len(),
            stacked,
        })
    }

    /// [`BlendedWeights::new`] with the models read one at a time: `load(j)` returns θ_{j+1}
    /// (j < `models`), which is dropped once its deltas are stacked, so that memory holds the
    /// stacked sets, θ0 and one model rather than the M models besides. Equal, value for value,
    /// to [`BlendedWeights::new`] over the same models. Errors: those of `load`, `models` = 0, a
    /// model not matching `cfg` (named).
    pub fn from_loader<E: From<Error>>(
        cfg: &VitConfig,
        base: &ClipWeights,
        models: usize,
        mut load: impl FnMut(usize) -> std::result::Result<ClipWeights, E>,
    ) -> std::result::Result<Self, E> {
        if models == 0 {
            return Err(
                Error::arg("models", "at least one model besides the base is required").into(),
            );
        }
        // θ0 in every slot: its own deltas are zero, and the shapes are checked here.
        let mut bw = Self::new(cfg, base, &vec![base; models])?;
        let bp = base.params();
        for j in 0..models {
            let w = load(j)?;
            w.check(cfg).map_err(|e| {
                Error::arg(
                    "others",
                    format!("θ{} does not match the config of θ0: {e}", j + 1),
                )
            })?;
            for (dst, (x, b)) in bw
                .stacked
                .params_mut()
                .into_iter()
                .zip(w.params().into_iter().zip(&bp))
            {
                let n = b.len();
                for ((d, x), b) in dst[(j + 1) * n..(j + 2) * n]
                    .iter_mut()
                    .zip(x)
                    .zip(b.iter())
                {
                    *d = x - b;
                }
            }
        }
        Ok(bw)
    }

    /// [`BlendedWeights::new`] from loaded classifiers; their configs must be equal (else an
    /// error giving both).
    pub fn from_classifiers(base: &ClipClassifier, others: &[&ClipClassifier]) -> Result<Self> {
        for (j, o) in others.iter().enumerate() {
            if o.config() != base.config() {
                return Err(Error::arg(
                    "others",
                    format!(
                        "θ{} has config {:?}, θ0 has {:?}",
                        j + 1,
                        o.config(),
                        base.config()
                    ),
                ));
            }
        }
        let ws: Vec<&ClipWeights> = others.iter().map(|o| o.weights()).collect();
        Self::new(base.config(), base.weights(), &ws)
    }

    /// The shared config.
    pub fn config(&self) -> &VitConfig {
        &self.config
    }

    /// M, the number of models besides the base (the length of each sample's coefficient
    /// vector).
    pub fn models(&self) -> usize {
        self.models
    }

    /// Bytes held by the stacked parameters, `(M + 1) · 4 · parameter count`.
    pub fn memory_bytes(&self) -> usize {
        4 * self.stacked.params().iter().map(|p| p.len()).sum::<usize>()
    }
}
