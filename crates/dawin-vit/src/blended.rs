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
use crate::weights::{ClipWeights, LayerNorm, Linear};

/// A linear layer of M + 1 parameter sets: `stacked.weight` is `[W0; ΔW_1; …; ΔW_M]`
/// (`[(M+1)·out, in]`), `stacked.bias` `[b0; Δb_1; …]`, `out_dim` the output size of one set.
#[derive(Clone, Debug)]
pub(crate) struct StackedLinear {
    pub(crate) stacked: Linear,
    pub(crate) out_dim: usize,
}

/// A vector parameter (norm scale or shift, embedding) as `[v0, Δv_1, …, Δv_M]`, each `len` long.
#[derive(Clone, Debug)]
pub(crate) struct StackedVec {
    pub(crate) data: Vec<f32>,
    pub(crate) len: usize,
}

/// A layer norm's stacked scale and shift.
#[derive(Clone, Debug)]
pub(crate) struct StackedNorm {
    pub(crate) weight: StackedVec,
    pub(crate) bias: StackedVec,
}

/// One residual block, stacked.
#[derive(Clone, Debug)]
pub(crate) struct StackedBlock {
    pub(crate) ln_1: StackedNorm,
    pub(crate) attn_in_proj: StackedLinear,
    pub(crate) attn_out_proj: StackedLinear,
    pub(crate) ln_2: StackedNorm,
    pub(crate) mlp_c_fc: StackedLinear,
    pub(crate) mlp_c_proj: StackedLinear,
}

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
///                       mlp_dim: 64, embed_dim: 16, num_classes: 3, layer_norm_eps: 1e-5 };
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
    pub(crate) conv1: StackedLinear,
    pub(crate) class_embedding: StackedVec,
    pub(crate) positional_embedding: StackedVec,
    pub(crate) ln_pre: StackedNorm,
    pub(crate) resblocks: Vec<StackedBlock>,
    pub(crate) ln_post: StackedNorm,
    pub(crate) proj: StackedLinear,
    pub(crate) head: StackedLinear,
}

/// `[base, others[0] − base, …]`.
fn stack(base: &[f32], others: &[&[f32]]) -> Vec<f32> {
    let n = base.len();
    let mut out = vec![0.0f32; n * (others.len() + 1)];
    out[..n].copy_from_slice(base);
    for (o, other) in out[n..].chunks_mut(n).zip(others) {
        o.par_chunks_mut(1 << 16)
            .zip(other.par_chunks(1 << 16).zip(base.par_chunks(1 << 16)))
            .for_each(|(o, (x, b))| {
                for ((o, x), b) in o.iter_mut().zip(x).zip(b) {
                    *o = x - b;
                }
            });
    }
    out
}

fn stack_vec(base: &[f32], others: &[&[f32]]) -> StackedVec {
    StackedVec {
        data: stack(base, others),
        len: base.len(),
    }
}

fn stack_linear(base: &Linear, others: &[&Linear]) -> StackedLinear {
    let ws: Vec<&[f32]> = others.iter().map(|l| &l.weight[..]).collect();
    let bias = base.bias.as_ref().map(|b| {
        // Presence of every bias was checked against the config.
        let bs: Vec<&[f32]> = others
            .iter()
            .map(|l| l.bias.as_deref().unwrap_or(&[]))
            .collect();
        stack(b, &bs)
    });
    StackedLinear {
        stacked: Linear {
            weight: stack(&base.weight, &ws),
            bias,
            out_dim: (others.len() + 1) * base.out_dim,
            in_dim: base.in_dim,
        },
        out_dim: base.out_dim,
    }
}

