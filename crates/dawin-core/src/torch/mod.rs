//! PyTorch checkpoints read without Python and without running any of their code.
//!
//! [`TorchCheckpoint::open`] (or [`open_torch`]) memory-maps a `.pt`/`.pth`/`.bin`/`.pkl` file and
//! returns its tensors in state-dict order, with dotted names exactly as PyTorch's `state_dict()`
//! (or the saved dict) spells them, each with its dtype, shape, strides and storage offset; the
//! data stay in the mapping until read. Forms read:
//!
//! | form | written by | layout |
//! |---|---|---|
//! | [`TorchFormat::Zip`] | `torch.save` (PyTorch ≥ 1.6) | zip: `<root>/data.pkl`, `<root>/data/<key>` (stored, 64-byte aligned) |
//! | [`TorchFormat::Legacy`] | `torch.save(…, _use_new_zipfile_serialization=False)` | magic, version, sys_info, object pickle, key list, then per key an 8-byte little-endian count and the raw bytes |
//! | [`TorchFormat::Pickle`] | `pickle.dump` (WiSE-FT) | one pickle whose storages are `torch.storage._load_from_bytes(<legacy torch.save>)` |
//! | [`TorchFormat::TorchScript`] | `torch.jit.save` (OpenAI's `ViT-B-32.pt`) | zip with `data.pkl` of `__torch__.…` objects, `code/`, `constants.pkl` |
//!
//! The root may be a state dict (flat or nested), a whole pickled `nn.Module` (names rebuilt from
//! `_parameters`, persistent `_buffers` and `_modules`, as `state_dict()` does), a TorchScript
//! module (its `__parameters__`/`__buffers__` from `code/`), or any object or dict holding those.
//!
//! **Inert.** The pickle VM turns opcodes into values and never imports or calls
//! anything: class and function references stay names, and a call of anything but PyTorch's tensor
//! rebuild functions and a few containers (`collections.OrderedDict`, `builtins.set`, `torch.Size`,
//! …) becomes an inert value (class name and arguments) that [`TorchCheckpoint::ignored`] reports.
//! A pickle whose payload is `os.system(…)` therefore does nothing; if it holds no tensors the
//! error says what its root was.
//!
//! **Bounded.** Every read is bounds-checked; everything the reader allocates besides the memory
//! map is charged to a budget of [`BUDGET_FACTOR`] × the file size + [`BUDGET_SLACK`] (no
//! `BINBYTES`/`LONG4` length is trusted beyond what the file holds); the memo, the mark stack,
//! tensor ranks and the object-graph walk are bounded too. The tests check, with a counting
//! allocator, that the reader's peak heap stays below 16 × the file size + 8 MiB on randomly
//! mutated fixtures and on opcode floods. Errors name the file and the pickle,
//! the byte offset and the opcode, or the tensor and storage key.
//!
//! Bytes are never copied out of the map for stored zip entries and legacy storages, including
//! the nested legacy blobs of `pickle.dump` files (tracked by offset). Deflated zip entries (not
//! written by PyTorch, but a re-zipped archive may have them) are inflated into memory, within the
//! budget.
//!
//! ```no_run
//! use dawin_core::torch::{open_torch, TorchDType};
//! let ckpt = open_torch("head_Cars.pt")?;                 // a pickled ClassificationHead module
//! let w = ckpt.tensor("weight")?;
//! assert_eq!(w.dtype(), TorchDType::F32);
//! let rows = w.shape()[0];
//! let normalize = ckpt.attribute("normalize").and_then(|a| a.as_bool()).unwrap_or(false);
//! let data: Vec<f32> = w.to_f32_vec();                    // strides respected
//! # let _ = (rows, normalize, data);
//! # Ok::<(), dawin_core::Error>(())
//! ```

mod formats;
mod graph;
mod loader;
mod opcodes;
mod pickle;
mod tensor;

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::dtype::DType;
use crate::error::{Error, Result};

pub use tensor::TorchTensor;

/// The reader's allocations (besides the memory map) stay below this many times the file size,
/// plus [`BUDGET_SLACK`].
pub const BUDGET_FACTOR: usize = 8;
/// Constant part of the reader's allocation budget (bytes).
pub const BUDGET_SLACK: usize = 4 << 20;

