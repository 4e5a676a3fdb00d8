//! [`ImageFolderDataset`]: images on disk, opened under the convention of the dataset's name and
//! decoded on a pool of worker threads.
use super::{file_fingerprint, hex, Dataset};
use crate::error::{Error, Result};
use dawin_vit::benchmarks::ClassMapping;
use dawin_vit::benchmarks::{self, Benchmark, Input, OpenOptions};
use dawin_vit::{DecodePool, ImageDataset, Skipped};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::{Arc, OnceLock};

/// How [`ImageFolderDataset::open_with`] reads a dataset.
#[derive(Clone, Debug, Default)]
pub struct DataOptions {
    /// The decode threads; `None`: one pool of one thread per core, shared by every dataset
    /// opened without one.
    pub pool: Option<Arc<DecodePool>>,
    /// Plain image folders: label by torchvision `ImageFolder`'s sorted-name order even when
    /// every class folder name is an integer (by default such folders are labelled by their
    /// integer).
    pub sorted_labels: bool,
    /// WebDataset shards: skip (and count) samples missing their image or `.cls` instead of
    /// erroring.
    pub skip_incomplete: bool,
}

/// The pool of datasets opened without one: one thread per core.
fn default_pool() -> Result<Arc<DecodePool>> {
    static POOL: OnceLock<Arc<DecodePool>> = OnceLock::new();
    if let Some(p) = POOL.get() {
        return Ok(p.clone());
    }
    let p = Arc::new(DecodePool::new(0)?);
    Ok(POOL.get_or_init(|| p).clone())
}

/// A dataset on disk, read sample by sample through [`dawin_vit::ImageDataset`]: an image-folder
/// tree, WebDataset `.tar` shards (a `.tar` path, a `::`-separated list or a brace pattern such
/// as `shards/val-{000000..000063}.tar`, streamed by positioned reads, never unpacked) or a
/// safetensors file; nothing is held in memory but the labels, so it scales to ImageNet-sized
/// sets. It is opened under the convention its name selects ([`Benchmark::parse`]: `imagenet`,
/// `imagenet-v2`, `imagenet-r`, `imagenet-a`, `imagenet-sketch`, `objectnet`; any other name is a
/// plain folder, labelled by the folders' integers when every class folder name is one), which
/// fixes the labels, the [`ClassMapping`] of the head's logits and the image crop
/// ([`describe`](Dataset::describe) says what was applied).
///
/// Batches are decoded on a [`DecodePool`] ([`DataOptions::pool`]), each sample written into its
/// slot of the batch, so the order never depends on the number of workers.
///
/// Fingerprint (the logits cache key): SHA-256 of the input size, the convention's
/// [`fingerprint_tag`](dawin_vit::benchmarks::BenchmarkData::fingerprint_tag), the labels, the left-out
/// samples, and the files: for a folder every image's path relative to the root, size and
/// modification time; for shards every shard's file name, size and modification time; for a
/// safetensors file its bytes. The same files at another root (a copy that keeps modification
/// times, e.g. `cp -p`, `rsync -t`) have the same fingerprint.
#[derive(Debug)]
pub struct ImageFolderDataset {
    name: String,
    inner: ImageDataset,
    benchmark: Benchmark,
    input: Input,
    mapping: Option<ClassMapping>,
    describe: String,
    notes: Vec<String>,
    tag: String,
    pool: Arc<DecodePool>,
    /// Dataset index → index of `inner` (all samples but the left-out ones).
    keep: Option<Vec<usize>>,
    labels: Vec<i64>,
    left_out: Vec<Skipped>,
    fingerprint: OnceLock<String>,
}

impl ImageFolderDataset {
    /// Opens `path` for a model with input side `image_size`, named `name` (which selects the
    /// convention), decoded on the shared pool of one thread per core. See
    /// [`open_with`](Self::open_with).
    pub fn open(
        name: impl Into<String>,
        path: impl AsRef<Path>,
        image_size: usize,
    ) -> Result<Self> {
        Self::open_with(name, path, image_size, &DataOptions::default())
    }

