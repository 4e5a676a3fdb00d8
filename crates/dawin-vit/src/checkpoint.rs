//! Opening checkpoints in every form ([`open_checkpoint`]): one file — safetensors, or a PyTorch
//! `.pt`/`.pth`/`.bin`/`.pkl` in any form `dawin_core::torch::TorchCheckpoint` reads (zip or legacy
//! `torch.save`, `pickle.dump` with legacy storages, whole pickled modules, TorchScript) — a
//! Hugging Face shard index of either (`model.safetensors.index.json`,
//! `pytorch_model.bin.index.json`), or a directory holding one of them; all memory-mapped and
//! read one tensor at a time through [`TensorSource`]. Also: a Hugging Face vision tower
//! completed with its base's projection ([`complete_vision_tower`]), and image encoders read
//! parameter by parameter as [`dawin_core::merge::ParamSource`]s ([`CheckpointEncoder`]
//! memory-mapped, [`ClipClassifier`] in memory), so that a merge of M checkpoints is one pass
//! over them.
//!
//! ```
//! use dawin_core::merge::{relative_distance, ParamSource};
//! use dawin_vit::{ClipClassifier, ClipWeights, VitConfig};
//!
//! let cfg = VitConfig { image_size: 8, patch_size: 4, width: 16, layers: 1, heads: 2,
//!                       mlp_dim: 32, embed_dim: 8, num_classes: 3, layer_norm_eps: 1e-5,
//!                       activation: Default::default(), layer_scale: false };
//! let base = ClipClassifier::new(cfg.clone(), ClipWeights::random(&cfg, 0)?)?;
//! let other = ClipClassifier::new(cfg.clone(), ClipWeights::random(&cfg, 1)?)?;
//! // The encoder's parameters (the head excluded), and ‖θ − θ0‖/‖θ0‖ over them.
//! assert_eq!(other.param_count(), base.weights().encoder_params().len());
//! let d = relative_distance(&base.weights().encoder_params(), &other)?;
//! assert!(d > 1.0); // unrelated weight sets lie about √2 apart
//! # Ok::<(), dawin_vit::Error>(())
//! ```

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use dawin_core::merge::ParamSource;
use dawin_core::torch::{Attr, TorchFormat};
use dawin_core::DType;

use crate::error::{Error, Result};
use crate::tensors::{TensorMap, TensorSource};
use crate::weights::{CheckpointNaming, ClipWeights, Linear, ParamSpec};
use crate::{ClipClassifier, VitConfig};

/// An error about a file: missing (`no such file`) or unusable (`msg`), its path first.
fn bad_file(path: impl Into<PathBuf>, kind: std::io::ErrorKind, msg: impl Into<String>) -> Error {
    Error::Io {
        path: path.into(),
        source: std::io::Error::new(kind, msg.into()),
    }
}

fn invalid(path: impl Into<PathBuf>, msg: impl Into<String>) -> Error {
    bad_file(path, std::io::ErrorKind::InvalidData, msg)
}

fn missing(path: impl Into<PathBuf>, msg: impl Into<String>) -> Error {
    bad_file(path, std::io::ErrorKind::NotFound, msg)
}

/// A checkpoint in any form, memory-mapped: one file ([`dawin_core::CheckpointFile`]:
/// safetensors or PyTorch), or the shards of a Hugging Face shard index (each one such file);
/// plus tensors added in memory (the base's projection completing a vision tower). This is the
/// checkpoint type every loader of the workspace takes; it reads tensors through
/// [`dawin_core::TensorSource`] (one at a time, converted to f32 when asked for).
pub struct Checkpoint {
    shards: Vec<dawin_core::CheckpointFile>,
    /// Tensor name → index in `shards` (sharded checkpoints only).
    index: Option<BTreeMap<String, usize>>,
    extra: TensorMap,
    name: String,
    path: PathBuf,
    format: String,
}

impl std::fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpoint")
            .field("path", &self.path)
            .field("format", &self.format)
            .field("shards", &self.shards.len())
            .finish()
    }
}

impl Checkpoint {
    fn single(path: &Path) -> Result<Checkpoint> {
        let ck = dawin_core::CheckpointFile::open(path)?;
        Ok(Checkpoint {
            format: ck.format_name().to_string(),
            shards: vec![ck],
            index: None,
            extra: TensorMap::new(),
            name: path.display().to_string(),
            path: path.to_path_buf(),
        })
    }

    /// The tensors.
    pub fn source(&self) -> &dyn TensorSource {
        self
    }

    /// The file (or shard index) it was opened from; a directory resolves to the file in it.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The layout in words: `safetensors`, `torch.save (zip)`, `torch.save (legacy)`,
    /// `pickle.dump (legacy storages)`, `TorchScript`, or `shard index of N … shards`.
    pub fn format_name(&self) -> &str {
        &self.format
    }

