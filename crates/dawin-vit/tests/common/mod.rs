//! Helpers shared by the integration tests: reading the fixtures of `scripts/make_vit_fixture.py`.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;

use dawin_core::merge::{lerp, task_arithmetic};
use dawin_vit::{ClipWeights, TensorMap};

/// Path of a fixture file.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// name → (dtype, shape, little-endian bytes).
pub type RawTensors = HashMap<String, (safetensors::Dtype, Vec<usize>, Vec<u8>)>;

/// Raw tensors of a safetensors file: name → (dtype, shape, little-endian bytes), plus metadata.
pub fn read_raw(path: &PathBuf) -> (RawTensors, HashMap<String, String>) {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let tensors = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, (v.dtype(), v.shape().to_vec(), v.data().to_vec())))
        .collect();
    (tensors, meta.metadata().clone().unwrap_or_default())
}

/// The f32 tensor `name` of a raw map.
pub fn f32s(raw: &RawTensors, name: &str) -> (Vec<usize>, Vec<f32>) {
    let (dt, shape, bytes) = raw
        .get(name)
        .unwrap_or_else(|| panic!("fixture lacks {name}"));
    assert_eq!(*dt, safetensors::Dtype::F32, "{name}");
    (
        shape.clone(),
        bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect(),
    )
}

/// A safetensors file of f32 tensors as an in-memory [`TensorMap`] (metadata kept).
pub fn tensor_map(path: &PathBuf) -> TensorMap {
    let (raw, meta) = read_raw(path);
    let mut map = TensorMap::new();
    for name in raw.keys() {
        let (shape, data) = f32s(&raw, name);
        map.insert(name.clone(), shape, data).unwrap();
    }
    for (k, v) in meta {
        map.set_metadata(k, v);
    }
    map.set_source_name(path.display().to_string());
    map
}

/// max |a − b| / max |b|: the error relative to the reference's scale.
pub fn rel_err(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = b
        .iter()
        .map(|v| v.abs() as f64)
        .fold(0.0, f64::max)
        .max(1e-30);
    a.iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - *y as f64).abs())
        .fold(0.0, f64::max)
        / scale
}

/// θ0 + Σ_j w_j (θ_j − θ0) built explicitly on the CPU (lerp for one model, task arithmetic for
/// more): the reference the blended forwards are compared with.
pub fn merged(base: &ClipWeights, others: &[&ClipWeights], w: &[f32]) -> ClipWeights {
    let mut out = base.clone();
    let bp = base.params();
    let ops: Vec<Vec<&[f32]>> = others.iter().map(|o| o.params()).collect();
    for (k, o) in out.params_mut().into_iter().enumerate() {
        if others.len() == 1 {
            lerp(bp[k], ops[0][k], w[0], o).unwrap();
        } else {
            let ms: Vec<&[f32]> = ops.iter().map(|p| p[k]).collect();
            task_arithmetic(bp[k], &ms, w, o).unwrap();
        }
    }
    out
}