    /// Opens `path` — an image folder, WebDataset shards (`.tar`, `a.tar::b.tar`,
    /// `val-{0000..0063}.tar`) or a safetensors file — under the convention `name` selects
    /// ([`benchmarks::open`]). Errors, naming the path: a missing path, an empty dataset or class
    /// folder, folders outside the convention's class list, a bad `.cls`, missing labels.
    pub fn open_with(
        name: impl Into<String>,
        path: impl AsRef<Path>,
        image_size: usize,
        opts: &DataOptions,
    ) -> Result<Self> {
        let name = name.into();
        let path = path.as_ref();
        let spec = path.to_str().ok_or_else(|| {
            Error::invalid(path.display().to_string(), "the path is not valid UTF-8")
        })?;
        let pattern = spec.contains('{') || spec.contains("::");
        if !path.exists() && !pattern {
            return Err(Error::invalid(spec, "no such file or directory"));
        }
        let benchmark = Benchmark::parse(&name);
        let data = benchmarks::open(
            benchmark,
            spec,
            image_size,
            &OpenOptions {
                sorted_labels: opts.sorted_labels,
                skip_incomplete: opts.skip_incomplete,
            },
        )?;
        let labels = data
            .dataset
            .labels()
            .ok_or_else(|| Error::invalid(spec, "has no labels"))?
            .to_vec();
        let pool = match &opts.pool {
            Some(p) => p.clone(),
            None => default_pool()?,
        };
        Ok(ImageFolderDataset {
            name,
            describe: data.describe(),
            tag: data.fingerprint_tag(),
            notes: data.notes,
            benchmark,
            input: data.input,
            mapping: data.mapping,
            inner: data.dataset,
            pool,
            keep: None,
            labels,
            left_out: Vec::new(),
            fingerprint: OnceLock::new(),
        })
    }

    /// The convention the dataset was opened under.
    pub fn benchmark(&self) -> Benchmark {
        self.benchmark
    }

    /// What was read: an image folder, shards or a safetensors file.
    pub fn input(&self) -> &Input {
        &self.input
    }

    /// The samples as `dawin-vit` reads them (all of them, left-out ones included).
    pub fn images(&self) -> &ImageDataset {
        &self.inner
    }

    /// The decode pool.
    pub fn pool(&self) -> &DecodePool {
        &self.pool
    }

    /// Samples left out by [`skip_bad_files`](Self::skip_bad_files).
    pub fn left_out(&self) -> &[Skipped] {
        &self.left_out
    }

    /// The index in [`images`](Self::images) of sample `i`.
    fn inner_index(&self, i: usize) -> usize {
        self.keep.as_ref().map_or(i, |k| k[i])
    }

    /// How errors and reports name sample `i` (its file, or `shard.tar:key.jpg`).
    pub fn sample_name(&self, i: usize) -> String {
        self.inner.sample_name(self.inner_index(i))
    }

    /// Decodes every sample once on the pool, `batch` at a time, and leaves out the ones that
    /// cannot be decoded (a corrupt or truncated file), returning them. The dataset then holds
    /// the others only (labels and fingerprint included: logits cached for it say which files
    /// were left out). Errors when no sample is left.
    pub fn skip_bad_files(&mut self, batch: usize) -> Result<&[Skipped]> {
        let idx: Vec<usize> = (0..self.len()).map(|i| self.inner_index(i)).collect();
        let per = self.sample_numel();
        let mut buf = Vec::new();
        let mut bad = Vec::new();
        for chunk in idx.chunks(batch.max(1)) {
            buf.resize(chunk.len() * per, 0.0);
            bad.extend(self.inner.load_into(chunk, &mut buf, &self.pool, true)?);
        }
        if bad.is_empty() {
            return Ok(&self.left_out);
        }
        let gone: std::collections::HashSet<usize> = bad.iter().map(|s| s.index).collect();
        let keep: Vec<usize> = idx.into_iter().filter(|i| !gone.contains(i)).collect();
        if keep.is_empty() {
            return Err(Error::invalid(
                format!("dataset `{}`", self.name),
                format!(
                    "none of its {} samples could be decoded (first: {}: {})",
                    bad.len(),
                    bad[0].name,
                    bad[0].reason
                ),
            ));
        }
        let all = self.inner.labels().expect("checked at open");
        self.labels = keep.iter().map(|&i| all[i]).collect();
        self.keep = Some(keep);
        self.left_out.extend(bad);
        self.left_out.sort_by_key(|s| s.index);
        self.fingerprint = OnceLock::new();
        Ok(&self.left_out)
    }

