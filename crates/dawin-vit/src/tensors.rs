//! Where weights come from: anything that can list named tensors and hand them out as f32.
//!
//! [`TensorSource`] is implemented for [`TensorMap`] (tensors held in memory, e.g. a merged state
//! dict) and for `dawin_core::StateDict` (a memory-mapped safetensors file, any float dtype).

use std::collections::{BTreeMap, HashMap};

use crate::error::{Error, Result};

/// Safetensors metadata key giving the number of attention heads (the width is not always 64 × heads).
pub const HEADS_METADATA_KEY: &str = "dawin.vit.heads";

/// A read-only set of named tensors, converted to f32 on request.
pub trait TensorSource {
    /// Names of all tensors, in any order.
    fn tensor_names(&self) -> Vec<String>;
    /// Shape of the tensor `name`, `None` when absent (or of a dtype the source cannot read).
    fn tensor_shape(&self, name: &str) -> Option<Vec<usize>>;
    /// Values of the tensor `name` converted to f32 (row-major). Errors name the tensor: absent,
    /// or of a dtype that does not convert.
    fn tensor_f32(&self, name: &str) -> Result<Vec<f32>>;
    /// A metadata value (safetensors `__metadata__`), `None` when absent.
    fn metadata_value(&self, key: &str) -> Option<String>;
    /// How errors name this source: a file path, or `<memory>`.
    fn source_name(&self) -> String;
}

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

    /// Copies every tensor of `src` that converts to f32, and the heads metadata, into a new map.
    pub fn from_source(src: &dyn TensorSource) -> Self {
        let mut map = TensorMap::new();
        for name in src.tensor_names() {
            if let (Some(shape), Ok(data)) = (src.tensor_shape(&name), src.tensor_f32(&name)) {
                map.tensors.insert(name, Tensor { shape, data });
            }
        }
        if let Some(h) = src.metadata_value(HEADS_METADATA_KEY) {
            map.set_metadata(HEADS_METADATA_KEY, h);
        }
        map.name = Some(src.source_name());
        map
    }
}

impl TensorSource for TensorMap {
    fn tensor_names(&self) -> Vec<String> {
        self.tensors.keys().cloned().collect()
    }
    fn tensor_shape(&self, name: &str) -> Option<Vec<usize>> {
        self.tensors.get(name).map(|t| t.shape.clone())
    }
    fn tensor_f32(&self, name: &str) -> Result<Vec<f32>> {
        self.tensors
            .get(name)
            .map(|t| t.data.clone())
            .ok_or_else(|| Error::MissingTensor {
                name: name.to_string(),
                source_name: self.source_name(),
            })
    }
    fn metadata_value(&self, key: &str) -> Option<String> {
        self.metadata.get(key).cloned()
    }
    fn source_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| "<memory>".to_string())
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
    if src.tensor_names().iter().any(|n| n == name) {
        src.tensor_f32(name)?;
    }
    Err(Error::MissingTensor {
        name: name.to_string(),
        source_name: src.source_name(),
    })
}

impl TensorSource for dawin_core::StateDict {
    fn tensor_names(&self) -> Vec<String> {
        self.names().into_iter().map(str::to_string).collect()
    }
    fn tensor_shape(&self, name: &str) -> Option<Vec<usize>> {
        self.get(name).map(|t| t.shape.to_vec())
    }
    fn tensor_f32(&self, name: &str) -> Result<Vec<f32>> {
        match self.tensor(name) {
            Ok(t) => Ok(t.to_f32_vec()),
            Err(dawin_core::Error::MissingTensor { .. }) => Err(Error::MissingTensor {
                name: name.to_string(),
                source_name: self.source_name(),
            }),
            // e.g. a dtype dawin-core does not read; its message names the tensor and the file.
            Err(e) => Err(e.into()),
        }
    }
    fn metadata_value(&self, key: &str) -> Option<String> {
        self.metadata().and_then(|m| m.get(key).cloned())
    }
    fn source_name(&self) -> String {
        self.path().display().to_string()
    }
}
