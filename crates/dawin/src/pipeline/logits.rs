//! Stage 1, logits: every model's forward over a dataset in batches, `z = f(x; θ)` `[N, C]`,
//! mapped to the dataset's classes (`z'_k = max_{c ∈ group k} z_c`, a class subset
//! `z' = z[:, subset]` when every group is one class: [`map_logits`]), and θ0's and θ1's logits
//! cached on disk (`cache.rs`: content-addressed, whole or in shards computed elsewhere by
//! `dawin logits --shard I/N`).
//!
//! Batches come through the pipelined data path ([`crate::data::for_each_batch`]): batch k + 1
//! is decoded while the model runs batch k.
//!
//! In the multi-task setting a dataset has its own head over the encoder's normalised features
//! `f`: `z = W f/‖f‖ + b` ([`features`], [`apply_head`]).
use super::cache::{self, Lookup, Shard};
use super::config::Named;
use crate::data::{for_each_batch, Dataset};
use crate::error::{Error, Result};
use crate::model::Model;
use crate::progress;
use dawin_vit::benchmarks::ClassMapping;
use dawin_vit::{cpu, ClipClassifier, Linear};
use std::path::Path;

pub use super::cache::CACHE_VERSION;

/// Number of classes of `d`'s logits: its class mapping's size, else the head's `c`.
pub(crate) fn classes_of(d: &dyn Dataset, c: usize) -> usize {
    d.class_mapping().map_or(c, ClassMapping::len)
}

/// Maps logits `[N, c]` over the head's classes to the dataset's classes
/// ([`Dataset::class_mapping`]): `z'_k = max_{c ∈ groups[k]} z_c`; with one head class per
/// group this is the class-subset restriction `z' = z[:, subset]` (a copy of those columns, bit
/// for bit). `z` itself when `mapping` is `None`. Errors when a group names a column `≥ c`.
pub fn map_logits(z: Vec<f32>, c: usize, mapping: Option<&ClassMapping>) -> Result<Vec<f32>> {
    let Some(m) = mapping else {
        return Ok(z);
    };
    if let Some(subset) = m.subset() {
        if let Some(&k) = subset.iter().find(|&&k| k >= c) {
            return Err(Error::invalid(
                "class mapping",
                format!("names class {k}, the logits have {c} classes"),
            ));
        }
        return Ok(z
            .chunks_exact(c)
            .flat_map(|row| subset.iter().map(move |&k| row[k]))
            .collect());
    }
    Ok(m.pool_rows(&z, c)?)
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
///
/// Two pipelines meet here: the data path ([`for_each_batch`]: chunk k + 1 decoded on the
/// dataset's worker pool while chunk k is handed on) runs on a scoped thread and feeds, through a
/// one-slot channel, [`Model::forward_batches`] (a device model uploads batch i + 1 from pinned
/// memory while it runs batch i; the CPU model simply runs them in turn). The first error wins:
/// the model's, else the loader's.
pub(crate) fn forward_indices<M: Model + ?Sized>(
    model: &M,
    data: &dyn Dataset,
    idx: &[usize],
    batch: usize,
    bar: &indicatif::ProgressBar,
) -> Result<Vec<f32>> {
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<(Vec<f32>, usize)>(1);
        let loader = s.spawn(move || {
            for_each_batch(data, idx, batch, |x, chunk| {
                tx.send((x.to_vec(), chunk.len()))
                    .map_err(|_| Error::invalid("data loader", "the forward stopped"))
            })
        });
        let mut out = Vec::new();
        let ran = model.forward_batches(
            &mut || {
                // A closed channel: the loader is done (or failed; its error is returned below).
                Ok(rx.recv().ok().inspect(|(_, n)| bar.inc(*n as u64)))
            },
            &mut |z| {
                out.extend(z);
                Ok(())
            },
        );
        drop(rx);
        let loaded = loader.join().expect("the data loader thread panicked");
        ran?;
        loaded?;
        Ok(out)
    })
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
    for_each_batch(data, idx, batch, |x, chunk| {
        out.extend(f(x, chunk)?);
        bar.inc(chunk.len() as u64);
        Ok(())
    })?;
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

/// [`forward_dataset`] with a progress bar labelled `label on <dataset>`, mapped to the
/// dataset's classes.
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
    map_logits(z, model.num_classes(), d.class_mapping())
}

