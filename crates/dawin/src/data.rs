//! Labelled datasets the pipeline evaluates: anything that can load samples by index.
use crate::error::{Error, Result};
use sha2::{Digest, Sha256};

/// A labelled dataset of preprocessed f32 inputs.
pub trait Dataset: Sync {
    /// A short name (a table column, a file name stem).
    fn name(&self) -> &str;
    /// Number of samples.
    fn len(&self) -> usize;
    /// Whether there is no sample.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Number of f32 values of one sample.
    fn sample_numel(&self) -> usize;
    /// The labels, one per sample.
    fn labels(&self) -> &[i64];
    /// The inputs of `indices`, concatenated: `[indices.len(), sample_numel]`.
    fn load(&self, indices: &[usize]) -> Result<Vec<f32>>;
    /// A content hash: equal for equal content, different when any input or label changes
    /// (the logits cache keys on it).
    fn fingerprint(&self) -> Result<String>;
    /// For a dataset labelled over some of the head's classes (ImageNet-R and ImageNet-A: 200 of
    /// ImageNet's 1000): the head classes, in label order — label `y` is head class
    /// `class_subset[y]`, and every logit vector is restricted to these columns,
    /// `z' = z[class_subset]`, before anything else (entropies, λ, argmax). `None` (the default):
    /// labels are head classes.
    fn class_subset(&self) -> Option<&[usize]> {
        None
    }
}

/// A dataset whose labels index a subset of the head's classes ([`Dataset::class_subset`]).
/// Its fingerprint is the inner dataset's: cached logits are the full head's, restricted after.
#[derive(Clone, Debug)]
pub struct WithClassSubset<D> {
    inner: D,
    subset: Vec<usize>,
}

impl<D: Dataset> WithClassSubset<D> {
    /// `inner`, whose label `y` means head class `subset[y]`. Errors (naming the dataset): an
    /// empty subset, a class listed twice, a label `≥ subset.len()`.
    pub fn new(inner: D, subset: Vec<usize>) -> Result<Self> {
        let what = || format!("class subset of dataset `{}`", inner.name());
        if subset.is_empty() {
            return Err(Error::invalid(what(), "is empty"));
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(c) = subset.iter().find(|&&c| !seen.insert(c)) {
            return Err(Error::invalid(what(), format!("lists class {c} twice")));
        }
        let k = subset.len() as i64;
        if let Some(i) = inner.labels().iter().position(|&y| y < 0 || y >= k) {
            return Err(Error::invalid(
                format!("dataset `{}`", inner.name()),
                format!(
                    "label {} of sample {i} is not an index into its class subset ({k} classes)",
                    inner.labels()[i]
                ),
            ));
        }
        Ok(WithClassSubset { inner, subset })
    }
}

impl<D: Dataset> Dataset for WithClassSubset<D> {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn len(&self) -> usize {
        self.inner.len()
    }
    fn sample_numel(&self) -> usize {
        self.inner.sample_numel()
    }
    fn labels(&self) -> &[i64] {
        self.inner.labels()
    }
    fn load(&self, indices: &[usize]) -> Result<Vec<f32>> {
        self.inner.load(indices)
    }
    fn fingerprint(&self) -> Result<String> {
        self.inner.fingerprint()
    }
    fn class_subset(&self) -> Option<&[usize]> {
        Some(&self.subset)
    }
}

/// Reads a class subset: a `.npy` of integers `[K]`, or a text file of non-negative integers
/// separated by white space or commas (`#` starts a comment). Errors name the file and the
/// offending token.
pub fn read_class_subset(path: impl AsRef<std::path::Path>) -> Result<Vec<usize>> {
    let path = path.as_ref();
    let what = || path.display().to_string();
    if path.extension().is_some_and(|e| e == "npy") {
        let a = dawin_core::npy::read_i64(path)?;
        return a
            .data
            .iter()
            .map(|&v| {
                usize::try_from(v)
                    .map_err(|_| Error::invalid(what(), format!("holds the negative class {v}")))
            })
            .collect();
    }
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut out = Vec::new();
    for (ln, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("");
        for tok in line.split(|c: char| c.is_whitespace() || c == ',') {
            if tok.is_empty() {
                continue;
            }
            out.push(tok.parse::<usize>().map_err(|_| {
                Error::invalid(
                    what(),
                    format!("line {}: `{tok}` is not a class index", ln + 1),
                )
            })?);
        }
    }
    Ok(out)
}

/// A dataset held in memory.
#[derive(Clone, Debug)]
pub struct InMemoryDataset {
    name: String,
    inputs: Vec<f32>,
    numel: usize,
    labels: Vec<i64>,
}

impl InMemoryDataset {
    /// `inputs` `[N, numel]`, `labels` `[N]`. Errors on an empty dataset, ragged inputs,
    /// negative labels or non-finite inputs.
    pub fn new(
        name: impl Into<String>,
        inputs: Vec<f32>,
        numel: usize,
        labels: Vec<i64>,
    ) -> Result<Self> {
        let name = name.into();
        if labels.is_empty() {
            return Err(Error::invalid(
                format!("dataset `{name}`"),
                "is empty (no samples)",
            ));
        }
        if numel == 0 || inputs.len() != numel * labels.len() {
            return Err(Error::invalid(
                format!("dataset `{name}`"),
                format!(
                    "{} input values for {} labels of {numel} values each",
                    inputs.len(),
                    labels.len()
                ),
            ));
        }
        if let Some(i) = labels.iter().position(|&y| y < 0) {
            return Err(Error::invalid(
                format!("dataset `{name}`"),
                format!("label {i} is negative"),
            ));
        }
        if let Some(i) = inputs.iter().position(|v| !v.is_finite()) {
            return Err(Error::invalid(
                format!("dataset `{name}`"),
                format!("input value of sample {} is not finite", i / numel),
            ));
        }
        Ok(InMemoryDataset {
            name,
            inputs,
            numel,
            labels,
        })
    }

