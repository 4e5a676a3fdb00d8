//! [`ClipClassifier`]: a config, its weights and the forward passes.

use std::path::Path;

use crate::arch::Architecture;
use crate::config::VitConfig;
use crate::cpu;
use crate::dataset::{ImageDataset, Skipped};
use crate::error::{Error, Result};
use crate::tensors::TensorSource;
use crate::weights::{CheckpointNaming, ClipWeights, LoadOptions};

pub(crate) use crate::load::resolve_source;

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

/// Predictions of a model over a dataset ([`ClipClassifier::predict_dataset`]).
#[derive(Clone, Debug, PartialEq)]
pub struct DatasetPredictions {
    /// Logits of the evaluated samples, `[indices.len(), num_classes]`.
    pub logits: Vec<f32>,
    /// Normalised features `[indices.len(), embed_dim]`, when asked for.
    pub features: Option<Vec<f32>>,
    /// Dataset indices of the evaluated samples (skipped ones are absent).
    pub indices: Vec<usize>,
    /// Labels of the evaluated samples, when the dataset has labels.
    pub labels: Option<Vec<i64>>,
    /// Samples that could not be loaded (only with `skip_bad_files`).
    pub skipped: Vec<Skipped>,
    /// Number of classes.
    pub num_classes: usize,
}

impl DatasetPredictions {
    /// Top-1 accuracy `#{argmax_c z_ic = y_i} / n` over the evaluated samples (first maximum wins);
    /// `None` without labels.
    pub fn accuracy(&self) -> Option<f64> {
        let labels = self.labels.as_ref()?;
        let correct = self
            .logits
            .chunks(self.num_classes)
            .zip(labels)
            .filter(|(row, &y)| {
                let mut best = 0;
                for (c, &v) in row.iter().enumerate() {
                    if v > row[best] {
                        best = c;
                    }
                }
                best as i64 == y
            })
            .count();
        Some(correct as f64 / labels.len().max(1) as f64)
    }
}

