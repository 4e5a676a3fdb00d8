//! Evaluation datasets: an image-folder tree or a safetensors file, preprocessed for the model.
//!
//! * **Image folder**: one sub-folder per class, classes sorted by name, label = index of the class
//!   in that order (torchvision's `ImageFolder`). Files ending in `.jpg`, `.jpeg` or `.png` (any
//!   case) are samples, sorted by path; other files are ignored.
//! * **Safetensors file**: `images`, either u8 `[N, H, W, 3]` raw RGB (any `H × W`, preprocessed
//!   like an image file) or f32 `[N, 3, S, S]` already preprocessed (used as is; `S` must be the
//!   model's input size), and optionally `labels` i64 `[N]`.
//!
//! A sample that cannot be read is an error naming it; with `skip_bad_files` it is reported in
//! [`Batch::skipped`] instead and the rest of the batch is loaded.
//!
//! **Workers.** [`ImageDataset::load_into`] decodes and preprocesses the samples of a batch on a
//! [`DecodePool`] (a fixed number of threads, each with its own [`Preprocessor`] kept for the
//! life of the thread, so buffers, resize tables and the JPEG decoder are reused), every sample
//! written straight into its slot of the caller's batch buffer: the order is the order asked,
//! whatever the number of workers. [`ImageDataset::load_batch`] does the same on rayon's global
//! pool.

use std::cell::RefCell;
use std::ops::Range;
use std::path::{Path, PathBuf};

use dawin_core::{DType, StateDict};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::preprocess::{Preprocessor, RgbImage};
use crate::source::ImageSource;

thread_local! {
    /// The preprocessor of this thread (a decode worker keeps its buffers between samples).
    static PREPROCESSOR: RefCell<Preprocessor> = RefCell::new(Preprocessor::new());
}

/// Runs `f` with this thread's [`Preprocessor`].
fn with_preprocessor<T>(f: impl FnOnce(&mut Preprocessor) -> T) -> T {
    PREPROCESSOR.with(|p| match p.try_borrow_mut() {
        Ok(mut p) => f(&mut p),
        // Re-entered on this thread (a source calling back into a dataset): a fresh one.
        Err(_) => f(&mut Preprocessor::new()),
    })
}

/// A pool of decoding threads for [`ImageDataset::load_into`]: `workers` threads (0 = one per
/// core), each keeping its own [`Preprocessor`]. Create one per process and share it; the
/// threads live as long as the pool.
#[derive(Debug)]
pub struct DecodePool {
    pool: rayon::ThreadPool,
}

impl DecodePool {
    /// A pool of `workers` threads; 0 means one per core
    /// ([`std::thread::available_parallelism`]). Errors when the threads cannot be started.
    pub fn new(workers: usize) -> Result<Self> {
        let n = if workers == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            workers
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .thread_name(|i| format!("dawin-decode-{i}"))
            .build()
            .map_err(|e| Error::arg("workers", format!("cannot start {n} decode threads: {e}")))?;
        Ok(DecodePool { pool })
    }

    /// Number of worker threads.
    pub fn workers(&self) -> usize {
        self.pool.current_num_threads()
    }

    /// Runs `f` on the pool (rayon's parallel iterators inside it use the pool's threads).
    pub fn install<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        self.pool.install(f)
    }
}

const IMAGE_EXTENSIONS: [&str; 3] = ["jpg", "jpeg", "png"];

/// Images of a safetensors dataset.
#[derive(Debug)]
enum TensorImages {
    /// u8 `[N, H, W, 3]`.
    RawU8 { height: usize, width: usize },
    /// f32 `[N, 3, S, S]`.
    Preprocessed,
}

#[derive(Debug)]
enum Source {
    Folder { files: Vec<PathBuf> },
    Tensors { sd: StateDict, images: TensorImages },
    Custom(Box<dyn ImageSource>), // benchmark folders with a crop, WebDataset shards
}

/// A dataset of images for a model with input side `image_size`.
#[derive(Debug)]
pub struct ImageDataset {
    path: PathBuf,
    image_size: usize,
    len: usize,
    labels: Option<Vec<i64>>,
    class_names: Option<Vec<String>>,
    source: Source,
}

