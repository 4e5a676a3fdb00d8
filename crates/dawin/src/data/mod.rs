//! Labelled datasets the pipeline evaluates: anything that can load samples by index.
//!
//! * [`Dataset`]: the trait the pipeline reads (samples by index, labels, a content fingerprint
//!   for the logits cache, and the [`ClassMapping`] from the head's classes to the dataset's);
//! * [`ImageFolderDataset`]: images on disk (an image folder, WebDataset `.tar` shards or a
//!   safetensors file) opened under the convention its name selects
//!   ([`dawin_vit::benchmarks`]: ImageNet, -V2, -R, -A, -Sketch, ObjectNet), decoded on a pool of
//!   worker threads;
//! * [`InMemoryDataset`]: preprocessed inputs in memory;
//! * [`WithClassMapping`]: any dataset labelled over a subset (or pooled groups) of the head's
//!   classes;
//! * [`for_each_batch`]: the pipelined data path — batch k + 1 is loaded on a background thread
//!   while the caller (the forward) works on batch k, with a bounded number of batches alive.
use crate::error::{Error, Result};
use dawin_vit::benchmarks::ClassMapping;
use sha2::{Digest, Sha256};

mod image;
mod prefetch;

pub use image::{DataOptions, ImageFolderDataset};
pub use prefetch::{for_each_batch, PREFETCH_DEPTH};

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
    /// [`load`](Self::load) into a reused buffer: `out` is replaced by the inputs of `indices`
    /// (`[indices.len(), sample_numel]`). The default calls `load`; datasets that decode files
    /// override it to write into `out` in place.
    fn load_into(&self, indices: &[usize], out: &mut Vec<f32>) -> Result<()> {
        *out = self.load(indices)?;
        Ok(())
    }
    /// A content hash: equal for equal content, different when any input or label changes
    /// (the logits cache keys on it).
    fn fingerprint(&self) -> Result<String>;
    /// How the head's classes map onto the dataset's, when the dataset is labelled over some of
    /// them: dataset class `k` is the group of head classes `groups()[k]`, and every logit row is
    /// mapped before anything else (entropies, λ, argmax) by `z'_k = max_{c ∈ group k} z_c`
    /// ([`ClassMapping::pool`]). One head class per group is the plain class subset
    /// `z' = z[subset]` (ImageNet-R and -A: 200 of ImageNet's 1000); ObjectNet pools 1–3
    /// ImageNet classes per class. `None` (the default): labels are head classes.
    fn class_mapping(&self) -> Option<&ClassMapping> {
        None
    }
    /// The number of classes the head must have, when the dataset's convention fixes it (the
    /// paper's ImageNet datasets: an ImageNet-1k head of 1000 classes); `None` (the default):
    /// any head that holds the labels.
    fn head_classes(&self) -> Option<usize> {
        None
    }
    /// What was applied to read the dataset (convention, labelling, mapping, crop), one line,
    /// for the command line and the report; `None` when there is nothing to say.
    fn describe(&self) -> Option<String> {
        None
    }
    /// Warnings about the dataset (classes without a folder, files left out), one line each.
    fn notes(&self) -> Vec<String> {
        Vec::new()
    }
}

/// A dataset whose labels index a subset, or pooled groups, of the head's classes
/// ([`Dataset::class_mapping`]); it replaces any mapping of the inner dataset. Its fingerprint
/// is the inner dataset's: cached logits are the full head's, mapped after.
#[derive(Clone, Debug)]
pub struct WithClassMapping<D> {
    inner: D,
    mapping: ClassMapping,
}

/// The former name of [`WithClassMapping`] (a class subset is a mapping of one head class per
/// dataset class: [`WithClassMapping::subset`]).
pub type WithClassSubset<D> = WithClassMapping<D>;