/// A CLIP ViT image classifier: `logits = W · f/‖f‖ + b` with `f` the CLIP image embedding
/// (or `W · f + b` for a head whose `normalize` is false, see
/// [`ClipClassifier::head_normalize`]).
///
/// The weights are plain f32 tensors in host memory ([`ClipWeights`]); the forward here is the CPU
/// reference ([`crate::cpu`]). A GPU backend uploads the same [`ClipWeights`] and must agree with it.
#[derive(Clone, Debug)]
pub struct ClipClassifier {
    config: VitConfig,
    weights: ClipWeights,
    naming: Option<CheckpointNaming>,
    architecture: Option<Box<Architecture>>,
    head_normalize: bool,
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
            architecture: None,
            head_normalize: true,
        })
    }

    /// Attaches the resolved architecture the model was loaded with (and its naming).
    pub fn with_architecture(mut self, arch: Architecture) -> Self {
        self.naming = Some(arch.naming.clone());
        self.architecture = Some(Box::new(arch));
        self
    }

    /// Sets whether the head reads L2-normalised features (`true`, CLIP's convention and the
    /// default: `logits = W f/‖f‖ + b`) or the features as they are (`false`:
    /// `logits = W f + b`, a `ClassificationHead(normalize=False)`).
    pub fn with_head_normalize(mut self, normalize: bool) -> Self {
        self.head_normalize = normalize;
        self
    }

    /// Whether the head reads L2-normalised features (see
    /// [`ClipClassifier::with_head_normalize`]). Only the CPU forward of this type
    /// ([`ClipClassifier::forward_with`]) honours `false`; the blended, CUDA and multi-task
    /// paths apply heads to normalised features and refuse a model whose head is not.
    pub fn head_normalize(&self) -> bool {
        self.head_normalize
    }

    /// The architecture resolved when the model was loaded from a checkpoint (every field with
    /// its source); `None` when built in memory.
    pub fn architecture(&self) -> Option<&Architecture> {
        self.architecture.as_deref()
    }

    /// Loads tensors in either naming (detected), resolving the config from their shapes, their
    /// `dawin.vit.*` metadata and `opts` ([`crate::arch`]; no file beside them is read). The head
    /// is read from `head` when given (e.g. a separate zero-shot head file), else from
    /// `classification_head.weight` / `.bias` of `src`. Unused tensors under the vision prefix
    /// are an error unless `opts.ignore_unused`.
    pub fn from_source(
        src: &dyn TensorSource,
        head: Option<&dyn TensorSource>,
        opts: &LoadOptions,
    ) -> Result<Self> {
        let arch = resolve_source(src, head, opts)?;
        arch.check_unused(opts.ignore_unused)?;
        let config = arch.config()?;
        let weights = ClipWeights::load(src, head, &config, &arch.naming)?;
        let normalize = arch.head.as_ref().is_none_or(|h| h.normalize.value);
        Ok(ClipClassifier::new(config, weights)?
            .with_architecture(arch)
            .with_head_normalize(normalize))
    }

    /// Loads a checkpoint in any form [`crate::open_checkpoint`] reads (safetensors, PyTorch
    /// `.pt`/`.pth`/`.bin` of every kind, shard indexes, directories), memory-mapped, with the
    /// head from `head_file` when given (any form [`crate::load_head`] reads), the config files
    /// beside it read ([`crate::arch`]). Unused tensors under the vision prefix are an error
    /// unless `opts.ignore_unused`. The resolved architecture is kept
    /// ([`ClipClassifier::architecture`]); print its [`Architecture::warnings`].
    pub fn from_files(
        checkpoint: impl AsRef<Path>,
        head_file: Option<&Path>,
        opts: &LoadOptions,
    ) -> Result<Self> {
        let opened = crate::load::open_resolved(checkpoint.as_ref(), head_file, opts)?;
        Ok(opened.load(opts.ignore_unused)?.0)
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
            architecture: None,
            head_normalize: true,
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

    /// The weights, taken out of the classifier.
    pub fn into_weights(self) -> ClipWeights {
        self.weights
    }

    /// The naming of the checkpoint the model was loaded from (`None` when built in memory).
    pub fn naming(&self) -> Option<&CheckpointNaming> {
        self.naming.as_ref()
    }

    /// Logits `[batch, C]` of preprocessed images `[batch, 3, S, S]` (CPU, f32).
    ///
    /// The whole batch goes through each layer at once (working memory about
    /// `batch · T · (6W + M)` floats, ~100 MB for B/32 at batch 64).
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
        let (logits, feats) = if self.head_normalize {
            cpu::forward(images, batch, &self.config, &self.weights)?
        } else {
            // A head on the features as they are: logits = W f + b, features still reported
            // normalised.
            cpu::check_images(images, batch, &self.config)?;
            let mut feats = cpu::encode_images(images, batch, &self.config, &self.weights.visual);
            let mut logits = vec![0.0f32; batch * self.config.num_classes];
            cpu::linear(&feats, batch, &self.weights.head, &mut logits);
            cpu::l2_normalize_rows(&mut feats, self.config.embed_dim);
            (logits, feats)
        };
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

    /// Runs the model over a whole dataset in batches of `batch_size` (loading the next batch is
    /// not overlapped with the forward). Bad samples are an error naming the file, or with
    /// `skip_bad_files` are listed in [`DatasetPredictions::skipped`] while the rest is evaluated.
    /// Errors when the dataset's input size differs from the model's, a label is not a class
    /// index, or no sample could be loaded.
    pub fn predict_dataset(
        &self,
        dataset: &ImageDataset,
        batch_size: usize,
        skip_bad_files: bool,
        with_features: bool,
    ) -> Result<DatasetPredictions> {
        if batch_size == 0 {
            return Err(Error::arg("batch_size", "must be > 0"));
        }
        if dataset.image_size() != self.config.image_size {
            return Err(Error::Dataset {
                path: dataset.path().to_path_buf(),
                msg: format!(
                    "opened for {0}×{0} inputs, the model takes {1}×{1}",
                    dataset.image_size(),
                    self.config.image_size
                ),
            });
        }
        if let Some(labels) = dataset.labels() {
            let c = self.config.num_classes as i64;
            if let Some(i) = labels.iter().position(|&y| y < 0 || y >= c) {
                return Err(Error::Dataset {
                    path: dataset.path().to_path_buf(),
                    msg: format!(
                        "label {} of sample {i} is not a class of this {c}-class model",
                        labels[i]
                    ),
                });
            }
        }
        let mut out = DatasetPredictions {
            logits: Vec::new(),
            features: with_features.then(Vec::new),
            indices: Vec::new(),
            labels: dataset.labels().map(|_| Vec::new()),
            skipped: Vec::new(),
            num_classes: self.config.num_classes,
        };
        let mut start = 0;
        while start < dataset.len() {
            let end = (start + batch_size).min(dataset.len());
            let batch = dataset.load_batch(start..end, skip_bad_files)?;
            start = end;
            out.skipped.extend(batch.skipped);
            if batch.indices.is_empty() {
                continue;
            }
            let f = self.forward_with(&batch.images, batch.indices.len(), with_features)?;
            out.logits.extend(f.logits);
            if let (Some(all), Some(b)) = (out.features.as_mut(), f.features) {
                all.extend(b);
            }
            if let (Some(all), Some(b)) = (out.labels.as_mut(), batch.labels) {
                all.extend(b);
            }
            out.indices.extend(batch.indices);
        }
        if out.indices.is_empty() {
            return Err(Error::Dataset {
                path: dataset.path().to_path_buf(),
                msg: format!("none of its {} samples could be loaded", dataset.len()),
            });
        }
        Ok(out)
    }
}
