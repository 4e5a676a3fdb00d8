//! Checkpoints as safetensors files, memory-mapped with `memmap2` and read without copying.
//!
//! ```no_run
//! use dawin_core::StateDict;
//! let theta0 = StateDict::open("zeroshot.safetensors")?;
//! let theta1 = StateDict::open("finetuned.safetensors")?;
//! theta0.check_compatible(&theta1)?; // same names, shapes and dtypes, or an error naming the tensor
//! let w = theta0.tensor("visual.proj")?.to_f32_vec();
//! # Ok::<(), dawin_core::Error>(())
//! ```

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use crate::dtype::{DType, Param};
use crate::error::{Error, Result};

/// One tensor's entry in the file header.
#[derive(Debug, Clone)]
struct Entry {
    name: String,
    dtype: Option<DType>,
    raw_dtype: String,
    shape: Vec<usize>,
    /// Byte range inside the mapped file.
    start: usize,
    end: usize,
}

/// A safetensors checkpoint, memory-mapped. Tensor data are borrowed from the mapping.
pub struct StateDict {
    path: PathBuf,
    mmap: memmap2::Mmap,
    /// Sorted by name.
    entries: Vec<Entry>,
    metadata: Option<HashMap<String, String>>,
}

impl std::fmt::Debug for StateDict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateDict")
            .field("path", &self.path)
            .field("tensors", &self.entries.len())
            .finish()
    }
}

/// A borrowed view of one tensor: row-major, little-endian bytes.
#[derive(Debug, Clone, Copy)]
pub struct TensorView<'a> {
    /// The tensor's name as the file spells it.
    pub name: &'a str,
    /// Its dtype.
    pub dtype: DType,
    /// Its shape (row-major).
    pub shape: &'a [usize],
    /// Its raw little-endian bytes.
    pub bytes: &'a [u8],
}

impl<'a> TensorView<'a> {
    /// Number of elements (product of the shape; 1 for a scalar).
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// The data as `&[T]` without copying, when `T` is the tensor's dtype and the bytes are
    /// suitably aligned in the file; `None` otherwise (use [`TensorView::to_vec`]).
    pub fn as_slice<T: Param>(&self) -> Option<&'a [T]> {
        if self.dtype != T::DTYPE {
            return None;
        }
        bytemuck::try_cast_slice(self.bytes).ok()
    }

    /// The data as `T`, borrowed when aligned and copied otherwise. `None` if the dtype differs.
    pub fn as_cow<T: Param>(&self) -> Option<Cow<'a, [T]>> {
        if self.dtype != T::DTYPE {
            return None;
        }
        Some(match bytemuck::try_cast_slice(self.bytes) {
            Ok(s) => Cow::Borrowed(s),
            Err(_) => Cow::Owned(bytemuck::pod_collect_to_vec(self.bytes)),
        })
    }

    /// The data as `T`, copied (any alignment). `None` if the dtype differs.
    pub fn to_vec<T: Param>(&self) -> Option<Vec<T>> {
        self.as_cow::<T>().map(Cow::into_owned)
    }

    /// The data converted to `f32`, whatever the dtype (integers and `f64` are cast with `as`).
    pub fn to_f32_vec(&self) -> Vec<f32> {
        match self.dtype {
            DType::F32 => bytemuck::pod_collect_to_vec(self.bytes),
            DType::F16 => convert::<half::f16>(self.bytes),
            DType::BF16 => convert::<half::bf16>(self.bytes),
            DType::F64 => {
                let v: Vec<f64> = bytemuck::pod_collect_to_vec(self.bytes);
                v.into_iter().map(|x| x as f32).collect()
            }
            DType::I64 => {
                let v: Vec<i64> = bytemuck::pod_collect_to_vec(self.bytes);
                v.into_iter().map(|x| x as f32).collect()
            }
            DType::U8 => self.bytes.iter().map(|&x| x as f32).collect(),
        }
    }

    /// The data as `i64` (for labels); `None` unless the dtype is `I64`.
    pub fn to_i64_vec(&self) -> Option<Vec<i64>> {
        (self.dtype == DType::I64).then(|| bytemuck::pod_collect_to_vec(self.bytes))
    }

    /// An owned copy of this tensor.
    pub fn to_owned_tensor(&self) -> OwnedTensor {
        OwnedTensor {
            name: self.name.to_string(),
            dtype: self.dtype,
            shape: self.shape.to_vec(),
            bytes: self.bytes.to_vec(),
        }
    }
}