/// An error about `path`'s content.
pub(crate) fn format_error(path: &Path, reason: impl Into<String>) -> Error {
    Error::Format {
        path: path.to_path_buf(),
        format: "PyTorch checkpoint",
        reason: reason.into(),
    }
}

/// Element types of PyTorch tensors this reader reads.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum TorchDType {
    /// `torch.float64` (`DoubleStorage`).
    F64,
    /// `torch.float32` (`FloatStorage`).
    F32,
    /// `torch.float16` (`HalfStorage`).
    F16,
    /// `torch.bfloat16` (`BFloat16Storage`).
    BF16,
    /// `torch.int64` (`LongStorage`).
    I64,
    /// `torch.int32` (`IntStorage`).
    I32,
    /// `torch.int16` (`ShortStorage`).
    I16,
    /// `torch.int8` (`CharStorage`).
    I8,
    /// `torch.uint8` (`ByteStorage`).
    U8,
    /// `torch.bool` (`BoolStorage`), one byte per element.
    Bool,
}

impl TorchDType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            TorchDType::F64 | TorchDType::I64 => 8,
            TorchDType::F32 | TorchDType::I32 => 4,
            TorchDType::F16 | TorchDType::BF16 | TorchDType::I16 => 2,
            TorchDType::I8 | TorchDType::U8 | TorchDType::Bool => 1,
        }
    }

    /// Lower-case name: `"f64"`, `"f32"`, `"f16"`, `"bf16"`, `"i64"`, `"i32"`, `"i16"`, `"i8"`,
    /// `"u8"`, `"bool"`.
    pub fn name(self) -> &'static str {
        match self {
            TorchDType::F64 => "f64",
            TorchDType::F32 => "f32",
            TorchDType::F16 => "f16",
            TorchDType::BF16 => "bf16",
            TorchDType::I64 => "i64",
            TorchDType::I32 => "i32",
            TorchDType::I16 => "i16",
            TorchDType::I8 => "i8",
            TorchDType::U8 => "u8",
            TorchDType::Bool => "bool",
        }
    }

    /// The matching [`DType`] of the safetensors side, where there is one (`f64`, `f32`, `f16`,
    /// `bf16`, `i64`, `u8`).
    pub fn to_dtype(self) -> Option<DType> {
        Some(match self {
            TorchDType::F64 => DType::F64,
            TorchDType::F32 => DType::F32,
            TorchDType::F16 => DType::F16,
            TorchDType::BF16 => DType::BF16,
            TorchDType::I64 => DType::I64,
            TorchDType::U8 => DType::U8,
            _ => return None,
        })
    }
}

impl std::fmt::Display for TorchDType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The layout a checkpoint was read from.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum TorchFormat {
    /// Zip `torch.save` (PyTorch ≥ 1.6).
    Zip,
    /// Legacy `torch.save` (`_use_new_zipfile_serialization=False`, PyTorch < 1.6).
    Legacy,
    /// A plain `pickle.dump` whose storages are nested legacy `torch.save`s.
    Pickle,
    /// A TorchScript archive (`torch.jit.save`).
    TorchScript,
}

impl TorchFormat {
    /// The layout in words: `torch.save (zip)`, `torch.save (legacy)`,
    /// `pickle.dump (legacy storages)`, `TorchScript`.
    pub fn name(self) -> &'static str {
        match self {
            TorchFormat::Zip => "torch.save (zip)",
            TorchFormat::Legacy => "torch.save (legacy)",
            TorchFormat::Pickle => "pickle.dump (legacy storages)",
            TorchFormat::TorchScript => "TorchScript",
        }
    }
}

/// A plain (non-tensor) value of the object graph, for [`TorchCheckpoint::attribute`].
#[derive(Clone, Debug, PartialEq)]
pub enum Attr {
    /// `None`.
    None,
    /// A bool.
    Bool(bool),
    /// An integer that fits in `i64`.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string.
    Str(String),
    /// A class or function reference, `module.name` (never resolved).
    Class(String),
}

impl Attr {
    /// The bool, if this is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Attr::Bool(b) => Some(*b),
            _ => None,
        }
    }
    /// The integer, if this is one.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Attr::Int(i) => Some(*i),
            _ => None,
        }
    }
    /// The number, if this is an integer or a float.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Attr::Int(i) => Some(*i as f64),
            Attr::Float(f) => Some(*f),
            _ => None,
        }
    }
    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Attr::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// One tensor's entry: where its elements are.
