//! Zero-shot classification heads from class names (open_clip's `build_zero_shot_classifier`,
//! scaled as WiSE-FT's and task_vectors' zero-shot heads are).
//!
//! For class c and templates t = 1..T: `e_ct = f(fill(t, c)) / ‖f(fill(t, c))‖` with `f` the
//! text tower ([`ClipTextModel::encode`]); `m_c = (1/T) Σ_t e_ct`; the head's row c is
//! `W_c = exp(logit_scale) · m_c / ‖m_c‖`, its bias 0. With image features normalised, `W f` are
//! CLIP's zero-shot logits.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{Error, Result};
use crate::prompts::{check_template, fill};
use crate::tensors::TensorMap;
use crate::tokenizer::ClipTokenizer;
use crate::weights::Linear;

use super::model::ClipTextModel;

/// Metadata key of a head file: the class names, a JSON array.
pub const META_CLASSES: &str = "dawin.zeroshot.classes";
/// Metadata key: the templates, a JSON array.
pub const META_TEMPLATES: &str = "dawin.zeroshot.templates";
/// Metadata key: where the tokenizer's vocabulary came from, in words.
pub const META_TOKENIZER: &str = "dawin.zeroshot.tokenizer";
/// Metadata key: SHA-256 of the tokenizer's merges ([`ClipTokenizer::merges_fingerprint`]).
pub const META_TOKENIZER_SHA256: &str = "dawin.zeroshot.tokenizer_merges_sha256";
/// Metadata key: `logit_scale` (the head is scaled by its exponential).
pub const META_LOGIT_SCALE: &str = "dawin.zeroshot.logit_scale";
/// Metadata key: indices of the classes some of whose prompts were truncated, a JSON array.
pub const META_TRUNCATED: &str = "dawin.zeroshot.truncated_classes";

/// A zero-shot head and what it was built from.
#[derive(Clone, Debug, PartialEq)]
pub struct ZeroShotHead {
    /// `[C, E]`, row c = `exp(logit_scale) · m_c / ‖m_c‖` (module documentation).
    pub weight: Vec<f32>,
    /// E, the text tower's embedding size.
    pub embed_dim: usize,
    /// The class names, in class-index order.
    pub classes: Vec<String>,
    /// The templates, each with one `{}`.
    pub templates: Vec<String>,
    /// The checkpoint's `logit_scale`.
    pub logit_scale: f32,
    /// Where the tokenizer came from ([`crate::tokenizer::TokenizerSource`], in words).
    pub tokenizer: String,
    /// [`ClipTokenizer::merges_fingerprint`] of the tokenizer.
    pub tokenizer_fingerprint: String,
    /// Classes with at least one prompt longer than the context, truncated as open_clip does
    /// (the first `context − 1` ids, then the end token), ascending.
    pub truncated: Vec<usize>,
}

/// Prompts per forward batch (about).
const PROMPTS_PER_BATCH: usize = 1024;
/// Classes per chunk: the head's rows are finished (and progress reported) a chunk at a time.
const CLASSES_PER_CHUNK: usize = 64;

