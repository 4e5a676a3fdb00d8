//! Stage 1, logits: every model's forward over a dataset in batches, `z = f(x; θ)` `[N, C]`,
//! restricted to a dataset's class subset (`z' = z[:, subset]`), and θ0's and θ1's logits cached
//! on disk (`<dir>/<key>.npy`, key = SHA-256 of the cache format version, the model fingerprint
//! and the dataset fingerprint, so a changed checkpoint or dataset is never served stale).
//!
//! In the multi-task setting a dataset has its own head over the encoder's normalised features
//! `f`: `z = W f/‖f‖ + b` ([`features`], [`apply_head`]).
use super::config::Named;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::model::Model;
use crate::progress;
use dawin_vit::{cpu, ClipClassifier, Linear};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Version of the cache layout; bump it when the forward changes numerics.
pub const CACHE_VERSION: &str = "dawin-logits-cache-v1";

/// The cache file of (model, dataset) under `dir`.
pub(crate) fn cache_path(
    dir: &Path,
    model_fingerprint: &str,
    dataset_fingerprint: &str,
) -> PathBuf {
    let mut h = Sha256::new();
    for part in [CACHE_VERSION, model_fingerprint, dataset_fingerprint] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    dir.join(format!("{}.npy", crate::data::hex(&h.finalize())))
}

/// Cached logits `[N, C]` when present with the expected shape (a corrupt or mismatched file is
/// ignored and recomputed).
fn cache_load(file: &Path, n: usize, c: usize) -> Option<Vec<f32>> {
    let a = dawin_core::npy::read_f32(file).ok()?;
    (a.shape == [n, c]).then_some(a.data)
}

/// Stores logits atomically (temporary file + rename).
fn cache_store(file: &Path, logits: &[f32], n: usize, c: usize) -> Result<()> {
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    dawin_core::npy::write_f32(file, logits, &[n, c])?;
    Ok(())
}

/// Number of classes of `d`'s logits: its class subset's size, else the head's `c`.
pub(crate) fn classes_of(d: &dyn Dataset, c: usize) -> usize {
    d.class_subset().map_or(c, |s| s.len())
}

/// `z' = z[:, subset]`: logits `[N, c]` restricted to the columns of a class subset
/// ([`Dataset::class_subset`]), so that column `y` of `z'` is head class `subset[y]`; `z`
/// itself when `subset` is `None`.
pub fn restrict_logits(z: Vec<f32>, c: usize, subset: Option<&[usize]>) -> Vec<f32> {
    match subset {
        None => z,
        Some(sub) => z
            .chunks_exact(c)
            .flat_map(|row| sub.iter().map(move |&k| row[k]))
            .collect(),
    }
}

/// Logits `[N, C]` of `model` over `data` in batches (with a progress bar).
pub fn forward_dataset<M: Model + ?Sized>(
    model: &M,
    data: &dyn Dataset,
    batch: usize,
    bar: &indicatif::ProgressBar,
) -> Result<Vec<f32>> {
    let idx: Vec<usize> = (0..data.len()).collect();
    forward_indices(model, data, &idx, batch, bar)
}

/// Logits `[idx.len(), C]` of `model` over the samples `idx` of `data`, `batch` at a time.
pub(crate) fn forward_indices<M: Model + ?Sized>(
    model: &M,
    data: &dyn Dataset,
    idx: &[usize],
    batch: usize,
    bar: &indicatif::ProgressBar,
) -> Result<Vec<f32>> {
    // Through `Model::forward_batches`: a device model loads batch i + 1 while it runs batch i.
    let mut chunks = idx.chunks(batch.max(1));
    let mut out = Vec::new();
    model.forward_batches(
        &mut || match chunks.next() {
            Some(chunk) => {
                let x = data.load(chunk)?;
                bar.inc(chunk.len() as u64);
                Ok(Some((x, chunk.len())))
            }
            None => Ok(None),
        },
        &mut |z| {
            out.extend(z);
            Ok(())
        },
    )?;
    Ok(out)
}

/// The outputs of `f(x, chunk)` over the samples `idx` of `data`, concatenated: `chunk` is up
/// to `batch` consecutive entries of `idx` and `x` their inputs `[chunk.len(), sample_numel]`.
pub(crate) fn batches(
    data: &dyn Dataset,
    idx: &[usize],
    batch: usize,
    bar: &indicatif::ProgressBar,
    mut f: impl FnMut(&[f32], &[usize]) -> Result<Vec<f32>>,
) -> Result<Vec<f32>> {
    let mut out = Vec::new();
    for chunk in idx.chunks(batch.max(1)) {
        let x = data.load(chunk)?;
        out.extend(f(&x, chunk)?);
        bar.inc(chunk.len() as u64);
    }
    Ok(out)
}

