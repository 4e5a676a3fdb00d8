//! One interface over safetensors and PyTorch checkpoints, so that callers treat both alike.

use std::borrow::Cow;
use std::path::Path;

use crate::dtype::{DType, Param};
use crate::error::{Error, Result};
use crate::state_dict::{OwnedTensor, StateDict};
use crate::torch::TorchCheckpoint;

/// Read access to a checkpoint's tensors, whatever holds them: names, dtypes, shapes, data as
/// row-major little-endian bytes (borrowed when the file stores them that way), as `f32` or in
/// their own half type, and the file's string metadata.
///
/// This is the one tensor-source abstraction of the workspace: safetensors files
/// ([`StateDict`]), PyTorch files ([`TorchCheckpoint`]), either ([`CheckpointFile`]), and in
/// `dawin-vit` shard indexes, directories and tensors held in memory all implement it, so every
/// loader reads every form the same way, one tensor at a time.
///
/// Names are listed in the source's order: sorted for safetensors ([`StateDict`]), state-dict
/// order for PyTorch files. Tensors of a dtype without a [`DType`] (PyTorch `i32`, `i16`, `i8`,
/// `bool`) are listed but their `dtype`/data calls fail with [`Error::UnsupportedDtype`], as
/// safetensors dtypes outside [`DType`] do; [`TorchCheckpoint`] itself reads them.
pub trait TensorSource {
    /// How errors and reports name this source: the file path, a shard index, `<memory>`.
    fn source_name(&self) -> String;
    /// Tensor names, in the source's order.
    fn tensor_names(&self) -> Vec<&str>;
    /// The dtype and shape of `name`; errors name the tensor and the file.
    fn tensor_meta(&self, name: &str) -> Result<(DType, Vec<usize>)>;
    /// The elements of `name`, row-major, little-endian: borrowed from the file when it stores
    /// them so (always for safetensors; contiguous PyTorch tensors), gathered otherwise.
    fn tensor_bytes(&self, name: &str) -> Result<Cow<'_, [u8]>>;

    /// The shape of `name`; `None` when it is absent or of a dtype without a [`DType`].
    fn tensor_shape(&self, name: &str) -> Option<Vec<usize>> {
        self.tensor_meta(name).ok().map(|(_, s)| s)
    }

    /// A string of the file's metadata (safetensors `__metadata__`); `None` when absent or when
    /// the format has none.
    fn metadata_value(&self, key: &str) -> Option<String> {
        let _ = key;
        None
    }

    /// The elements of `name` converted to `f32` (see [`crate::TensorView::to_f32_vec`]).
    fn tensor_f32(&self, name: &str) -> Result<Vec<f32>> {
        let (dtype, shape) = self.tensor_meta(name)?;
        let bytes = self.tensor_bytes(name)?;
        let view = crate::TensorView {
            name,
            dtype,
            shape: &shape,
            bytes: &bytes,
        };
        Ok(view.to_f32_vec())
    }

    /// The elements of `name` in their own dtype `T` (`f32`, `f16` or `bf16`); an error names the
    /// tensor, the file and both dtypes if `T` is not the tensor's dtype.
    fn tensor_vec<T: Param>(&self, name: &str) -> Result<Vec<T>>
    where
        Self: Sized,
    {
        let (dtype, _) = self.tensor_meta(name)?;
        if dtype != T::DTYPE {
            return Err(Error::Mismatch(format!(
                "tensor `{name}` in {} is {dtype}, not {}",
                self.source_name(),
                T::DTYPE
            )));
        }
        Ok(bytemuck::pod_collect_to_vec(&self.tensor_bytes(name)?))
    }

    /// An owned, contiguous copy of `name`.
    fn tensor_owned(&self, name: &str) -> Result<OwnedTensor> {
        let (dtype, shape) = self.tensor_meta(name)?;
        Ok(OwnedTensor {
            name: name.to_string(),
            dtype,
            shape,
            bytes: self.tensor_bytes(name)?.into_owned(),
        })
    }
}

impl TensorSource for StateDict {
    fn source_name(&self) -> String {
        self.path().display().to_string()
    }
    fn tensor_names(&self) -> Vec<&str> {
        self.names()
    }
    fn tensor_meta(&self, name: &str) -> Result<(DType, Vec<usize>)> {
        let t = self.tensor(name)?;
        Ok((t.dtype, t.shape.to_vec()))
    }
    fn tensor_bytes(&self, name: &str) -> Result<Cow<'_, [u8]>> {
        Ok(Cow::Borrowed(self.tensor(name)?.bytes))
    }
    fn tensor_shape(&self, name: &str) -> Option<Vec<usize>> {
        self.get(name).map(|t| t.shape.to_vec())
    }
    fn metadata_value(&self, key: &str) -> Option<String> {
        self.metadata().and_then(|m| m.get(key).cloned())
    }
}

