//! What the pipeline needs from a model: a batched forward ([`Model`]), and weight
//! interpolation `θ(λ) = (1 − λ)θ0 + λθ1` ([`Interpolate`], with an optional per-sample
//! blended forward, [`PerSampleForward`]). Models merged as M task vectors are read parameter by
//! parameter instead ([`dawin_core::merge::ParamSource`], see [`crate::mtl`]).
use crate::error::{Error, Result};
use dawin_core::stats::RowStats;
use dawin_vit::ClipClassifier;

/// A classifier: inputs `[batch, input_numel]` (f32, preprocessed) to logits `[batch, C]`.
pub trait Model: Send + Sync {
    /// `C`, the number of classes of the head.
    fn num_classes(&self) -> usize;
    /// Number of f32 values of one input sample.
    fn input_numel(&self) -> usize;
    /// Logits `[batch, C]`, row-major.
    fn forward(&self, inputs: &[f32], batch: usize) -> Result<Vec<f32>>;

    /// Logits of consecutive batches: `next()` gives each batch's inputs
    /// (`[batch, input_numel]`, `batch`; `None` at the end) and `out` receives each batch's
    /// logits `[batch, C]`, in order. The default runs [`Model::forward`] batch by batch; a
    /// device model may request batch i + 1 while it computes batch i, so that loading overlaps
    /// its work ([`crate::cuda`]). The pipeline's forwards over datasets go through here.
    fn forward_batches(
        &self,
        next: &mut dyn FnMut() -> Result<Option<(Vec<f32>, usize)>>,
        out: &mut dyn FnMut(Vec<f32>) -> Result<()>,
    ) -> Result<()> {
        while let Some((x, batch)) = next()? {
            out(self.forward(&x, batch)?)?;
        }
        Ok(())
    }

    /// Per-row statistics of logits `[N, c]` at temperature `t` on the model's own device
    /// (entropy `H = −Σ_k p_k ln p_k` of `p = softmax(z/t)`, max probability, argmax, …, as
    /// [`dawin_core::stats::row_stats`]); `None` (the default) when the model has no device of
    /// its own, and the pipeline computes them on the CPU.
    fn row_stats(&self, logits: &[f32], c: usize, t: f32) -> Option<Result<Vec<RowStats>>> {
        let _ = (logits, c, t);
        None
    }
}

/// Models whose weights can be merged: θ(λ) = (1 − λ)·θ0 + λ·θ1 over every parameter, head
/// included, built in memory.
pub trait Interpolate: Model + Sized {
    /// Errors (naming what differs) when `self` and `other` cannot be merged.
    fn check_compatible(&self, other: &Self) -> Result<()>;
    /// θ(λ) = (1 − λ)·`self` + λ·`other`, λ ∈ [0, 1]; λ = 0 and λ = 1 copy exactly.
    fn interpolate(&self, other: &Self, lambda: f32) -> Result<Self>;

    /// Calls `f(k, θ(λ_k))` for every `λ_k` of `lambdas`, in order, with
    /// `θ(λ) = (1 − λ)·self + λ·other`. The default builds each with
    /// [`Interpolate::interpolate`] and drops it before the next; a device model may make all
    /// K at once (one multi-lerp launch writing K arenas, see [`crate::cuda`]). The pipeline's
    /// merges per mixture component go through here.
    fn for_each_merged(
        &self,
        other: &Self,
        lambdas: &[f32],
        f: &mut dyn FnMut(usize, &dyn Model) -> Result<()>,
    ) -> Result<()> {
        for (k, &l) in lambdas.iter().enumerate() {
            let m = self.interpolate(other, l)?;
            f(k, &m)?;
        }
        Ok(())
    }

    /// An exact per-sample-λ forward over the pair (`self` = θ0, `other` = θ1), built once and
    /// reused for every batch: sample i goes through θ(λ_i) = (1 − λ_i)θ0 + λ_iθ1 without
    /// materialising any merged model. `None` (the default) when the model type has none; the
    /// pipeline then merges once per distinct λ.
    fn per_sample_forward(&self, other: &Self) -> Option<Result<Box<dyn PerSampleForward + '_>>> {
        let _ = other;
        None
    }

    /// `‖other − self‖ / ‖self‖` over the weights that matter for "same base" (for a CLIP
    /// classifier, the encoder without the head): a fine-tune stays close to its base, a model
    /// pre-trained separately does not. `None` (the default) skips the pipeline's check.
    fn relative_distance(&self, other: &Self) -> Option<f64> {
        let _ = other;
        None
    }
}

