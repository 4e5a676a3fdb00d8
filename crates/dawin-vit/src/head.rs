//! Classification heads read from files, in every form researchers hold them.
//!
//! A head is `logits = W g + b` with `W` `[C, E]`, `b` `[C]` (optional), and `g` the image
//! embedding `f` either L2-normalised (`normalize = true`: `g = f/‖f‖`, what CLIP's zero-shot
//! heads and the `ClassificationHead` of WiSE-FT / task_vectors do) or as it is
//! (`normalize = false`: `g = f`). Forms read by [`load_head`]:
//!
//! | form | tensors | `normalize` |
//! |---|---|---|
//! | pickled `ClassificationHead` module (`head_<Task>.pt`, task_vectors) | `weight`, `bias` | its `normalize` attribute |
//! | a state dict or safetensors with the head alone | `weight`, `bias` | `dawin.head.normalize` metadata, else default `true` |
//! | a whole model (DaWin, WiSE-FT pickle, a `dawin convert` output) | `…classification_head.weight` / `.bias` | the pickled head's attribute, the metadata, else default `true` |
//!
//! The default `normalize = true` is CLIP's convention and what every head of the paper's
//! pipelines uses; the source of the value is always recorded ([`ClassificationHead::normalize`]).

use std::path::{Path, PathBuf};

use dawin_core::torch::Attr;

use crate::arch::{Resolved, Source, SourceKind};
use crate::checkpoint::{open_checkpoint, Checkpoint};
use crate::error::{Error, Result};
use crate::tensors::{TensorMap, TensorSource};
use crate::weights::Linear;

/// Safetensors metadata key recording a head's `normalize` flag (`true` / `false`).
pub const NORMALIZE_METADATA_KEY: &str = "dawin.head.normalize";

/// A classification head and where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassificationHead {
    /// `W` `[C, E]` and `b` `[C]`.
    pub linear: Linear,
    /// Whether the embedding is L2-normalised before the head (`g = f/‖f‖`), with its source.
    pub normalize: Resolved<bool>,
    /// The file (or checkpoint) it was read from.
    pub source_name: String,
    /// The name of the weight tensor in that file (`weight`, `classification_head.weight`, …).
    pub weight_name: String,
}

impl ClassificationHead {
    /// Number of classes `C`.
    pub fn num_classes(&self) -> usize {
        self.linear.out_dim
    }

    /// Width `E` of the embedding it reads.
    pub fn in_dim(&self) -> usize {
        self.linear.in_dim
    }

    /// The head as in-memory tensors `classification_head.weight` / `.bias` (a zero bias when
    /// it has none), with its `normalize` flag as [`NORMALIZE_METADATA_KEY`] metadata.
    pub fn to_tensor_map(&self) -> Result<TensorMap> {
        let l = &self.linear;
        let mut m = TensorMap::new();
        m.insert(
            "classification_head.weight",
            vec![l.out_dim, l.in_dim],
            l.weight.clone(),
        )?;
        let b = l.bias.clone().unwrap_or_else(|| vec![0.0; l.out_dim]);
        m.insert("classification_head.bias", vec![l.out_dim], b)?;
        m.set_metadata(NORMALIZE_METADATA_KEY, self.normalize.value.to_string());
        m.set_source_name(self.source_name.clone());
        Ok(m)
    }
}

/// Where a head's tensors are in `src`: `…classification_head.weight` (the shortest such name,
/// i.e. the top level first), else a top-level `weight` with a 2-D shape (a head alone). Returns
/// the weight's and the bias's names.
pub(crate) fn head_tensor_names(src: &dyn TensorSource) -> Option<(String, String)> {
    const W: &str = "classification_head.weight";
    let names = src.tensor_names();
    if let Some(found) = names
        .iter()
        .filter(|n| **n == W || n.ends_with(&format!(".{W}")))
        .min_by_key(|n| n.len())
    {
        let root = &found[..found.len() - W.len()];
        return Some((found.to_string(), format!("{root}classification_head.bias")));
    }
    names
        .contains(&"weight")
        .then(|| ("weight".to_string(), "bias".to_string()))
}

