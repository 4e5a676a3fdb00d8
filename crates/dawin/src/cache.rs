//! The on-disk logits cache: `<dir>/<key>.npy`, key = SHA-256 of (cache format version, model
//! fingerprint, dataset fingerprint), so a changed checkpoint or dataset is never served stale.
use crate::error::Result;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Version of the cache layout; bump it when the forward changes numerics.
pub const CACHE_VERSION: &str = "dawin-logits-cache-v1";

/// The cache file of (model, dataset) under `dir`.
pub fn path(dir: &Path, model_fingerprint: &str, dataset_fingerprint: &str) -> PathBuf {
    let mut h = Sha256::new();
    for part in [CACHE_VERSION, model_fingerprint, dataset_fingerprint] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    dir.join(format!("{}.npy", crate::data::hex(&h.finalize())))
}

/// Cached logits `[N, C]` when present with the expected shape (a corrupt or mismatched file is
/// ignored and recomputed).
pub fn load(file: &Path, n: usize, c: usize) -> Option<Vec<f32>> {
    let a = dawin_core::npy::read_f32(file).ok()?;
    (a.shape == [n, c]).then_some(a.data)
}

/// Stores logits atomically (temporary file + rename).
pub fn store(file: &Path, logits: &[f32], n: usize, c: usize) -> Result<()> {
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).map_err(|e| crate::Error::io(dir, e))?;
    }
    dawin_core::npy::write_f32(file, logits, &[n, c])?;
    Ok(())
}