impl<D: Dataset> WithClassMapping<D> {
    /// `inner`, whose label `y` means the head classes `mapping.groups()[y]` (pooled by max).
    /// Errors (naming the dataset) on a label `≥ mapping.len()`.
    pub fn new(inner: D, mapping: ClassMapping) -> Result<Self> {
        let k = mapping.len() as i64;
        if let Some(i) = inner.labels().iter().position(|&y| y < 0 || y >= k) {
            return Err(Error::invalid(
                format!("dataset `{}`", inner.name()),
                format!(
                    "label {} of sample {i} is not an index into its class subset ({k} classes)",
                    inner.labels()[i]
                ),
            ));
        }
        Ok(WithClassMapping { inner, mapping })
    }

    /// `inner`, whose label `y` means head class `subset[y]`. Errors (naming the dataset): an
    /// empty subset, a class listed twice, a label `≥ subset.len()`.
    pub fn subset(inner: D, subset: Vec<usize>) -> Result<Self> {
        let what = || format!("class subset of dataset `{}`", inner.name());
        if subset.is_empty() {
            return Err(Error::invalid(what(), "is empty"));
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(c) = subset.iter().find(|&&c| !seen.insert(c)) {
            return Err(Error::invalid(what(), format!("lists class {c} twice")));
        }
        let mapping = ClassMapping::from_subset(&subset)
            .map_err(|e| Error::invalid(what(), e.to_string()))?;
        Self::new(inner, mapping)
    }

    /// The wrapped dataset.
    pub fn inner(&self) -> &D {
        &self.inner
    }
}

impl<D: Dataset> Dataset for WithClassMapping<D> {
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
    fn load_into(&self, indices: &[usize], out: &mut Vec<f32>) -> Result<()> {
        self.inner.load_into(indices, out)
    }
    fn fingerprint(&self) -> Result<String> {
        self.inner.fingerprint()
    }
    fn class_mapping(&self) -> Option<&ClassMapping> {
        Some(&self.mapping)
    }
    fn head_classes(&self) -> Option<usize> {
        self.inner.head_classes()
    }
    fn describe(&self) -> Option<String> {
        let how = match self.mapping.subset() {
            Some(_) => format!(
                "restricted to a class subset of {} head classes",
                self.mapping.len()
            ),
            None => format!(
                "pooled to {} classes (max over each group)",
                self.mapping.len()
            ),
        };
        Some(match self.inner.describe() {
            Some(d) => format!("{d}; logits then {how} (--class-subset)"),
            None => format!("logits {how} (--class-subset)"),
        })
    }
    fn notes(&self) -> Vec<String> {
        self.inner.notes()
    }
}

/// Checks a dataset against a head of `num_classes` classes: the head its convention needs
/// ([`Dataset::head_classes`]), every head class its mapping names must exist, and every label
/// must be one of its classes (the mapping's, else the head's). Errors name the dataset and the
/// offending sample or class.
pub fn check_head(d: &dyn Dataset, num_classes: usize) -> Result<()> {
    let what = || format!("dataset `{}`", d.name());
    if let Some(need) = d.head_classes().filter(|&n| n != num_classes) {
        return Err(Error::invalid(
            what(),
            format!(
                "its convention needs an ImageNet-1k head of {need} classes, the head has \
                 {num_classes} (name the dataset otherwise to read it as a plain image folder)"
            ),
        ));
    }
    if let Some(m) = d.class_mapping() {
        if m.min_head_classes() > num_classes {
            return Err(Error::invalid(
                what(),
                format!(
                    "its class mapping names head class {} (an ImageNet-1k head is needed), the \
                     head has {num_classes} classes",
                    m.min_head_classes() - 1
                ),
            ));
        }
    }
    let c = d.class_mapping().map_or(num_classes, ClassMapping::len) as i64;
    if let Some(i) = d.labels().iter().position(|&y| y < 0 || y >= c) {
        return Err(Error::invalid(
            what(),
            format!(
                "label {} of sample {i} is not a class of the head ({c} classes)",
                d.labels()[i]
            ),
        ));
    }
    Ok(())
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
pub(crate) fn hex(bytes: &[u8]) -> String {
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