/// Normalised features `[idx.len(), E]` of `encoder` over the samples `idx` of `data`
/// ([`cpu::forward`]), `batch` at a time.
pub(crate) fn features(
    encoder: &ClipClassifier,
    data: &dyn Dataset,
    idx: &[usize],
    batch: usize,
    bar: &indicatif::ProgressBar,
) -> Result<Vec<f32>> {
    let (cfg, w) = (encoder.config(), encoder.weights());
    batches(data, idx, batch, bar, |x, chunk| {
        Ok(cpu::forward(x, chunk.len(), cfg, w)?.1)
    })
}

/// [`forward_dataset`] with a progress bar labelled `label on <dataset>`, restricted to the
/// dataset's class subset.
pub(crate) fn logits_of<M: Model + ?Sized>(
    model: &M,
    label: &str,
    d: &dyn Dataset,
    batch: usize,
    progress: bool,
) -> Result<Vec<f32>> {
    let bar = progress::bar(d.len(), format!("{label} on {}", d.name()), progress);
    let z = forward_dataset(model, d, batch, &bar)?;
    bar.finish_and_clear();
    Ok(restrict_logits(z, model.num_classes(), d.class_subset()))
}

/// θ0's and θ1's logits per dataset, read from the on-disk cache when it holds them (counted in
/// `hits`), else computed and stored (`misses`).
pub(crate) struct BaseLogits<'a> {
    /// The cache directory; no cache when `None`.
    pub cache_dir: Option<&'a Path>,
    /// Samples per forward.
    pub batch: usize,
    /// Progress bars.
    pub progress: bool,
    /// Logits served from the cache.
    pub hits: usize,
    /// Logits computed.
    pub misses: usize,
    /// Time spent on θ0's and θ1's logits (computing or reading the cache).
    pub times: [std::time::Duration; 2],
}

impl<'a> BaseLogits<'a> {
    /// No logits read or computed yet.
    pub fn new(cache_dir: Option<&'a Path>, batch: usize, progress: bool) -> Self {
        BaseLogits {
            cache_dir,
            batch,
            progress,
            hits: 0,
            misses: 0,
            times: [std::time::Duration::ZERO; 2],
        }
    }

    /// `(z0, z1)` of `d`, restricted to its class subset.
    pub fn pair<M: Model>(
        &mut self,
        theta0: &Named<'_, M>,
        theta1: &Named<'_, M>,
        d: &dyn Dataset,
    ) -> Result<(Vec<f32>, Vec<f32>)> {
        let t = std::time::Instant::now();
        let z0 = self.of(theta0, d)?;
        self.times[0] += t.elapsed();
        let t = std::time::Instant::now();
        let z1 = self.of(theta1, d)?;
        self.times[1] += t.elapsed();
        Ok((z0, z1))
    }

    fn of<M: Model>(&mut self, model: &Named<'_, M>, d: &dyn Dataset) -> Result<Vec<f32>> {
        let c = model.model.num_classes();
        let file = match self.cache_dir {
            Some(dir) => Some(cache_path(dir, &model.fingerprint, &d.fingerprint()?)),
            None => None,
        };
        if let Some(z) = file.as_deref().and_then(|f| cache_load(f, d.len(), c)) {
            self.hits += 1;
            return Ok(restrict_logits(z, c, d.class_subset()));
        }
        self.misses += 1;
        let bar = progress::bar(
            d.len(),
            format!("{} on {}", model.name, d.name()),
            self.progress,
        );
        let z = forward_dataset(model.model, d, self.batch, &bar)?;
        bar.finish_and_clear();
        if let Some(f) = file {
            cache_store(&f, &z, d.len(), c)?;
        }
        Ok(restrict_logits(z, c, d.class_subset()))
    }
}

/// `logits = W f + b` of features `[N, E]` through `head` (`W` `[C, E]`); errors on a
/// non-finite logit (a NaN in the head or the features never becomes a quiet accuracy).
pub fn apply_head(head: &Linear, feats: &[f32]) -> Result<Vec<f32>> {
    let (c, e) = (head.out_dim, head.in_dim);
    let mut out = Vec::with_capacity(feats.len() / e * c);
    for (i, f) in feats.chunks_exact(e).enumerate() {
        for k in 0..c {
            let w = &head.weight[k * e..(k + 1) * e];
            let mut s: f32 = w.iter().zip(f).map(|(a, b)| a * b).sum();
            if let Some(b) = &head.bias {
                s += b[k];
            }
            if !s.is_finite() {
                return Err(Error::invalid(
                    "logits",
                    format!("non-finite logit for sample {i} (class {k})"),
                ));
            }
            out.push(s);
        }
    }
    Ok(out)
}