/// Builds the zero-shot head of `classes` × `templates` (module documentation).
/// `progress(done)` is called with the number of classes done after each chunk of classes.
///
/// Errors: no class, an empty class name, no template, a template without exactly one `{}`,
/// a model without `logit_scale` (naming the tensor), a tokenizer whose context length differs
/// from the model's.
pub fn zero_shot_head<C: AsRef<str>, T: AsRef<str>>(
    model: &ClipTextModel,
    tokenizer: &ClipTokenizer,
    classes: &[C],
    templates: &[T],
    progress: &mut dyn FnMut(usize),
) -> Result<ZeroShotHead> {
    if classes.is_empty() {
        return Err(Error::arg("classes", "no class name given"));
    }
    if let Some(i) = classes.iter().position(|c| c.as_ref().trim().is_empty()) {
        return Err(Error::arg(
            "classes",
            format!("class {i} has an empty name"),
        ));
    }
    if templates.is_empty() {
        return Err(Error::arg("templates", "no template given"));
    }
    for t in templates {
        check_template(t.as_ref()).map_err(|m| Error::arg("templates", m))?;
    }
    let logit_scale = model.logit_scale().ok_or_else(|| Error::MissingTensor {
        name: model.logit_scale_name(),
        source_name: model.source_name().to_string(),
    })?;
    let ctx = model.config().context_length;
    if tokenizer.context_length() != ctx {
        return Err(Error::arg(
            "tokenizer",
            format!(
                "context length {} differs from the text tower's {ctx} (positional embedding)",
                tokenizer.context_length()
            ),
        ));
    }
    let (c_n, t_n, e) = (classes.len(), templates.len(), model.config().embed_dim);
    let scale = (logit_scale as f64).exp();
    // Batches of about PROMPTS_PER_BATCH prompts: many classes with a few templates each, so
    // that the forward computes each template's beginning once for all of them.
    let per_chunk = CLASSES_PER_CHUNK.min(c_n);
    let templates_per_batch = (PROMPTS_PER_BATCH / per_chunk).clamp(1, t_n);
    let mut weight = vec![0.0f32; c_n * e];
    let mut truncated = std::collections::BTreeSet::new();
    for start in (0..c_n).step_by(per_chunk) {
        let chunk = &classes[start..(start + per_chunk).min(c_n)];
        let mut sums = vec![0.0f64; chunk.len() * e];
        for tb in templates.chunks(templates_per_batch) {
            let prompts: Vec<String> = chunk
                .iter()
                .flat_map(|c| tb.iter().map(move |t| fill(t.as_ref(), c.as_ref())))
                .collect();
            let tokens = tokenizer.tokenize_batch(&prompts);
            truncated.extend(tokens.truncated.iter().map(|&r| start + r / tb.len()));
            let feats = model.encode(&tokens)?;
            for (r, f) in feats.chunks(e).enumerate() {
                let norm = f.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
                let m = &mut sums[(r / tb.len()) * e..(r / tb.len() + 1) * e];
                m.iter_mut()
                    .zip(f)
                    .for_each(|(m, &v)| *m += v as f64 / norm);
            }
        }
        for (k, m) in sums.chunks(e).enumerate() {
            let norm = m.iter().map(|v| v * v).sum::<f64>().sqrt();
            let row = &mut weight[(start + k) * e..(start + k + 1) * e];
            row.iter_mut()
                .zip(m)
                .for_each(|(w, &v)| *w = (scale * v / norm) as f32);
        }
        progress(start + chunk.len());
    }
    if let Some(c) = weight
        .chunks(e)
        .position(|r| r.iter().any(|v| !v.is_finite()))
    {
        return Err(Error::arg(
            "classes",
            format!("the text tower gave a non-finite embedding for class {c} (weights overflow?)"),
        ));
    }
    Ok(ZeroShotHead {
        weight,
        embed_dim: e,
        classes: classes.iter().map(|c| c.as_ref().to_string()).collect(),
        templates: templates.iter().map(|t| t.as_ref().to_string()).collect(),
        logit_scale,
        tokenizer: tokenizer.source().to_string(),
        tokenizer_fingerprint: tokenizer.merges_fingerprint().to_string(),
        truncated: truncated.into_iter().collect(),
    })
}

impl ZeroShotHead {
    /// Number of classes C.
    pub fn num_classes(&self) -> usize {
        self.classes.len()
    }

    /// The head as a linear map `[C, E]` with a zero bias.
    pub fn linear(&self) -> Linear {
        Linear {
            weight: self.weight.clone(),
            bias: Some(vec![0.0; self.num_classes()]),
            out_dim: self.num_classes(),
            in_dim: self.embed_dim,
        }
    }

    /// What the head was built from, as safetensors metadata (the `META_*` keys).
    pub fn metadata(&self) -> BTreeMap<String, String> {
        let json = |v: &[String]| serde_json::to_string(v).expect("strings serialise");
        BTreeMap::from([
            (META_CLASSES.to_string(), json(&self.classes)),
            (META_TEMPLATES.to_string(), json(&self.templates)),
            (META_TOKENIZER.to_string(), self.tokenizer.clone()),
            (
                META_TOKENIZER_SHA256.to_string(),
                self.tokenizer_fingerprint.clone(),
            ),
            (META_LOGIT_SCALE.to_string(), self.logit_scale.to_string()),
            (
                META_TRUNCATED.to_string(),
                serde_json::to_string(&self.truncated).expect("indices serialise"),
            ),
        ])
    }

    /// `classification_head.weight` `[C, E]` and `.bias` `[C]` (zeros) in memory: a head source
    /// for [`crate::ClipClassifier::from_source`].
    pub fn tensor_map(&self) -> TensorMap {
        let mut m = TensorMap::new();
        let c = self.num_classes();
        m.insert(
            "classification_head.weight",
            vec![c, self.embed_dim],
            self.weight.clone(),
        )
        .expect("weight is [C, E]");
        m.insert("classification_head.bias", vec![c], vec![0.0; c])
            .expect("bias is [C]");
        m.set_source_name("<zero-shot head>");
        m
    }

    /// Writes `classification_head.weight` / `.bias` (f32) with [`ZeroShotHead::metadata`] and
    /// `extra` metadata (e.g. the checkpoint's fingerprint) to `path`, atomically (a temporary
    /// file renamed into place).
    pub fn write(&self, path: &Path, extra: &BTreeMap<String, String>) -> Result<()> {
        use dawin_core::{write_safetensors, OwnedTensor};
        let c = self.num_classes();
        let mut meta: std::collections::HashMap<String, String> =
            self.metadata().into_iter().collect();
        meta.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
        write_safetensors(
            path,
            &[
                OwnedTensor::from_f32(
                    "classification_head.weight",
                    vec![c, self.embed_dim],
                    &self.weight,
                ),
                OwnedTensor::from_f32("classification_head.bias", vec![c], &vec![0.0f32; c]),
            ],
            Some(meta),
        )?;
        Ok(())
    }
}