#[derive(Debug, Clone)]
struct Entry {
    name: String,
    dtype: TorchDType,
    shape: Vec<usize>,
    strides: Vec<usize>,
    /// Storage offset, in elements.
    offset: usize,
    storage: usize,
}

/// One storage: a byte range of a buffer (0: the map).
#[derive(Debug, Clone)]
struct Storage {
    key: String,
    buf: usize,
    start: usize,
    len: usize,
}

/// A PyTorch checkpoint, memory-mapped, its tensors in state-dict order. `Send + Sync`.
pub struct TorchCheckpoint {
    path: PathBuf,
    format: TorchFormat,
    mmap: memmap2::Mmap,
    owned: Vec<Arc<[u8]>>,
    storages: Vec<Storage>,
    entries: Vec<Entry>,
    index: HashMap<String, usize>,
    attrs: Vec<(String, Attr)>,
    classes: Vec<(String, String)>,
    ignored: Vec<(String, String)>,
}

impl std::fmt::Debug for TorchCheckpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TorchCheckpoint")
            .field("path", &self.path)
            .field("format", &self.format)
            .field("tensors", &self.entries.len())
            .finish()
    }
}

/// Opens a PyTorch checkpoint; see [`TorchCheckpoint::open`].
pub fn open_torch(path: impl AsRef<Path>) -> Result<TorchCheckpoint> {
    TorchCheckpoint::open(path)
}

impl TorchCheckpoint {
    /// Memory-maps `path`, recognises its layout (zip, legacy, plain pickle, TorchScript), runs
    /// the inert unpickler and names the tensors. Fails with an error naming the file (and the
    /// pickle, offset and opcode, or the tensor and storage key) on anything malformed,
    /// unsupported (e.g. a complex or quantized tensor that a name points at), or when the file
    /// holds no tensor at all.
    pub fn open(path: impl AsRef<Path>) -> Result<TorchCheckpoint> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
        // SAFETY: read-only mapping; like every mmap-based loader we assume the file is not
        // truncated by another process while mapped.
        let mmap = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(&path, e))?;
        let built = build(&path, &mmap)?;
        Ok(TorchCheckpoint {
            path,
            mmap,
            format: built.format,
            owned: built.owned,
            storages: built.storages,
            index: built
                .entries
                .iter()
                .enumerate()
                .map(|(i, e)| (e.name.clone(), i))
                .collect(),
            entries: built.entries,
            attrs: built.walked.attrs,
            classes: built.walked.classes,
            ignored: built.walked.ignored,
        })
    }

    /// The file this was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The layout it was read from.
    pub fn format(&self) -> TorchFormat {
        self.format
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there is no tensor (never true for an opened checkpoint).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Tensor names in state-dict order.
    pub fn names(&self) -> Vec<&str> {
        self.entries.iter().map(|e| e.name.as_str()).collect()
    }

    /// All tensors in state-dict order.
    pub fn tensors(&self) -> impl ExactSizeIterator<Item = TorchTensor<'_>> {
        self.entries.iter().map(move |e| TorchTensor::new(self, e))
    }

    /// The tensor called `name`, if any.
    pub fn get(&self, name: &str) -> Option<TorchTensor<'_>> {
        self.index
            .get(name)
            .map(|&i| TorchTensor::new(self, &self.entries[i]))
    }

    /// The tensor called `name`; the error names it and the file.
    pub fn tensor(&self, name: &str) -> Result<TorchTensor<'_>> {
        self.get(name).ok_or_else(|| Error::MissingTensor {
            path: self.path.clone(),
            name: name.to_string(),
        })
    }

    /// A plain attribute by dotted path: `"normalize"` on a pickled head,
    /// `"image_encoder.cache_dir"`, or a non-tensor value of a dict (`"epoch"`).
    pub fn attribute(&self, dotted: &str) -> Option<&Attr> {
        self.attrs
            .iter()
            .rev()
            .find(|(k, _)| k == dotted)
            .map(|(_, a)| a)
    }

    /// Every plain attribute found, by dotted path, in graph order.
    pub fn attributes(&self) -> &[(String, Attr)] {
        &self.attrs
    }

    /// The class of the object (module) at a dotted path (`""` for the root), as the pickle
    /// names it: `"src.modeling.ClassificationHead"`, `"__torch__.open_clip.model.CLIP"`.
    pub fn class_at(&self, dotted: &str) -> Option<&str> {
        self.classes
            .iter()
            .find(|(k, _)| k == dotted)
            .map(|(_, c)| c.as_str())
    }

    /// Values that were read but not used as tensors, with why: non-persistent buffers, plain
    /// tensor attributes of modules, inert calls (`os.system(…)`, never run), cycles.
    pub fn ignored(&self) -> &[(String, String)] {
        &self.ignored
    }

    fn storage_bytes(&self, s: usize) -> &[u8] {
        let st = &self.storages[s];
        let buf: &[u8] = if st.buf == 0 {
            &self.mmap
        } else {
            &self.owned[st.buf - 1]
        };
        &buf[st.start..st.start + st.len]
    }
}