    /// Whether this is PyTorch's layout of the given kind (for a single file).
    pub fn torch_format(&self) -> Option<TorchFormat> {
        match (&self.index, self.shards.first()) {
            (None, Some(dawin_core::CheckpointFile::Torch(t))) => Some(t.format()),
            _ => None,
        }
    }

    /// A plain value pickled in a PyTorch checkpoint, by dotted path (e.g. a head's
    /// `normalize`); `None` for safetensors.
    pub fn attribute(&self, dotted: &str) -> Option<Attr> {
        self.shards.iter().find_map(|s| match s {
            dawin_core::CheckpointFile::Torch(t) => t.attribute(dotted).cloned(),
            dawin_core::CheckpointFile::Safetensors(_) => None,
        })
    }

    fn shard_of(&self, name: &str) -> Option<&dawin_core::CheckpointFile> {
        match &self.index {
            None => self.shards.first(),
            Some(ix) => ix.get(name).map(|&i| &self.shards[i]),
        }
    }

    fn missing_tensor(&self, name: &str) -> dawin_core::Error {
        dawin_core::Error::MissingTensor {
            path: self.name.clone().into(),
            name: name.to_string(),
        }
    }
}

impl TensorSource for Checkpoint {
    fn source_name(&self) -> String {
        self.name.clone()
    }
    fn tensor_names(&self) -> Vec<&str> {
        let mut names = self.extra.tensor_names();
        match &self.index {
            None => names.extend(self.shards.iter().flat_map(|s| s.tensor_names())),
            Some(ix) => names.extend(ix.keys().map(String::as_str)),
        }
        names
    }
    fn tensor_meta(&self, name: &str) -> dawin_core::Result<(DType, Vec<usize>)> {
        if self.extra.get(name).is_some() {
            return self.extra.tensor_meta(name);
        }
        match self.shard_of(name) {
            Some(s) => s.tensor_meta(name),
            None => Err(self.missing_tensor(name)),
        }
    }
    fn tensor_bytes(&self, name: &str) -> dawin_core::Result<Cow<'_, [u8]>> {
        if self.extra.get(name).is_some() {
            return self.extra.tensor_bytes(name);
        }
        match self.shard_of(name) {
            Some(s) => s.tensor_bytes(name),
            None => Err(self.missing_tensor(name)),
        }
    }
    fn tensor_f32(&self, name: &str) -> dawin_core::Result<Vec<f32>> {
        if self.extra.get(name).is_some() {
            return self.extra.tensor_f32(name);
        }
        match self.shard_of(name) {
            Some(s) => s.tensor_f32(name),
            None => Err(self.missing_tensor(name)),
        }
    }
    fn tensor_shape(&self, name: &str) -> Option<Vec<usize>> {
        if let Some(s) = self.extra.tensor_shape(name) {
            return Some(s);
        }
        self.shard_of(name)?.tensor_shape(name)
    }
    fn metadata_value(&self, key: &str) -> Option<String> {
        self.extra
            .metadata_value(key)
            .or_else(|| self.shards.iter().find_map(|s| s.metadata_value(key)))
    }
}

/// The files a directory may hold a checkpoint in, in the order they are looked for: Hugging
/// Face's (shard indexes first), then open_clip's Hugging Face repositories'.
pub const DIRECTORY_FILES: &[&str] = &[
    "model.safetensors.index.json",
    "model.safetensors",
    "pytorch_model.bin.index.json",
    "pytorch_model.bin",
    "open_clip_model.safetensors",
    "open_clip_pytorch_model.bin",
];

/// Extensions of checkpoint files, for a directory holding exactly one.
const CHECKPOINT_EXTENSIONS: &[&str] = &["safetensors", "pt", "pth", "bin", "pkl", "ckpt"];

