//! Where weights come from: anything that lists named tensors and hands them out as f32.
//!
//! The trait is dawin-core's [`TensorSource`] (re-exported here), the one tensor-source
//! abstraction of the workspace: it is implemented by safetensors files and PyTorch files
//! (`dawin_core::StateDict`, `dawin_core::torch::TorchCheckpoint`, `dawin_core::CheckpointFile`), by the
//! shard indexes and directories of [`crate::Checkpoint`], and here by [`TensorMap`] (tensors
//! held in memory, e.g. a merged state dict).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

pub use dawin_core::TensorSource;

use crate::error::{Error, Result};

/// Safetensors metadata key giving the number of attention heads (the width is not always 64 × heads).
pub const HEADS_METADATA_KEY: &str = "dawin.vit.heads";

/// A dense f32 tensor: row-major `data` of `shape`.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// Row-major values; `data.len()` is the product of `shape`.
    pub data: Vec<f32>,
}

impl Tensor {
    /// A tensor of `shape` holding `data`. Errors when the lengths disagree.
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Result<Self> {
        let n: usize = shape.iter().product();
        if n != data.len() {
            return Err(Error::arg(
                "data",
                format!("{} values for shape {shape:?} ({n} expected)", data.len()),
            ));
        }
        Ok(Tensor { shape, data })
    }
}

/// Named f32 tensors held in memory, with optional safetensors-style metadata.
///
/// Use it to build a model from tensors that are not in a file, e.g. a merged state dict.
#[derive(Clone, Debug, Default)]
pub struct TensorMap {
    tensors: BTreeMap<String, Tensor>,
    metadata: HashMap<String, String>,
    name: Option<String>,
}

impl TensorMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Inserts (or replaces) tensor `name`. Errors when `data.len()` is not the product of `shape`.
    pub fn insert(
        &mut self,
        name: impl Into<String>,
        shape: Vec<usize>,
        data: Vec<f32>,
    ) -> Result<()> {
        self.tensors.insert(name.into(), Tensor::new(shape, data)?);
        Ok(())
    }

    /// Removes tensor `name`, returning it.
    pub fn remove(&mut self, name: &str) -> Option<Tensor> {
        self.tensors.remove(name)
    }

    /// The tensor `name`.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.tensors.get(name)
    }

    /// Sets a metadata value (e.g. [`HEADS_METADATA_KEY`]).
    pub fn set_metadata(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.metadata.insert(key.into(), value.into());
    }

    /// Sets the name errors use for this map (default `<memory>`).
    pub fn set_source_name(&mut self, name: impl Into<String>) {
        self.name = Some(name.into());
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// True when the map holds no tensor.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// Iterates over `(name, tensor)` in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.tensors.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Copies every tensor of `src` that converts to f32, and the architecture metadata
    /// (`dawin.vit.*`), into a new map.
    pub fn from_source(src: &dyn TensorSource) -> Self {
        let mut map = TensorMap::new();
        for name in src.tensor_names() {
            if let (Some(shape), Ok(data)) = (src.tensor_shape(name), src.tensor_f32(name)) {
                map.tensors.insert(name.to_string(), Tensor { shape, data });
            }
        }
        for key in crate::arch::METADATA_KEYS {
            if let Some(v) = src.metadata_value(key) {
                map.set_metadata(*key, v);
            }
        }
        map.name = Some(src.source_name());
        map
    }
}

impl TensorSource for TensorMap {
    fn source_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| "<memory>".to_string())
    }
    fn tensor_names(&self) -> Vec<&str> {
        self.tensors.keys().map(String::as_str).collect()
    }
    fn tensor_meta(&self, name: &str) -> dawin_core::Result<(dawin_core::DType, Vec<usize>)> {
        self.tensors
            .get(name)
            .map(|t| (dawin_core::DType::F32, t.shape.clone()))
            .ok_or_else(|| self.missing(name))
    }
    fn tensor_bytes(&self, name: &str) -> dawin_core::Result<Cow<'_, [u8]>> {
        let t = self.tensors.get(name).ok_or_else(|| self.missing(name))?;
        Ok(Cow::Owned(
            t.data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ))
    }
    fn tensor_f32(&self, name: &str) -> dawin_core::Result<Vec<f32>> {
        self.tensors
            .get(name)
            .map(|t| t.data.clone())
            .ok_or_else(|| self.missing(name))
    }
    fn tensor_shape(&self, name: &str) -> Option<Vec<usize>> {
        self.tensors.get(name).map(|t| t.shape.clone())
    }
    fn metadata_value(&self, key: &str) -> Option<String> {
        self.metadata.get(key).cloned()
    }
}

impl TensorMap {
    fn missing(&self, name: &str) -> dawin_core::Error {
        dawin_core::Error::MissingTensor {
            path: self.source_name().into(),
            name: name.to_string(),
        }
    }
}

/// Fetches tensor `name` from `src`, checking its shape against `expected` (exact match).
pub(crate) fn fetch(src: &dyn TensorSource, name: &str, expected: &[usize]) -> Result<Vec<f32>> {
    let shape = shape_of(src, name)?;
    if shape != expected {
        return Err(Error::TensorShape {
            name: name.to_string(),
            source_name: src.source_name(),
            got: shape,
            expected: format!("{expected:?}"),
        });
    }
    let data = src.tensor_f32(name)?;
    if data.len() != expected.iter().product::<usize>() {
        return Err(Error::TensorShape {
            name: name.to_string(),
            source_name: src.source_name(),
            got: shape,
            expected: format!("{expected:?} ({} values read)", data.len()),
        });
    }
    Ok(data)
}

/// Shape of tensor `name`; a tensor that is absent is a `MissingTensor` error, one the source
/// cannot read is the source's own error (e.g. an unsupported dtype).
pub(crate) fn shape_of(src: &dyn TensorSource, name: &str) -> Result<Vec<usize>> {
    if let Some(s) = src.tensor_shape(name) {
        return Ok(s);
    }
    if src.tensor_names().contains(&name) {
        src.tensor_meta(name)?;
    }
    Err(Error::MissingTensor {
        name: name.to_string(),
        source_name: src.source_name(),
    })
}
