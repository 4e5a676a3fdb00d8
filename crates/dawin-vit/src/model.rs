//! [`ClipClassifier`]: a config, its weights and the forward passes.

use crate::config::VitConfig;
use crate::cpu;
use crate::error::{Error, Result};
use crate::tensors::TensorSource;
use crate::weights::{infer_config, CheckpointNaming, ClipWeights, LoadOptions};

/// What a forward returns.
#[derive(Clone, Debug, PartialEq)]
pub struct ForwardOutput {
    /// Logits, row-major `[batch, num_classes]`.
    pub logits: Vec<f32>,
    /// L2-normalised image features `[batch, embed_dim]`, when asked for.
    pub features: Option<Vec<f32>>,
    /// Number of samples.
    pub batch: usize,
    /// Number of classes (columns of `logits`).
    pub num_classes: usize,
}

/// A CLIP ViT image classifier: `logits = W · f/‖f‖ + b` with `f` the CLIP image embedding.
///
/// The weights are plain f32 tensors in host memory ([`ClipWeights`]); the forward here is the CPU
/// reference ([`crate::cpu`]). A GPU backend uploads the same [`ClipWeights`] and must agree with it.
#[derive(Clone, Debug)]
pub struct ClipClassifier {
    config: VitConfig,
    weights: ClipWeights,
    naming: Option<CheckpointNaming>,
}

impl ClipClassifier {
    /// Builds a classifier from weights already in memory; checks them against `config`.
    pub fn new(config: VitConfig, weights: ClipWeights) -> Result<Self> {
        config.validate()?;
        weights.check(&config)?;
        Ok(ClipClassifier {
            config,
            weights,
            naming: None,
        })
    }

    /// Loads a checkpoint in either naming (detected), inferring the config from its shapes
    /// ([`infer_config`]). The head is read from `head` when given (e.g. a separate zero-shot head
    /// file), else from `classification_head.weight` / `.bias` of `src`.
    pub fn from_source(
        src: &dyn TensorSource,
        head: Option<&dyn TensorSource>,
        opts: &LoadOptions,
    ) -> Result<Self> {
        let (config, naming) = infer_config(src, head, opts)?;
        let weights = ClipWeights::load(src, head, &config, &naming)?;
        Ok(ClipClassifier {
            config,
            weights,
            naming: Some(naming),
        })
    }

    /// Loads a checkpoint whose config is known: every tensor must have exactly the shape `config`
    /// implies (a checkpoint of another size is an error naming the first tensor that differs).
    pub fn from_source_with_config(
        src: &dyn TensorSource,
        head: Option<&dyn TensorSource>,
        config: VitConfig,
    ) -> Result<Self> {
        let naming = CheckpointNaming::detect(src)?;
        let weights = ClipWeights::load(src, head, &config, &naming)?;
        Ok(ClipClassifier {
            config,
            weights,
            naming: Some(naming),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &VitConfig {
        &self.config
    }

    /// The weights.
    pub fn weights(&self) -> &ClipWeights {
        &self.weights
    }

    /// The naming of the checkpoint the model was loaded from (`None` when built in memory).
    pub fn naming(&self) -> Option<&CheckpointNaming> {
        self.naming.as_ref()
    }

    /// Logits `[batch, C]` of preprocessed images `[batch, 3, S, S]` (CPU, f32).
    ///
    /// Errors when `images.len() != batch · 3 · S · S` or an input value is not finite.
    pub fn forward(&self, images: &[f32], batch: usize) -> Result<Vec<f32>> {
        Ok(self.forward_with(images, batch, false)?.logits)
    }

    /// Logits, and the normalised features when `with_features`. A non-finite logit (weights
    /// that overflow) is an error naming the sample.
    pub fn forward_with(
        &self,
        images: &[f32],
        batch: usize,
        with_features: bool,
    ) -> Result<ForwardOutput> {
        let (logits, feats) = cpu::forward(images, batch, &self.config, &self.weights)?;
        if let Some(i) = logits.iter().position(|v| !v.is_finite()) {
            return Err(Error::arg(
                "images",
                format!(
                    "the forward produced a non-finite logit for sample {} (weights overflow?)",
                    i / self.config.num_classes
                ),
            ));
        }
        Ok(ForwardOutput {
            logits,
            features: with_features.then_some(feats),
            batch,
            num_classes: self.config.num_classes,
        })
    }
}