/// Opens a checkpoint (memory-mapped, nothing read yet):
///
/// * a file: safetensors, or a PyTorch file in any form `dawin_core::torch::TorchCheckpoint` reads
///   (told apart by its first bytes, not its extension);
/// * a Hugging Face shard index (`*.index.json`: `{"weight_map": {tensor: shard file}}`, shards
///   next to it, each safetensors or PyTorch);
/// * a directory holding one of [`DIRECTORY_FILES`] (the first found), else exactly one file
///   with a checkpoint extension (`.safetensors`, `.pt`, `.pth`, `.bin`, `.pkl`, `.ckpt`).
///
/// Errors name the file: missing, unreadable, not a checkpoint, an index lacking `weight_map`,
/// a shard lacking a tensor the index lists, a directory with none or several candidates.
pub fn open_checkpoint(path: &Path) -> Result<Checkpoint> {
    if path.is_dir() {
        for f in DIRECTORY_FILES {
            let p = path.join(f);
            if p.is_file() {
                return open_checkpoint(&p);
            }
        }
        let mut found: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| Error::Io {
                path: path.to_path_buf(),
                source: e,
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_file()
                    && p.extension()
                        .and_then(|e| e.to_str())
                        .is_some_and(|e| CHECKPOINT_EXTENSIONS.contains(&e))
            })
            .collect();
        found.sort();
        return match found.as_slice() {
            [one] => open_checkpoint(one),
            [] => Err(missing(
                path,
                format!(
                    "is a directory without a checkpoint: none of {} nor any .safetensors, .pt,                      .pth, .bin, .pkl or .ckpt file",
                    DIRECTORY_FILES.join(", ")
                ),
            )),
            many => Err(invalid(
                path,
                format!(
                    "is a directory with {} checkpoint files ({}): name one of them",
                    many.len(),
                    many.iter()
                        .map(|p| p.file_name().unwrap_or_default().to_string_lossy().into_owned())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        };
    }
    if !path.exists() {
        return Err(missing(path, "no such file"));
    }
    if path.extension().is_some_and(|e| e == "json") {
        return open_sharded(path);
    }
    Checkpoint::single(path)
}

/// A shard index: every shard it names is opened and checked to hold the tensors placed in it.
fn open_sharded(index: &Path) -> Result<Checkpoint> {
    let what = || index.display().to_string();
    let text = std::fs::read_to_string(index).map_err(|e| Error::Io {
        path: index.to_path_buf(),
        source: e,
    })?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| invalid(index, format!("is not JSON: {e}")))?;
    let map = json
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| invalid(index, "has no `weight_map` object"))?;
    let mut by_shard: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (tensor, file) in map {
        let file = file
            .as_str()
            .ok_or_else(|| invalid(index, format!("`weight_map.{tensor}` is not a file name")))?;
        by_shard
            .entry(file.to_string())
            .or_default()
            .push(tensor.clone());
    }
    if by_shard.is_empty() {
        return Err(invalid(index, "lists no tensor"));
    }
    let dir = index.parent().unwrap_or(Path::new("."));
    let mut shards = Vec::new();
    let mut ix = BTreeMap::new();
    let mut formats = std::collections::BTreeSet::new();
    for (file, tensors) in &by_shard {
        let p = dir.join(file);
        if !p.exists() {
            return Err(missing(
                &p,
                format!("no such file (a shard listed by {})", what()),
            ));
        }
        let sd = dawin_core::CheckpointFile::open(&p)?;
        formats.insert(sd.format_name());
        let names: HashSet<&str> = sd.tensor_names().into_iter().collect();
        for t in tensors {
            if !names.contains(t.as_str()) {
                return Err(invalid(
                    &p,
                    format!("lacks tensor `{t}`, which {} places in it", what()),
                ));
            }
            ix.insert(t.clone(), shards.len());
        }
        drop(names);
        shards.push(sd);
    }
    Ok(Checkpoint {
        format: format!(
            "shard index of {} {} shard(s)",
            shards.len(),
            formats.into_iter().collect::<Vec<_>>().join(" + ")
        ),
        shards,
        index: Some(ix),
        extra: TensorMap::new(),
        name: what(),
        path: index.to_path_buf(),
    })
}

/// A Hugging Face `CLIPVisionModel` checkpoint has the vision tower but no
/// `visual_projection.weight`: it is taken from `base` (in the checkpoint's naming) and added in
/// memory; the rest stays memory-mapped. Returns the checkpoint and whether it was completed.
pub fn complete_vision_tower(
    mut ck: Checkpoint,
    base: &ClipClassifier,
) -> Result<(Checkpoint, bool)> {
    let naming = CheckpointNaming::detect(&ck)?;
    let CheckpointNaming::HuggingFace { root } = &naming else {
        return Ok((ck, false));
    };
    let proj = format!("{root}visual_projection.weight");
    if ck.tensor_shape(&proj).is_some() {
        return Ok((ck, false));
    }
    let w = &base.weights().visual.proj;
    ck.extra
        .insert(proj, vec![w.out_dim, w.in_dim], w.weight.clone())?;
    Ok((ck, true))
}