struct Built {
    format: TorchFormat,
    owned: Vec<Arc<[u8]>>,
    storages: Vec<Storage>,
    entries: Vec<Entry>,
    walked: graph::Walked,
}

fn build(path: &Path, file: &[u8]) -> Result<Built> {
    let mut ctx = loader::Ctx::new(path, file);
    let parsed = formats::read(&mut ctx)?;
    let mut walked = graph::Walker::walk(&ctx, parsed.script.as_ref(), &parsed.root)
        .map_err(|e| ctx.error(e))?;
    let tensors = std::mem::take(&mut walked.tensors);
    let mut storage_map: HashMap<usize, usize> = HashMap::new();
    let mut storages = Vec::new();
    let mut entries = Vec::with_capacity(tensors.len());
    let mut seen = std::collections::HashSet::new();
    for (name, v) in tensors {
        let t = match v {
            pickle::Value::Tensor(i) => ctx.tensors[i].clone(),
            pickle::Value::Unsupported(msg) => {
                return Err(ctx.error(format!("tensor `{name}`: {msg}")))
            }
            _ => unreachable!("the walk names only tensors"),
        };
        if !seen.insert(name.clone()) {
            return Err(ctx.error(format!("tensor name `{name}` appears twice")));
        }
        let st = &ctx.storages[t.storage];
        let blob = st
            .data
            .as_ref()
            .map_err(|e| ctx.error(format!("tensor `{name}`: storage `{}`: {e}", st.key)))?;
        // Every element must lie inside the storage's bytes (checked again here, on the bytes
        // actually located, so that reading can never go out of bounds).
        let numel: usize = t.shape.iter().product();
        if numel > 0 {
            let last: u128 = t.offset as u128
                + t.shape
                    .iter()
                    .zip(&t.strides)
                    .map(|(&n, &s)| (n as u128 - 1) * s as u128)
                    .sum::<u128>();
            if (last + 1) * t.dtype.size() as u128 > blob.len as u128 {
                return Err(ctx.error(format!(
                    "tensor `{name}`: shape {:?}, strides {:?} and offset {} reach past the {} \
                     bytes of storage `{}`",
                    t.shape, t.strides, t.offset, blob.len, st.key
                )));
            }
        }
        let s = *storage_map.entry(t.storage).or_insert_with(|| {
            storages.push(Storage {
                key: st.key.clone(),
                buf: blob.buf,
                start: blob.start,
                len: blob.len,
            });
            storages.len() - 1
        });
        entries.push(Entry {
            name,
            dtype: t.dtype,
            shape: t.shape,
            strides: t.strides,
            offset: t.offset,
            storage: s,
        });
    }
    if entries.is_empty() {
        let root = walked
            .classes
            .iter()
            .find(|(p, _)| p.is_empty())
            .map(|(_, c)| format!("an object of class {c}"))
            .unwrap_or_else(|| "a container or value".into());
        let notes: Vec<String> = walked
            .ignored
            .iter()
            .take(3)
            .map(|(p, why)| {
                if p.is_empty() {
                    why.clone()
                } else {
                    format!("`{p}`: {why}")
                }
            })
            .collect();
        return Err(ctx.error(format!(
            "holds no tensors: its root ({:?} form) is {root}{}{}",
            parsed.format,
            if notes.is_empty() { "" } else { "; " },
            notes.join("; ")
        )));
    }
    Ok(Built {
        format: parsed.format,
        owned: std::mem::take(&mut ctx.owned),
        storages,
        entries,
        walked,
    })
}