fn convert<T: Param>(bytes: &[u8]) -> Vec<f32> {
    let v: Cow<[T]> = match bytemuck::try_cast_slice(bytes) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => Cow::Owned(bytemuck::pod_collect_to_vec(bytes)),
    };
    let mut out = vec![0.0f32; v.len()];
    T::slice_to_f32(&v, &mut out);
    out
}

impl StateDict {
    /// Memory-maps `path` and parses its safetensors header. Errors name the file: missing,
    /// unreadable, truncated, or not safetensors at all.
    pub fn open(path: impl AsRef<Path>) -> Result<StateDict> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
        // SAFETY: the mapping is read-only; like every mmap-based loader we assume the file is not
        // truncated by another process while mapped.
        let mmap = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(&path, e))?;
        let (n, meta) =
            safetensors::SafeTensors::read_metadata(&mmap).map_err(|e| Error::Format {
                path: path.clone(),
                format: "safetensors",
                reason: e.to_string(),
            })?;
        let base = 8 + n;
        let mut entries: Vec<Entry> = meta
            .tensors()
            .into_iter()
            .map(|(name, info)| Entry {
                dtype: DType::from_safetensors(info.dtype),
                raw_dtype: format!("{:?}", info.dtype),
                shape: info.shape.clone(),
                start: base + info.data_offsets.0,
                end: base + info.data_offsets.1,
                name,
            })
            .collect();
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        let metadata = meta.metadata().clone();
        Ok(StateDict {
            path,
            mmap,
            entries,
            metadata,
        })
    }

    /// The file this was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the file holds no tensor.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Tensor names, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.entries.iter().map(|e| e.name.as_str()).collect()
    }

    /// The `__metadata__` string map of the header, if any.
    pub fn metadata(&self) -> Option<&HashMap<String, String>> {
        self.metadata.as_ref()
    }

    /// Total bytes of tensor data.
    pub fn data_bytes(&self) -> usize {
        self.entries.iter().map(|e| e.end - e.start).sum()
    }

    fn entry(&self, name: &str) -> Option<&Entry> {
        self.entries
            .binary_search_by(|e| e.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.entries[i])
    }

    fn view<'a>(&'a self, e: &'a Entry) -> Result<TensorView<'a>> {
        let dtype = e.dtype.ok_or_else(|| Error::UnsupportedDtype {
            name: format!("{} in {}", e.name, self.path.display()),
            dtype: e.raw_dtype.clone(),
        })?;
        Ok(TensorView {
            name: &e.name,
            dtype,
            shape: &e.shape,
            bytes: &self.mmap[e.start..e.end],
        })
    }

    /// The tensor called `name`, or `None` if absent or of a dtype DaWin does not handle.
    pub fn get(&self, name: &str) -> Option<TensorView<'_>> {
        self.entry(name).and_then(|e| self.view(e).ok())
    }

    /// The tensor called `name`; the error names the tensor and the file.
    pub fn tensor(&self, name: &str) -> Result<TensorView<'_>> {
        let e = self.entry(name).ok_or_else(|| Error::MissingTensor {
            path: self.path.clone(),
            name: name.to_string(),
        })?;
        self.view(e)
    }

    /// All tensors in name order. Fails on the first tensor of an unsupported dtype.
    pub fn tensors(&self) -> Result<Vec<TensorView<'_>>> {
        self.entries.iter().map(|e| self.view(e)).collect()
    }

    /// Checks that `other` has exactly the same tensor names, shapes and dtypes. The error names
    /// the first mismatching tensor (in name order), both files and both shapes or dtypes.
    pub fn check_compatible(&self, other: &StateDict) -> Result<()> {
        let (a, b) = (&self.entries, &other.entries);
        let (pa, pb) = (self.path.display(), other.path.display());
        let (mut i, mut j) = (0, 0);
        while i < a.len() || j < b.len() {
            match (a.get(i), b.get(j)) {
                (Some(x), Some(y)) if x.name == y.name => {
                    if x.shape != y.shape {
                        return Err(Error::Mismatch(format!(
                            "tensor `{}` has shape {:?} in {pa} but {:?} in {pb}",
                            x.name, x.shape, y.shape
                        )));
                    }
                    if x.raw_dtype != y.raw_dtype {
                        return Err(Error::Mismatch(format!(
                            "tensor `{}` has dtype {} in {pa} but {} in {pb}",
                            x.name, x.raw_dtype, y.raw_dtype
                        )));
                    }
                    i += 1;
                    j += 1;
                }
                (Some(x), Some(y)) if x.name < y.name => {
                    return Err(Error::Mismatch(format!(
                        "tensor `{}` is in {pa} but not in {pb}",
                        x.name
                    )))
                }
                (Some(x), None) => {
                    return Err(Error::Mismatch(format!(
                        "tensor `{}` is in {pa} but not in {pb}",
                        x.name
                    )))
                }
                (_, Some(y)) => {
                    return Err(Error::Mismatch(format!(
                        "tensor `{}` is in {pb} but not in {pa}",
                        y.name
                    )))
                }
                (None, None) => unreachable!(),
            }
        }
        Ok(())
    }
}