/// A prepared per-sample-λ forward (see [`Interpolate::per_sample_forward`]).
pub trait PerSampleForward: Send + Sync {
    /// Logits `[batch, C]` of `inputs` `[batch, input_numel]`, sample i through θ(`lambdas[i]`).
    fn forward(&self, inputs: &[f32], batch: usize, lambdas: &[f32]) -> Result<Vec<f32>>;
}

/// [`PerSampleForward`] of two CLIP classifiers: θ0 and Δθ = θ1 − θ0 stacked once in
/// [`dawin_vit::BlendedWeights`], run by [`dawin_vit::cpu::blended::forward_lerp`].
struct ClipBlend(dawin_vit::BlendedWeights);

impl PerSampleForward for ClipBlend {
    fn forward(&self, inputs: &[f32], batch: usize, lambdas: &[f32]) -> Result<Vec<f32>> {
        Ok(dawin_vit::cpu::blended::forward_lerp(inputs, batch, &self.0, lambdas)?.0)
    }
}

impl Model for ClipClassifier {
    fn num_classes(&self) -> usize {
        self.config().num_classes
    }
    fn input_numel(&self) -> usize {
        self.config().image_numel()
    }
    fn forward(&self, inputs: &[f32], batch: usize) -> Result<Vec<f32>> {
        Ok(ClipClassifier::forward(self, inputs, batch)?)
    }
}

impl Interpolate for ClipClassifier {
    fn check_compatible(&self, other: &Self) -> Result<()> {
        if self.head_normalize() != other.head_normalize() {
            return Err(Error::invalid(
                "checkpoints",
                format!(
                    "θ0's head has normalize = {}, θ1's normalize = {}: heads on normalised and on \
                     raw features do not interpolate",
                    self.head_normalize(),
                    other.head_normalize()
                ),
            ));
        }
        let (a, b) = (self.config(), other.config());
        if a != b {
            return Err(Error::invalid(
                "checkpoints",
                format!("θ0 and θ1 have different architectures: {a:?} vs {b:?}"),
            ));
        }
        let (pa, pb) = (self.weights().params(), other.weights().params());
        if pa.len() != pb.len() {
            return Err(Error::invalid(
                "checkpoints",
                format!("θ0 has {} parameter tensors, θ1 {}", pa.len(), pb.len()),
            ));
        }
        for (i, (x, y)) in pa.iter().zip(&pb).enumerate() {
            if x.len() != y.len() {
                return Err(Error::invalid(
                    "checkpoints",
                    format!(
                        "parameter tensor #{i}: θ0 has {} values, θ1 {}",
                        x.len(),
                        y.len()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Merges slice by slice with [`dawin_core::merge::lerp`] over [`dawin_vit::ClipWeights::params`].
    fn interpolate(&self, other: &Self, lambda: f32) -> Result<Self> {
        if !(0.0..=1.0).contains(&lambda) {
            return Err(Error::invalid(
                "lambda",
                format!("must lie in [0, 1], got {lambda}"),
            ));
        }
        self.check_compatible(other)?;
        let mut w = self.weights().clone();
        {
            let b = other.weights().params();
            let a = self.weights().params();
            for ((dst, a), b) in w.params_mut().into_iter().zip(a).zip(b) {
                dawin_core::merge::lerp(a, b, lambda, dst)?;
            }
        }
        Ok(ClipClassifier::new(self.config().clone(), w)?
            .with_head_normalize(self.head_normalize()))
    }

    /// [`dawin_vit::BlendedWeights`] of (θ0, θ1): holds two f32 model copies. `None` (one merge
    /// per distinct λ) for heads on raw features (`normalize = false`), which the blended forward
    /// does not apply.
    fn per_sample_forward(&self, other: &Self) -> Option<Result<Box<dyn PerSampleForward + '_>>> {
        if !self.head_normalize() {
            return None;
        }
        Some(
            self.check_compatible(other)
                .and_then(|()| Ok(dawin_vit::BlendedWeights::from_classifiers(self, &[other])?))
                .map(|bw| Box::new(ClipBlend(bw)) as Box<dyn PerSampleForward>),
        )
    }

    /// Over the encoder (the head excluded: a fine-tuned head may start from zero), by
    /// [`dawin_core::merge::relative_distance`].
    fn relative_distance(&self, other: &Self) -> Option<f64> {
        if self.config() != other.config() {
            return None;
        }
        dawin_core::merge::relative_distance(&self.weights().encoder_params(), other).ok()
    }
}