/// θ0's and θ1's logits per dataset, read from the on-disk cache when it holds them, whole or
/// as a complete set of shards (counted in `hits`), else computed and stored (`misses`).
pub(crate) struct BaseLogits<'a> {
    /// The cache directory; no cache when `None`.
    pub cache_dir: Option<&'a Path>,
    /// Samples per forward.
    pub batch: usize,
    /// Progress bars.
    pub progress: bool,
    /// With an incomplete set of shards in the cache: compute the missing ones (else an error).
    pub compute_missing_shards: bool,
    /// Logits served from the cache.
    pub hits: usize,
    /// Logits computed.
    pub misses: usize,
    /// Logits assembled from shards: (model, dataset, shard count).
    pub assembled: Vec<(String, String, usize)>,
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
            compute_missing_shards: false,
            hits: 0,
            misses: 0,
            assembled: Vec::new(),
            times: [std::time::Duration::ZERO; 2],
        }
    }

    /// `(z0, z1)` of `d`, mapped to its classes.
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

    /// The head's logits `[len, c]` of the samples `range` of `d` (a progress bar per call).
    fn compute<M: Model>(
        &self,
        model: &Named<'_, M>,
        d: &dyn Dataset,
        range: std::ops::Range<usize>,
        what: &str,
    ) -> Result<Vec<f32>> {
        let idx: Vec<usize> = range.collect();
        let label = format!("{} on {}{what}", model.name, d.name());
        let bar = progress::bar(idx.len(), label, self.progress);
        let z = forward_indices(model.model, d, &idx, self.batch, &bar)?;
        bar.finish_and_clear();
        Ok(z)
    }

    fn of<M: Model>(&mut self, model: &Named<'_, M>, d: &dyn Dataset) -> Result<Vec<f32>> {
        let (c, n) = (model.model.num_classes(), d.len());
        let Some(dir) = self.cache_dir else {
            self.misses += 1;
            let z = self.compute(model, d, 0..n, "")?;
            return map_logits(z, c, d.class_mapping());
        };
        let key = cache::cache_key(&model.fingerprint, &d.fingerprint()?);
        let z = match cache::lookup(dir, &key, n, c)? {
            Lookup::Found { logits, shards } => {
                self.hits += 1;
                let entry = shards.map(|k| (model.name.clone(), d.name().to_string(), k));
                if let Some(e) = entry.filter(|e| !self.assembled.contains(e)) {
                    self.assembled.push(e);
                }
                logits
            }
            Lookup::Partial { count, missing } => {
                if !self.compute_missing_shards {
                    return Err(cache::partial_error(
                        &model.name,
                        d.name(),
                        dir,
                        count,
                        &missing,
                    ));
                }
                self.misses += 1;
                for s in missing {
                    let z = self.compute(model, d, s.range(n), &format!(" (shard {s})"))?;
                    cache::store(dir, &key, Some(s), &z, c)?;
                }
                match cache::lookup(dir, &key, n, c)? {
                    Lookup::Found { logits, .. } => logits,
                    _ => {
                        return Err(Error::invalid(
                            dir.display().to_string(),
                            "the shards just written cannot be read back",
                        ))
                    }
                }
            }
            Lookup::Missing => {
                self.misses += 1;
                let z = self.compute(model, d, 0..n, "")?;
                cache::store(dir, &key, None, &z, c)?;
                z
            }
        };
        map_logits(z, c, d.class_mapping())
    }
}

/// The head's logits `[range.len(), C]` of `model` over the samples of `shard` of `data`
/// (`dawin logits --shard I/N`), stored in the cache under `cache_dir` where
/// [`crate::eval::evaluate`] finds them (`model.fingerprint` must be the one `evaluate` is given:
/// the checkpoint file's SHA-256 for the CLI). When the cache already holds them (the shard, or
/// the whole dataset) nothing is computed. Returns the logits (over the head's classes, not
/// mapped), the samples' range and whether they came from the cache.
pub fn shard_logits<M: Model>(
    model: &Named<'_, M>,
    data: &dyn Dataset,
    shard: Shard,
    cache_dir: &Path,
    batch: usize,
    progress: bool,
) -> Result<(Vec<f32>, std::ops::Range<usize>, bool)> {
    let (c, n) = (model.model.num_classes(), data.len());
    let range = shard.range(n);
    let key = cache::cache_key(&model.fingerprint, &data.fingerprint()?);
    let whole = shard.count == 1;
    let file = cache::cache_file(cache_dir, &key, (!whole).then_some(shard));
    if let Ok(a) = dawin_core::npy::read_f32(&file) {
        if a.shape == [range.len(), c] {
            return Ok((a.data, range, true));
        }
    }
    if let Ok(a) = dawin_core::npy::read_f32(cache::cache_file(cache_dir, &key, None)) {
        if a.shape == [n, c] {
            return Ok((a.data[range.start * c..range.end * c].to_vec(), range, true));
        }
    }
    let base = BaseLogits::new(Some(cache_dir), batch, progress);
    let what = if whole {
        String::new()
    } else {
        format!(" (shard {shard})")
    };
    let z = base.compute(model, data, range.clone(), &what)?;
    cache::store(cache_dir, &key, (!whole).then_some(shard), &z, c)?;
    Ok((z, range, false))
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