    /// The first `n` samples (all when `n ≥ len`).
    pub fn head(&self, n: usize) -> Self {
        let n = n.min(self.labels.len());
        InMemoryDataset {
            name: self.name.clone(),
            inputs: self.inputs[..n * self.numel].to_vec(),
            numel: self.numel,
            labels: self.labels[..n].to_vec(),
        }
    }

    /// Loads every sample of a safetensors (`images`, `labels`) file or an image-folder tree
    /// through [`dawin_vit::ImageDataset`], named `name`. Labels are required.
    pub fn open(
        name: impl Into<String>,
        path: impl AsRef<std::path::Path>,
        image_size: usize,
    ) -> Result<Self> {
        let path = path.as_ref();
        let ds = dawin_vit::ImageDataset::open(path, image_size)?;
        let labels = ds
            .labels()
            .ok_or_else(|| Error::invalid(path.display().to_string(), "has no labels"))?
            .to_vec();
        let numel = 3 * image_size * image_size;
        let mut inputs = vec![0f32; numel * ds.len()];
        for (i, chunk) in inputs.chunks_mut(numel).enumerate() {
            ds.load(i, chunk)?;
        }
        Self::new(name, inputs, numel, labels)
    }
}

impl Dataset for InMemoryDataset {
    fn name(&self) -> &str {
        &self.name
    }
    fn len(&self) -> usize {
        self.labels.len()
    }
    fn sample_numel(&self) -> usize {
        self.numel
    }
    fn labels(&self) -> &[i64] {
        &self.labels
    }
    fn load(&self, indices: &[usize]) -> Result<Vec<f32>> {
        let mut out = Vec::with_capacity(indices.len() * self.numel);
        for &i in indices {
            let s = self
                .inputs
                .get(i * self.numel..(i + 1) * self.numel)
                .ok_or_else(|| {
                    Error::invalid(format!("dataset `{}`", self.name), format!("no sample {i}"))
                })?;
            out.extend_from_slice(s);
        }
        Ok(out)
    }
    fn fingerprint(&self) -> Result<String> {
        let mut h = Sha256::new();
        h.update(b"dawin-dataset-v1");
        h.update((self.numel as u64).to_le_bytes());
        for v in &self.inputs {
            h.update(v.to_bits().to_le_bytes());
        }
        for y in &self.labels {
            h.update(y.to_le_bytes());
        }
        Ok(hex(&h.finalize()))
    }
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of a file's bytes, as hex (checkpoint fingerprints for the cache).
pub fn file_fingerprint(path: impl AsRef<std::path::Path>) -> Result<String> {
    use std::io::Read;
    let path = path.as_ref();
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

/// A dataset on disk, read sample by sample through [`dawin_vit::ImageDataset`] (safetensors
/// file or image-folder tree): nothing is held in memory but the labels, so it scales to
/// ImageNet-sized sets. Fingerprint: SHA-256 of the file's bytes (safetensors), or of every image
/// file's path, size and modification time (folders), plus the labels and the input size.
#[derive(Debug)]
pub struct ImageFolderDataset {
    name: String,
    inner: dawin_vit::ImageDataset,
    labels: Vec<i64>,
}

impl ImageFolderDataset {
    /// Opens `path` for a model with input side `image_size`, named `name`. Errors on a missing
    /// path, an empty dataset or missing labels, naming the path.
    pub fn open(
        name: impl Into<String>,
        path: impl AsRef<std::path::Path>,
        image_size: usize,
    ) -> Result<Self> {
        let path = path.as_ref();
        if !path.exists() {
            return Err(Error::invalid(
                path.display().to_string(),
                "no such file or directory",
            ));
        }
        let inner = dawin_vit::ImageDataset::open(path, image_size)?;
        let labels = inner
            .labels()
            .ok_or_else(|| Error::invalid(path.display().to_string(), "has no labels"))?
            .to_vec();
        Ok(ImageFolderDataset {
            name: name.into(),
            inner,
            labels,
        })
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
        let numel = self.sample_numel();
        let mut out = vec![0f32; indices.len() * numel];
        for (chunk, &i) in out.chunks_mut(numel).zip(indices) {
            self.inner.load(i, chunk)?;
        }
        Ok(out)
    }
    fn fingerprint(&self) -> Result<String> {
        let path = self.inner.path();
        let mut h = Sha256::new();
        h.update(b"dawin-image-dataset-v1");
        h.update((self.inner.image_size() as u64).to_le_bytes());
        if path.is_dir() {
            for i in 0..self.len() {
                let f = self.inner.sample_name(i);
                let m = std::fs::metadata(&f).map_err(|e| Error::io(&f, e))?;
                let mtime = m
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos());
                h.update((f.len() as u64).to_le_bytes());
                h.update(f.as_bytes());
                h.update(m.len().to_le_bytes());
                h.update(mtime.to_le_bytes());
            }
        } else {
            h.update(file_fingerprint(path)?.as_bytes());
        }
        for y in &self.labels {
            h.update(y.to_le_bytes());
        }
        Ok(hex(&h.finalize()))
    }
}