/// The image encoder's embedding width E of a checkpoint: `visual.proj` `[W, E]` (OpenAI
/// naming) or `visual_projection.weight` `[E, W]` (Hugging Face); `None` when it has neither.
pub fn embed_width(src: &dyn TensorSource) -> Option<usize> {
    let names = src.tensor_names();
    if let Some(n) = names
        .iter()
        .find(|n| **n == "visual.proj" || n.ends_with(".visual.proj"))
    {
        return src.tensor_shape(n).and_then(|s| s.get(1).copied());
    }
    let n = names
        .iter()
        .find(|n| n.ends_with("visual_projection.weight"))?;
    src.tensor_shape(n).and_then(|s| s.first().copied())
}

/// The OpenAI naming `visual.…`, for names of models built in memory.
fn openai() -> CheckpointNaming {
    CheckpointNaming::OpenAi {
        prefix: "visual.".into(),
    }
}

/// The image encoder of a classifier in memory, as a parameter source: [`ClipWeights::encoder_params`]
/// borrowed, named after the checkpoint tensors they come from (OpenAI naming when built in
/// memory). The head is not a parameter: merges of encoders never touch it.
impl ParamSource for ClipClassifier {
    type Error = Error;
    fn param_count(&self) -> usize {
        self.weights().encoder_params().len()
    }
    fn param_name(&self, i: usize) -> String {
        let naming = self.naming().cloned().unwrap_or_else(openai);
        ClipWeights::encoder_specs(self.config(), &naming)
            .get(i)
            .map_or_else(
                || format!("#{i}"),
                |s| s.names().collect::<Vec<_>>().join(" + "),
            )
    }
    fn param_len(&self, i: usize) -> usize {
        self.weights()
            .encoder_params()
            .get(i)
            .map_or(0, |p| p.len())
    }
    fn param(&self, i: usize) -> Result<Cow<'_, [f32]>> {
        self.weights()
            .encoder_params()
            .get(i)
            .map(|s| Cow::Borrowed(*s))
            .ok_or_else(|| Error::arg("param", format!("#{i} is not an encoder parameter")))
    }
}

/// A fine-tuned image encoder in a memory-mapped [`Checkpoint`], checked against the base's
/// architecture when opened (shapes only, no value read) and read parameter by parameter (a
/// [`ParamSource`] in the order of [`ClipWeights::encoder_specs`]). Its own head is ignored.
pub struct CheckpointEncoder {
    checkpoint: Checkpoint,
    specs: Vec<ParamSpec>,
    config: VitConfig,
    /// The base's head, so that a whole model loads as a classifier.
    head: TensorMap,
}

impl CheckpointEncoder {
    /// Opens `checkpoint` as an encoder of architecture `config` (the base's); `head` is any
    /// head of width `config.embed_dim` (used only by [`CheckpointEncoder::classifier`]). Errors
    /// name the tensor that is missing or misshapen.
    pub fn new(checkpoint: Checkpoint, config: VitConfig, head: &Linear) -> Result<Self> {
        let naming = CheckpointNaming::detect(&checkpoint)?;
        let specs = ClipWeights::encoder_specs(&config, &naming);
        for s in &specs {
            s.check(&checkpoint)?;
        }
        let mut h = TensorMap::new();
        h.insert(
            "classification_head.weight",
            vec![head.out_dim, head.in_dim],
            head.weight.clone(),
        )?;
        let bias = head.bias.clone().unwrap_or_else(|| vec![0.0; head.out_dim]);
        h.insert("classification_head.bias", vec![head.out_dim], bias)?;
        Ok(CheckpointEncoder {
            checkpoint,
            specs,
            config,
            head: h,
        })
    }

    /// The checkpoint.
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    /// The architecture (the base's).
    pub fn config(&self) -> &VitConfig {
        &self.config
    }

    /// The whole model read into memory, with the head given to [`CheckpointEncoder::new`]
    /// (always [`Cow::Owned`]; a `Cow` so that it reads like a borrowed in-memory model).
    pub fn classifier(&self) -> Result<Cow<'_, ClipClassifier>> {
        Ok(Cow::Owned(ClipClassifier::from_source_with_config(
            &self.checkpoint,
            Some(&self.head),
            self.config.clone(),
        )?))
    }
}

impl ParamSource for CheckpointEncoder {
    type Error = Error;
    fn param_count(&self) -> usize {
        self.specs.len()
    }
    fn param_name(&self, i: usize) -> String {
        self.specs.get(i).map_or_else(
            || format!("#{i}"),
            |s| s.names().collect::<Vec<_>>().join(" + "),
        )
    }
    fn param_len(&self, i: usize) -> usize {
        self.specs[i].len()
    }
    fn param(&self, i: usize) -> Result<Cow<'_, [f32]>> {
        let spec = self
            .specs
            .get(i)
            .ok_or_else(|| Error::arg("param", format!("#{i} is not an encoder parameter")))?;
        Ok(Cow::Owned(spec.load(&self.checkpoint)?))
    }
}