/// The `normalize` flag of the head whose weight is `weight_name` in `ck`: the pickled module's
/// attribute (`normalize`, `classification_head.normalize`, …), else the
/// [`NORMALIZE_METADATA_KEY`] metadata, else the default `true`.
pub(crate) fn head_normalize(ck: &Checkpoint, weight_name: &str) -> Result<Resolved<bool>> {
    let module = weight_name.strip_suffix("weight").unwrap_or("");
    let attr = format!("{module}normalize");
    if let Some(a) = ck.attribute(&attr) {
        return match a {
            Attr::Bool(b) => Ok(Resolved::new(
                b,
                Source::new(
                    SourceKind::Checkpoint,
                    format!("attribute `{attr}` = {b} of the pickled head"),
                ),
            )),
            other => Err(Error::Config(format!(
                "{}: the head's attribute `{attr}` is {other:?}, not a bool",
                ck.source_name()
            ))),
        };
    }
    if let Some(v) = ck.metadata_value(NORMALIZE_METADATA_KEY) {
        let b = match v.trim() {
            "true" | "True" | "1" => true,
            "false" | "False" | "0" => false,
            _ => {
                return Err(Error::Config(format!(
                    "{}: metadata `{NORMALIZE_METADATA_KEY}` = {v:?} is not true or false",
                    ck.source_name()
                )))
            }
        };
        return Ok(Resolved::new(
            b,
            Source::new(
                SourceKind::Metadata,
                format!("`{NORMALIZE_METADATA_KEY}` = {b}"),
            ),
        ));
    }
    Ok(Resolved::new(
        true,
        Source::new(
            SourceKind::Default,
            "CLIP's convention: features L2-normalised before the head",
        ),
    ))
}

/// Reads the head whose weight is `weight_name` (bias `bias_name`, optional) from `ck`. Errors
/// name the file and the tensor: a weight that is not `[C, E]`, a bias that is not `[C]`.
pub(crate) fn read_head_tensors(
    ck: &Checkpoint,
    weight_name: &str,
    bias_name: &str,
) -> Result<ClassificationHead> {
    let path = ck.source_name();
    let ws = ck
        .tensor_shape(weight_name)
        .ok_or_else(|| Error::MissingTensor {
            name: weight_name.to_string(),
            source_name: path.clone(),
        })?;
    if ws.len() != 2 || ws.contains(&0) {
        return Err(Error::TensorShape {
            name: weight_name.to_string(),
            source_name: path,
            got: ws,
            expected: "[classes, embedding width]".into(),
        });
    }
    let (c, e) = (ws[0], ws[1]);
    let bias = match ck.tensor_shape(bias_name) {
        Some(bs) if bs != [c] => {
            return Err(Error::TensorShape {
                name: bias_name.to_string(),
                source_name: path,
                got: bs,
                expected: format!("[{c}]"),
            })
        }
        Some(_) => Some(ck.tensor_f32(bias_name)?),
        None => None,
    };
    Ok(ClassificationHead {
        linear: Linear {
            weight: ck.tensor_f32(weight_name)?,
            bias,
            out_dim: c,
            in_dim: e,
        },
        normalize: head_normalize(ck, weight_name)?,
        source_name: path,
        weight_name: weight_name.to_string(),
    })
}

/// Loads a classification head from a file of any form [`open_checkpoint`] reads: a pickled
/// `ClassificationHead` module, a state dict (`.pt`/`.bin`) or safetensors holding
/// `weight`/`bias` or `classification_head.weight`/`.bias` (at the top level or under a prefix,
/// e.g. a whole fine-tuned model). Errors name the file and the tensor: missing, a file with no
/// head weight, a weight that is not `[C, E]`, a bias that is not `[C]`.
pub fn load_head(path: &Path) -> Result<ClassificationHead> {
    let ck = open_checkpoint(path)?;
    let (w, b) = head_tensor_names(&ck).ok_or_else(|| Error::Io {
        path: PathBuf::from(ck.source_name()),
        source: std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "is not a classification head: no tensor `classification_head.weight` (nor \
                 `weight`) among its {} tensors",
                ck.tensor_names().len()
            ),
        ),
    })?;
    read_head_tensors(&ck, &w, &b)
}