/// An owned tensor, e.g. the output of a merge, ready to be written.
#[derive(Debug, Clone, PartialEq)]
pub struct OwnedTensor {
    /// The tensor's name.
    pub name: String,
    /// Its dtype.
    pub dtype: DType,
    /// Its shape (row-major).
    pub shape: Vec<usize>,
    /// Its raw little-endian bytes.
    pub bytes: Vec<u8>,
}

impl OwnedTensor {
    /// A tensor from typed data. Panics if `shape` does not hold `data.len()` elements.
    pub fn from_slice<T: Param>(name: impl Into<String>, shape: Vec<usize>, data: &[T]) -> Self {
        Self::from_pod(name, T::DTYPE, shape, data)
    }

    /// An `f32` tensor.
    pub fn from_f32(name: impl Into<String>, shape: Vec<usize>, data: &[f32]) -> Self {
        Self::from_slice(name, shape, data)
    }

    /// An `i64` tensor (labels).
    pub fn from_i64(name: impl Into<String>, shape: Vec<usize>, data: &[i64]) -> Self {
        Self::from_pod(name, DType::I64, shape, data)
    }

    /// A `u8` tensor (raw images).
    pub fn from_u8(name: impl Into<String>, shape: Vec<usize>, data: &[u8]) -> Self {
        Self::from_pod(name, DType::U8, shape, data)
    }

    fn from_pod<T: bytemuck::Pod>(
        name: impl Into<String>,
        dtype: DType,
        shape: Vec<usize>,
        data: &[T],
    ) -> Self {
        let name = name.into();
        assert_eq!(
            shape.iter().product::<usize>(),
            data.len(),
            "tensor `{name}`: shape {shape:?} does not hold {} elements",
            data.len()
        );
        OwnedTensor {
            name,
            dtype,
            shape,
            bytes: bytemuck::cast_slice(data).to_vec(),
        }
    }

    /// A borrowed view of this tensor.
    pub fn view(&self) -> TensorView<'_> {
        TensorView {
            name: &self.name,
            dtype: self.dtype,
            shape: &self.shape,
            bytes: &self.bytes,
        }
    }
}

struct Out<'a>(&'a OwnedTensor);

impl safetensors::View for Out<'_> {
    fn dtype(&self) -> safetensors::Dtype {
        self.0.dtype.to_safetensors()
    }
    fn shape(&self) -> &[usize] {
        &self.0.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.0.bytes)
    }
    fn data_len(&self) -> usize {
        self.0.bytes.len()
    }
}

/// Writes `tensors` as a safetensors file, atomically: the data go to a temporary file in the
/// same directory, which is synced and then renamed onto `path`. On any error `path` is left as
/// it was and the temporary file is removed.
pub fn write_safetensors(
    path: impl AsRef<Path>,
    tensors: &[OwnedTensor],
    metadata: Option<HashMap<String, String>>,
) -> Result<()> {
    let path = path.as_ref();
    let mut seen = std::collections::HashSet::new();
    for t in tensors {
        if !seen.insert(t.name.as_str()) {
            return Err(Error::arg(
                "tensors",
                format!("tensor `{}` appears twice", t.name),
            ));
        }
        if t.shape.iter().product::<usize>() * t.dtype.size() != t.bytes.len() {
            return Err(Error::arg(
                "tensors",
                format!(
                    "tensor `{}`: {} bytes do not fit shape {:?} of {}",
                    t.name,
                    t.bytes.len(),
                    t.shape,
                    t.dtype
                ),
            ));
        }
    }
    crate::atomic_write(path, |tmp| {
        safetensors::serialize_to_file(
            tensors.iter().map(|t| (t.name.as_str(), Out(t))),
            metadata,
            tmp,
        )
        .map_err(|e| match e {
            safetensors::SafeTensorError::IoError(e) => e,
            other => std::io::Error::other(other.to_string()),
        })
    })
}