fn stack_norm(base: &LayerNorm, others: &[&LayerNorm]) -> StackedNorm {
    let ws: Vec<&[f32]> = others.iter().map(|l| &l.weight[..]).collect();
    let bs: Vec<&[f32]> = others.iter().map(|l| &l.bias[..]).collect();
    StackedNorm {
        weight: stack_vec(&base.weight, &ws),
        bias: stack_vec(&base.bias, &bs),
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
        let (bv, ov): (_, Vec<_>) = (&base.visual, others.iter().map(|o| &o.visual).collect());
        let lin = |f: &dyn Fn(&crate::weights::VisionWeights) -> &Linear| {
            let os: Vec<&Linear> = ov.iter().map(|v| f(v)).collect();
            stack_linear(f(bv), &os)
        };
        let norm = |f: &dyn Fn(&crate::weights::VisionWeights) -> &LayerNorm| {
            let os: Vec<&LayerNorm> = ov.iter().map(|v| f(v)).collect();
            stack_norm(f(bv), &os)
        };
        let vec = |f: &dyn Fn(&crate::weights::VisionWeights) -> &[f32]| {
            let os: Vec<&[f32]> = ov.iter().map(|v| f(v)).collect();
            stack_vec(f(bv), &os)
        };
        let resblocks = (0..cfg.layers)
            .map(|i| StackedBlock {
                ln_1: norm(&|v| &v.resblocks[i].ln_1),
                attn_in_proj: lin(&|v| &v.resblocks[i].attn_in_proj),
                attn_out_proj: lin(&|v| &v.resblocks[i].attn_out_proj),
                ln_2: norm(&|v| &v.resblocks[i].ln_2),
                mlp_c_fc: lin(&|v| &v.resblocks[i].mlp_c_fc),
                mlp_c_proj: lin(&|v| &v.resblocks[i].mlp_c_proj),
            })
            .collect();
        let heads: Vec<&Linear> = others.iter().map(|o| &o.head).collect();
        Ok(BlendedWeights {
            config: cfg.clone(),
            models: others.len(),
            conv1: lin(&|v| &v.conv1),
            class_embedding: vec(&|v| &v.class_embedding),
            positional_embedding: vec(&|v| &v.positional_embedding),
            ln_pre: norm(&|v| &v.ln_pre),
            resblocks,
            ln_post: norm(&|v| &v.ln_post),
            proj: lin(&|v| &v.proj),
            head: stack_linear(&base.head, &heads),
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
            for ((dst, n), (x, b)) in bw
                .stacked_mut()
                .into_iter()
                .zip(w.params().into_iter().zip(&bp))
            {
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

    /// Every stacked parameter with the length of one of its sets, in the order of
    /// [`ClipWeights::params`].
    fn stacked_mut(&mut self) -> Vec<(&mut [f32], usize)> {
        fn lin<'a>(l: &'a mut StackedLinear, v: &mut Vec<(&'a mut [f32], usize)>) {
            let (o, i) = (l.out_dim, l.stacked.in_dim);
            v.push((&mut l.stacked.weight[..], o * i));
            if let Some(b) = l.stacked.bias.as_mut() {
                v.push((&mut b[..], o));
            }
        }
        fn vec<'a>(s: &'a mut StackedVec, v: &mut Vec<(&'a mut [f32], usize)>) {
            v.push((&mut s.data[..], s.len));
        }
        fn norm<'a>(n: &'a mut StackedNorm, v: &mut Vec<(&'a mut [f32], usize)>) {
            vec(&mut n.weight, v);
            vec(&mut n.bias, v);
        }
        let mut v = Vec::new();
        lin(&mut self.conv1, &mut v);
        vec(&mut self.class_embedding, &mut v);
        vec(&mut self.positional_embedding, &mut v);
        norm(&mut self.ln_pre, &mut v);
        for b in &mut self.resblocks {
            norm(&mut b.ln_1, &mut v);
            norm(&mut b.ln_2, &mut v);
            lin(&mut b.attn_in_proj, &mut v);
            lin(&mut b.attn_out_proj, &mut v);
            lin(&mut b.mlp_c_fc, &mut v);
            lin(&mut b.mlp_c_proj, &mut v);
        }
        norm(&mut self.ln_post, &mut v);
        lin(&mut self.proj, &mut v);
        lin(&mut self.head, &mut v);
        v
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
        let lin = |l: &StackedLinear| {
            l.stacked.weight.len() + l.stacked.bias.as_ref().map_or(0, |b| b.len())
        };
        let norm = |n: &StackedNorm| n.weight.data.len() + n.bias.data.len();
        let blocks: usize = self
            .resblocks
            .iter()
            .map(|b| {
                norm(&b.ln_1)
                    + norm(&b.ln_2)
                    + lin(&b.attn_in_proj)
                    + lin(&b.attn_out_proj)
                    + lin(&b.mlp_c_fc)
                    + lin(&b.mlp_c_proj)
            })
            .sum();
        4 * (lin(&self.conv1)
            + self.class_embedding.data.len()
            + self.positional_embedding.data.len()
            + norm(&self.ln_pre)
            + blocks
            + norm(&self.ln_post)
            + lin(&self.proj)
            + lin(&self.head))
    }
}