impl TensorSource for TorchCheckpoint {
    fn source_name(&self) -> String {
        self.path().display().to_string()
    }
    fn tensor_names(&self) -> Vec<&str> {
        self.names()
    }
    fn tensor_meta(&self, name: &str) -> Result<(DType, Vec<usize>)> {
        let t = self.tensor(name)?;
        Ok((t.dtype_or_err()?, t.shape().to_vec()))
    }
    fn tensor_bytes(&self, name: &str) -> Result<Cow<'_, [u8]>> {
        let t = self.tensor(name)?;
        t.dtype_or_err()?;
        Ok(t.contiguous_bytes())
    }
}

/// A checkpoint of either kind, chosen from the file's first bytes (a zip archive or a pickle:
/// PyTorch; otherwise safetensors).
///
/// ```no_run
/// use dawin_core::{CheckpointFile, TensorSource};
/// for path in ["finetune_clipvitb32.pt", "finetuned.safetensors"] {
///     let ckpt = CheckpointFile::open(path)?;
///     let proj = ckpt.tensor_f32("model.visual.proj")?;
///     # let _ = proj;
/// }
/// # Ok::<(), dawin_core::Error>(())
/// ```
#[derive(Debug)]
pub enum CheckpointFile {
    /// A safetensors file.
    Safetensors(StateDict),
    /// A PyTorch file (zip, legacy, pickle or TorchScript).
    Torch(TorchCheckpoint),
}

impl CheckpointFile {
    /// Opens `path` as PyTorch if it starts like a zip archive (`PK`) or a pickle (`0x80`) and
    /// not like safetensors (an 8-byte header length that fits the file, then `{`), as
    /// safetensors otherwise (then as PyTorch if safetensors refuses a file that starts like a
    /// zip or a pickle, text opcodes of protocols 0/1 included). Errors name the file.
    pub fn open(path: impl AsRef<Path>) -> Result<CheckpointFile> {
        let path = path.as_ref();
        let mut head = Vec::with_capacity(9);
        let len = {
            use std::io::Read;
            let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
            let len = f.metadata().map_err(|e| Error::io(path, e))?.len();
            f.take(9)
                .read_to_end(&mut head)
                .map_err(|e| Error::io(path, e))?;
            len
        };
        let torch_like = head.starts_with(b"PK") || head.first() == Some(&0x80);
        // safetensors: an 8-byte little-endian header length N (whose low bytes may well be
        // `PK` or 0x80), then the JSON header `{…`, within the file.
        let safetensors_like = head.len() == 9 && head[8] == b'{' && {
            let n = u64::from_le_bytes(head[..8].try_into().expect("8 bytes"));
            n.checked_add(8).is_some_and(|end| end <= len)
        };
        if torch_like && !safetensors_like {
            return Ok(CheckpointFile::Torch(TorchCheckpoint::open(path)?));
        }
        match StateDict::open(path) {
            Ok(s) => Ok(CheckpointFile::Safetensors(s)),
            Err(e) if torch_like => TorchCheckpoint::open(path)
                .map(CheckpointFile::Torch)
                .map_err(|_| e),
            // A protocol 0/1 pickle starts with a text opcode, which safetensors refuses.
            Err(e) if head.first().is_some_and(|b| b"(}]cN".contains(b)) => {
                TorchCheckpoint::open(path)
                    .map(CheckpointFile::Torch)
                    .map_err(|_| e)
            }
            Err(e) => Err(e),
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        match self {
            CheckpointFile::Safetensors(s) => s.path(),
            CheckpointFile::Torch(t) => t.path(),
        }
    }

    /// The file's layout in words: `safetensors`, `torch.save (zip)`, `torch.save (legacy)`,
    /// `pickle.dump (legacy storages)` or `TorchScript`.
    pub fn format_name(&self) -> &'static str {
        match self {
            CheckpointFile::Safetensors(_) => "safetensors",
            CheckpointFile::Torch(t) => t.format().name(),
        }
    }

    fn inner(&self) -> &dyn TensorSource {
        match self {
            CheckpointFile::Safetensors(s) => s,
            CheckpointFile::Torch(t) => t,
        }
    }
}

impl TensorSource for CheckpointFile {
    fn source_name(&self) -> String {
        self.inner().source_name()
    }
    fn tensor_names(&self) -> Vec<&str> {
        self.inner().tensor_names()
    }
    fn tensor_meta(&self, name: &str) -> Result<(DType, Vec<usize>)> {
        self.inner().tensor_meta(name)
    }
    fn tensor_bytes(&self, name: &str) -> Result<Cow<'_, [u8]>> {
        self.inner().tensor_bytes(name)
    }
    fn tensor_shape(&self, name: &str) -> Option<Vec<usize>> {
        self.inner().tensor_shape(name)
    }
    fn metadata_value(&self, key: &str) -> Option<String> {
        self.inner().metadata_value(key)
    }
}