    fn compute_fingerprint(&self) -> Result<String> {
        let mut h = Sha256::new();
        let mut put = |b: &[u8]| {
            h.update((b.len() as u64).to_le_bytes());
            h.update(b);
        };
        put(b"dawin-image-dataset-v2");
        put(&(self.inner.image_size() as u64).to_le_bytes());
        put(self.tag.as_bytes());
        let stat = |p: &Path| -> Result<(u64, u128)> {
            let m = std::fs::metadata(p).map_err(|e| Error::io(p, e))?;
            let mtime = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            Ok((m.len(), mtime))
        };
        match &self.input {
            Input::Folder(root) => {
                for i in 0..self.len() {
                    let f = std::path::PathBuf::from(self.sample_name(i));
                    let rel = f.strip_prefix(root).unwrap_or(&f);
                    let (len, mtime) = stat(&f)?;
                    put(rel.as_os_str().as_encoded_bytes());
                    put(&len.to_le_bytes());
                    put(&mtime.to_le_bytes());
                }
            }
            Input::Shards(shards) => {
                for s in shards {
                    let (len, mtime) = stat(s)?;
                    put(s.file_name().unwrap_or_default().as_encoded_bytes());
                    put(&len.to_le_bytes());
                    put(&mtime.to_le_bytes());
                }
                // Incomplete samples skipped at open change the indices.
                put(&(self.inner.len() as u64).to_le_bytes());
            }
            Input::Safetensors(p) => put(file_fingerprint(p)?.as_bytes()),
        }
        for s in &self.left_out {
            put(&(s.index as u64).to_le_bytes());
        }
        for y in &self.labels {
            put(&y.to_le_bytes());
        }
        Ok(hex(&h.finalize()))
    }
}

impl Dataset for ImageFolderDataset {
    fn name(&self) -> &str {
        &self.name
    }
    fn len(&self) -> usize {
        self.labels.len()
    }
    fn sample_numel(&self) -> usize {
        3 * self.inner.image_size() * self.inner.image_size()
    }
    fn labels(&self) -> &[i64] {
        &self.labels
    }
    fn load(&self, indices: &[usize]) -> Result<Vec<f32>> {
        let mut out = Vec::new();
        self.load_into(indices, &mut out)?;
        Ok(out)
    }
    fn load_into(&self, indices: &[usize], out: &mut Vec<f32>) -> Result<()> {
        let n = self.len();
        if let Some(&i) = indices.iter().find(|&&i| i >= n) {
            return Err(Error::invalid(
                format!("dataset `{}`", self.name),
                format!("no sample {i} ({n} samples)"),
            ));
        }
        let inner: Vec<usize>;
        let idx = match &self.keep {
            None => indices,
            Some(k) => {
                inner = indices.iter().map(|&i| k[i]).collect();
                &inner
            }
        };
        out.resize(indices.len() * self.sample_numel(), 0.0);
        self.inner.load_into(idx, out, &self.pool, false)?;
        Ok(())
    }
    fn fingerprint(&self) -> Result<String> {
        if let Some(f) = self.fingerprint.get() {
            return Ok(f.clone());
        }
        let f = self.compute_fingerprint()?;
        Ok(self.fingerprint.get_or_init(|| f).clone())
    }
    fn class_mapping(&self) -> Option<&ClassMapping> {
        self.mapping.as_ref()
    }
    fn head_classes(&self) -> Option<usize> {
        self.benchmark.head_classes()
    }
    fn describe(&self) -> Option<String> {
        Some(self.describe.clone())
    }
    fn notes(&self) -> Vec<String> {
        let mut notes = self.notes.clone();
        if let Some(first) = self.left_out.first() {
            notes.push(format!(
                "{} file(s) that cannot be decoded left out (--skip-bad-files), first: {}: {}",
                self.left_out.len(),
                first.name,
                first.reason
            ));
        }
        notes
    }
}