/// A sample that could not be loaded and was skipped.
#[derive(Clone, Debug, PartialEq)]
pub struct Skipped {
    /// Index of the sample in the dataset.
    pub index: usize,
    /// The file (image folder) or `file:images[i]` (safetensors).
    pub name: String,
    /// Why it was skipped.
    pub reason: String,
}

/// Preprocessed samples of a range of the dataset.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// `[indices.len(), 3, S, S]`, normalised.
    pub images: Vec<f32>,
    /// Dataset indices of the loaded samples, in order.
    pub indices: Vec<usize>,
    /// Labels of the loaded samples, when the dataset has labels.
    pub labels: Option<Vec<i64>>,
    /// Samples of the range that were skipped (only with `skip_bad_files`).
    pub skipped: Vec<Skipped>,
}

impl Batch {
    /// Number of loaded samples.
    pub fn len(&self) -> usize {
        self.indices.len()
    }
    /// True when no sample was loaded.
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }
}

fn dataset_err(path: &Path, msg: impl Into<String>) -> Error {
    Error::Dataset {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn is_image(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

fn collect_images(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let path = entry.map_err(io_err(dir))?.path();
        if path.is_dir() {
            collect_images(&path, out)?;
        } else if is_image(&path) {
            out.push(path);
        }
    }
    Ok(())
}

impl ImageDataset {
    /// Opens a dataset: a directory is an image-folder tree, a file a safetensors dataset.
    /// Errors on an empty dataset, bad tensors, or f32 images of another size than `image_size`.
    pub fn open(path: impl AsRef<Path>, image_size: usize) -> Result<Self> {
        let path = path.as_ref();
        if image_size == 0 {
            return Err(Error::arg("image_size", "must be > 0"));
        }
        let meta = std::fs::metadata(path).map_err(io_err(path))?;
        if meta.is_dir() {
            Self::open_folder(path, image_size)
        } else {
            Self::open_safetensors(path, image_size)
        }
    }

    fn open_folder(root: &Path, image_size: usize) -> Result<Self> {
        let mut classes = Vec::new();
        for entry in std::fs::read_dir(root).map_err(io_err(root))? {
            let p = entry.map_err(io_err(root))?.path();
            if p.is_dir() {
                let name = p
                    .file_name()
                    .and_then(|n| n.to_str())
                    .ok_or_else(|| dataset_err(&p, "class folder name is not UTF-8"))?
                    .to_string();
                classes.push(name);
            }
        }
        classes.sort();
        if classes.is_empty() {
            return Err(dataset_err(
                root,
                "no class sub-folder (expected one sub-folder per class)",
            ));
        }
        let mut files = Vec::new();
        let mut labels = Vec::new();
        for (label, class) in classes.iter().enumerate() {
            let mut class_files = Vec::new();
            collect_images(&root.join(class), &mut class_files)?;
            class_files.sort();
            labels.extend(std::iter::repeat_n(label as i64, class_files.len()));
            files.extend(class_files);
        }
        if files.is_empty() {
            return Err(dataset_err(
                root,
                "no .jpg, .jpeg or .png file in any class folder",
            ));
        }
        Ok(ImageDataset {
            path: root.to_path_buf(),
            image_size,
            len: files.len(),
            labels: Some(labels),
            class_names: Some(classes),
            source: Source::Folder { files },
        })
    }

    fn open_safetensors(path: &Path, image_size: usize) -> Result<Self> {
        let sd = StateDict::open(path)?;
        if !sd.names().contains(&"images") {
            return Err(dataset_err(path, "tensor `images` is missing"));
        }
        let bad_images = |what: String| {
            dataset_err(
                path,
                format!("tensor `images` is {what}; expected u8 [N, H, W, 3] or f32 [N, 3, {image_size}, {image_size}]"),
            )
        };
        let info = sd
            .tensor("images")
            .map_err(|e| bad_images(format!("unreadable ({e})")))?;
        let shape = info.shape.to_vec();
        let (len, images) = match (info.dtype, shape.as_slice()) {
            (DType::U8, &[n, h, w, 3]) if h > 0 && w > 0 => (
                n,
                TensorImages::RawU8 {
                    height: h,
                    width: w,
                },
            ),
            (DType::F32, &[n, 3, h, w]) => {
                if h != image_size || w != image_size {
                    return Err(dataset_err(
                        path,
                        format!(
                            "tensor `images` is f32 {shape:?}, but the model takes 3×{image_size}×{image_size} \
                             inputs (f32 images are used as they are; store u8 [N, H, W, 3] to have them resized)"
                        ),
                    ));
                }
                (n, TensorImages::Preprocessed)
            }
            (dt, s) => return Err(bad_images(format!("{} {s:?}", dt.name()))),
        };
        if len == 0 {
            return Err(dataset_err(path, "tensor `images` holds no image (N = 0)"));
        }
        let labels = if sd.names().contains(&"labels") {
            let l = sd.tensor("labels").map_err(|e| {
                dataset_err(
                    path,
                    format!("tensor `labels` is unreadable ({e}); expected i64 [{len}]"),
                )
            })?;
            if l.shape != [len] {
                return Err(dataset_err(
                    path,
                    format!(
                        "tensor `labels` has shape {:?}, expected [{len}] like `images`",
                        l.shape
                    ),
                ));
            }
            let labels = l.to_i64_vec().ok_or_else(|| {
                dataset_err(
                    path,
                    format!("tensor `labels` is {}; expected i64", l.dtype.name()),
                )
            })?;
            if let Some(i) = labels.iter().position(|&l| l < 0) {
                return Err(dataset_err(
                    path,
                    format!("labels[{i}] = {} is negative", labels[i]),
                ));
            }
            Some(labels)
        } else {
            None
        };
        Ok(ImageDataset {
            path: path.to_path_buf(),
            image_size,
            len,
            labels,
            class_names: None,
            source: Source::Tensors { sd, images },
        })
    }

    /// A dataset whose samples come from `source` (decoded RGB, then CLIP's transform), with
    /// `labels` (one per sample, none negative) and `class_names`; `path` names the dataset in
    /// errors. Errors on an empty source, `image_size == 0` or bad labels.
    pub fn from_source(
        path: impl AsRef<Path>,
        image_size: usize,
        source: Box<dyn ImageSource>,
        labels: Option<Vec<i64>>,
        class_names: Option<Vec<String>>,
    ) -> Result<Self> {
        let path = path.as_ref();
        if image_size == 0 {
            return Err(Error::arg("image_size", "must be > 0"));
        }
        if source.is_empty() {
            return Err(dataset_err(path, "holds no sample"));
        }
        if let Some(l) = &labels {
            if l.len() != source.len() {
                return Err(dataset_err(
                    path,
                    format!("{} labels for {} samples", l.len(), source.len()),
                ));
            }
            if let Some(i) = l.iter().position(|&y| y < 0) {
                return Err(dataset_err(
                    path,
                    format!("label {} of {} is negative", l[i], source.sample_name(i)),
                ));
            }
        }
        Ok(ImageDataset {
            path: path.to_path_buf(),
            image_size,
            len: source.len(),
            labels,
            class_names,
            source: Source::Custom(source),
        })
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the dataset holds no sample (never, for an opened dataset).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The dataset's file or folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The input side the samples are preprocessed to.
    pub fn image_size(&self) -> usize {
        self.image_size
    }

    /// Labels of all samples, when known.
    pub fn labels(&self) -> Option<&[i64]> {
        self.labels.as_deref()
    }

    /// Class names (image folders: the sorted sub-folder names).
    pub fn class_names(&self) -> Option<&[String]> {
        self.class_names.as_deref()
    }

    /// How errors and reports name sample `i`: its file, or `file:images[i]`.
    pub fn sample_name(&self, i: usize) -> String {
        match &self.source {
            Source::Folder { files } => files[i].display().to_string(),
            Source::Tensors { .. } => format!("{}:images[{i}]", self.path.display()),
            Source::Custom(src) => src.sample_name(i),
        }
    }

    /// Preprocesses sample `i` into `out` (`[3, S, S]`). Errors name the sample's file.
    pub fn load(&self, i: usize, out: &mut [f32]) -> Result<()> {
        let s = self.image_size;
        if i >= self.len {
            return Err(Error::arg(
                "index",
                format!("{i} is out of range for {} samples", self.len),
            ));
        }
        if out.len() != 3 * s * s {
            return Err(Error::arg(
                "out",
                format!("{} values, expected 3 × {s} × {s}", out.len()),
            ));
        }
        match &self.source {
            Source::Folder { files } => with_preprocessor(|p| p.preprocess_file(&files[i], s, out)),
            Source::Custom(src) => with_preprocessor(|p| src.preprocess_into(i, p, s, out)),
            Source::Tensors { sd, images } => {
                let bytes = sd.tensor("images")?.bytes;
                match *images {
                    TensorImages::RawU8 { height, width } => {
                        let n = height * width * 3;
                        let img = RgbImage::new(width, height, bytes[i * n..(i + 1) * n].to_vec())?;
                        with_preprocessor(|p| p.preprocess_rgb(&img, s, out))
                    }
                    TensorImages::Preprocessed => {
                        let n = 3 * s * s;
                        for (o, c) in out
                            .iter_mut()
                            .zip(bytes[i * n * 4..(i + 1) * n * 4].chunks_exact(4))
                        {
                            *o = f32::from_le_bytes(c.try_into().expect("4 bytes"));
                        }
                        if let Some(j) = out.iter().position(|v| !v.is_finite()) {
                            return Err(dataset_err(
                                &self.path,
                                format!("images[{i}] holds a non-finite value at offset {j}"),
                            ));
                        }
                        Ok(())
                    }
                }
            }
        }
    }

    /// Loads and preprocesses the samples `indices` into `out` (`[indices.len(), 3, S, S]`, each
    /// sample in its slot, in the order given) on the threads of `pool`. Without
    /// `skip_bad_files` the first bad sample in `indices` order is an error naming its file;
    /// with it, bad samples are returned (their slots in `out` are left as they were) and the
    /// others are loaded.
    pub fn load_into(
        &self,
        indices: &[usize],
        out: &mut [f32],
        pool: &DecodePool,
        skip_bad_files: bool,
    ) -> Result<Vec<Skipped>> {
        let per = 3 * self.image_size * self.image_size;
        if out.len() != indices.len() * per {
            return Err(Error::arg(
                "out",
                format!(
                    "{} values for {} samples of 3 × {s} × {s}",
                    out.len(),
                    indices.len(),
                    s = self.image_size
                ),
            ));
        }
        let results: Vec<Result<()>> = pool.install(|| {
            out.par_chunks_mut(per)
                .zip(indices.par_iter())
                .with_max_len(1)
                .map(|(o, &i)| self.load(i, o))
                .collect()
        });
        let mut skipped = Vec::new();
        for (r, &i) in results.into_iter().zip(indices) {
            match r {
                Ok(()) => {}
                Err(e) if skip_bad_files => skipped.push(Skipped {
                    index: i,
                    name: self.sample_name(i),
                    reason: e.to_string(),
                }),
                Err(e) => return Err(e),
            }
        }
        Ok(skipped)
    }

    /// Loads and preprocesses the samples of `range` in parallel. Without `skip_bad_files` the
    /// first bad sample is an error naming its file; with it, bad samples are left out and listed
    /// in [`Batch::skipped`].
    pub fn load_batch(&self, range: Range<usize>, skip_bad_files: bool) -> Result<Batch> {
        if range.start > range.end || range.end > self.len {
            return Err(Error::arg(
                "range",
                format!("{range:?} is out of range for {} samples", self.len),
            ));
        }
        let per = 3 * self.image_size * self.image_size;
        let loaded: Vec<(usize, Result<Vec<f32>>)> = range
            .into_par_iter()
            .map(|i| {
                let mut buf = vec![0.0f32; per];
                (i, self.load(i, &mut buf).map(|_| buf))
            })
            .collect();
        let mut batch = Batch {
            images: Vec::with_capacity(loaded.len() * per),
            indices: Vec::with_capacity(loaded.len()),
            labels: None,
            skipped: Vec::new(),
        };
        for (i, r) in loaded {
            match r {
                Ok(buf) => {
                    batch.images.extend_from_slice(&buf);
                    batch.indices.push(i);
                }
                Err(e) if skip_bad_files => batch.skipped.push(Skipped {
                    index: i,
                    name: self.sample_name(i),
                    reason: e.to_string(),
                }),
                Err(e) => return Err(e),
            }
        }
        batch.labels = self
            .labels
            .as_ref()
            .map(|l| batch.indices.iter().map(|&i| l[i]).collect());
        Ok(batch)
    }
}
