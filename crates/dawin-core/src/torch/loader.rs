//! The loader state shared by the pickles of one file: the arena, the memory budget, the storage
//! and tensor tables, and the only places where a pickle's calls are interpreted. The recognised
//! callables are a closed list (PyTorch's tensor-rebuild functions, `collections.OrderedDict`,
//! `builtins.set`/`frozenset`, `torch.Size`, `_codecs.encode`, TorchScript's `build_*list`);
//! everything else becomes an inert [`Object`]. Nothing is ever imported or run.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;

use super::pickle::{Blob, CallKind, Global, Node, NodeId, Object, Value};
use super::TorchDType;
use crate::error::Error;

/// Dims a tensor may have.
const MAX_DIMS: usize = 64;

/// One storage of the file.
#[derive(Debug)]
pub(crate) struct StorageInfo {
    /// The storage's key (`data/<key>` in a zip; the legacy key).
    pub key: String,
    /// Its dtype, or why it is not supported.
    pub dtype: Result<TorchDType, Rc<str>>,
    /// Bytes per element (known even for unsupported dtypes, to skip legacy data).
    pub elem_size: usize,
    /// Elements, as the pickle declares.
    pub numel: u64,
    /// Its bytes, once located; `Err` says why they are missing.
    pub data: Result<Blob, String>,
}

/// One rebuilt tensor (not yet named).
#[derive(Debug, Clone)]
pub(crate) struct TensorDesc {
    pub storage: usize,
    pub dtype: TorchDType,
    pub offset: usize,
    pub shape: Vec<usize>,
    pub strides: Vec<usize>,
}

/// How persistent ids are resolved.
pub(crate) enum PidMode<'a> {
    /// No persistent ids expected (a plain pickle).
    None,
    /// A zip archive: storage `key` is the entry `<root>/data/<key>`.
    Zip {
        archive: Box<zip::ZipArchive<std::io::Cursor<&'a [u8]>>>,
        /// Entry index and full name by path relative to the root folder.
        entries: HashMap<String, (usize, String)>,
        by_key: HashMap<String, usize>,
    },
    /// A legacy `torch.save`: storages are located after the pickles.
    Legacy { by_key: HashMap<String, usize> },
}

pub(crate) struct Ctx<'a> {
    pub path: &'a Path,
    pub file: &'a [u8],
    /// Buffers made while reading (inflated zip entries, `_codecs.encode` bytes); buffer `i + 1`.
    pub owned: Vec<Arc<[u8]>>,
    pub nodes: Vec<Node>,
    pub storages: Vec<StorageInfo>,
    pub tensors: Vec<TensorDesc>,
    pub pid: PidMode<'a>,
    used: usize,
    limit: usize,
    nested: usize,
}

impl<'a> Ctx<'a> {
    /// A context for `file`, with a budget of `8 × file size + 4 MiB` bytes for everything the
    /// reader allocates besides the memory map.
    pub fn new(path: &'a Path, file: &'a [u8]) -> Self {
        Ctx {
            path,
            file,
            owned: Vec::new(),
            nodes: Vec::new(),
            storages: Vec::new(),
            tensors: Vec::new(),
            pid: PidMode::None,
            used: 0,
            limit: file.len().saturating_mul(super::BUDGET_FACTOR) + super::BUDGET_SLACK,
            nested: 0,
        }
    }

    pub fn error(&self, reason: impl Into<String>) -> Error {
        super::format_error(self.path, reason)
    }

    /// Charges `n` bytes to the budget.
    pub fn charge(&mut self, n: usize) -> Result<(), String> {
        self.used = self.used.saturating_add(n);
        if self.used > self.limit {
            return Err(format!(
                "the reader's memory budget ({} bytes: {}× the file size + {} MiB) is exceeded; \
                 the file is corrupt or hostile",
                self.limit,
                super::BUDGET_FACTOR,
                super::BUDGET_SLACK >> 20
            ));
        }
        Ok(())
    }

    pub fn new_node(&mut self, n: Node) -> Result<NodeId, String> {
        self.charge(std::mem::size_of::<Node>() + 16)?;
        self.nodes.push(n);
        Ok(self.nodes.len() - 1)
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id]
    }

    pub fn node_mut(&mut self, id: NodeId) -> &mut Node {
        &mut self.nodes[id]
    }

    /// The bytes of a buffer.
    pub fn buffer(&self, buf: usize) -> &[u8] {
        if buf == 0 {
            self.file
        } else {
            &self.owned[buf - 1]
        }
    }

    /// The items of a tuple or list value (cloned: values are small).
    pub fn items(&self, v: &Value) -> Option<Vec<Value>> {
        match v {
            Value::Node(id) => match self.node(*id) {
                Node::Tuple(t) | Node::List(t) | Node::Set(t) => Some(t.clone()),
                _ => None,
            },
            _ => None,
        }
    }

    fn usize_list(&self, v: &Value, what: &str) -> Result<Vec<usize>, String> {
        let items = self
            .items(v)
            .ok_or_else(|| format!("the tensor's {what} is not a tuple"))?;
        if items.len() > MAX_DIMS {
            return Err(format!("the tensor's {what} has {} dims", items.len()));
        }
        items
            .iter()
            .map(|x| match x {
                Value::Int(i) if *i >= 0 => Ok(*i as usize),
                _ => Err(format!("the tensor's {what} holds {x:?}, not a size")),
            })
            .collect()
    }

    /// `BUILD`: the state of an inert object is kept; other targets ignore it (a tensor's Python
    /// state, a dict's `__setstate__`).
    pub fn build(&mut self, obj: &Value, state: Value) -> Result<(), String> {
        if let Value::Node(id) = obj {
            if let Node::Object(o) = self.node_mut(*id) {
                o.state = Some(state);
            }
        }
        Ok(())
    }

    /// A call (`REDUCE`, `NEWOBJ`, `INST`/`OBJ`) of `f` on `args`, interpreted inertly.
    pub fn call(&mut self, f: Value, args: Value, kind: CallKind) -> Result<Value, String> {
        let Value::Global(g) = &f else {
            return self.inert(f, args);
        };
        let a = self.items(&args).unwrap_or_default();
        match (g.module.as_str(), g.name.as_str()) {
            ("collections", "OrderedDict") | ("builtins", "dict") if kind != CallKind::Inst => {
                let mut pairs = Vec::new();
                if let Some(first) = a.first() {
                    for p in self.items(first).unwrap_or_default() {
                        match self.items(&p).as_deref() {
                            Some([k, v]) => pairs.push((k.clone(), v.clone())),
                            _ => return Err("OrderedDict of something that is not pairs".into()),
                        }
                    }
                }
                self.charge(pairs.len() * 2 * std::mem::size_of::<Value>())?;
                Ok(Value::Node(self.new_node(Node::Dict(pairs))?))
            }
            ("builtins", "set" | "frozenset") => {
                let items = a.first().and_then(|x| self.items(x)).unwrap_or_default();
                self.charge(items.len() * std::mem::size_of::<Value>())?;
                Ok(Value::Node(self.new_node(Node::Set(items))?))
            }
            ("torch", "Size") => {
                let items = a.first().and_then(|x| self.items(x)).unwrap_or_default();
                self.charge(items.len() * std::mem::size_of::<Value>())?;
                Ok(Value::Node(self.new_node(Node::Tuple(items))?))
            }
            ("torch._utils", "_rebuild_tensor") => self.rebuild_tensor(&a, None, g),
            ("torch._utils", "_rebuild_tensor_v2") => self.rebuild_tensor(&a, None, g),
            ("torch._utils", "_rebuild_tensor_v3") => {
                let dt = match a.get(6) {
                    Some(Value::Global(d)) => dtype_from_global(d),
                    _ => return Err("_rebuild_tensor_v3 without a dtype".into()),
                };
                self.rebuild_tensor(&a, Some(dt), g)
            }
            ("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state") => {
                match a.first() {
                    Some(v @ (Value::Tensor(_) | Value::Unsupported(_))) => Ok(v.clone()),
                    _ => Err(format!("{} of something that is not a tensor", g.name)),
                }
            }
            ("torch._tensor", "_rebuild_from_type_v2") => {
                // (func, type, args, state): a tensor subclass; only rebuild functions are applied.
                match (a.first(), a.get(2)) {
                    (Some(Value::Global(func)), Some(inner))
                        if func.module == "torch._utils" && func.name.starts_with("_rebuild_") =>
                    {
                        let (func, inner) = (a[0].clone(), inner.clone());
                        self.call(func, inner, CallKind::Reduce)
                    }
                    _ => self.inert(f, args),
                }
            }
            ("torch.storage", "_load_from_bytes") => match a.first() {
                Some(Value::Bytes(b)) => self.load_from_bytes(*b),
                _ => Err("_load_from_bytes of something that is not bytes".into()),
            },
            ("torch.jit._pickle", name) if name.starts_with("build_") => a
                .into_iter()
                .next()
                .ok_or_else(|| format!("{name} without argument")),
            ("torch.jit._pickle", "restore_type_tag") => a
                .into_iter()
                .next()
                .ok_or_else(|| "restore_type_tag without argument".into()),
            ("_codecs", "encode") => match a.as_slice() {
                // Protocol 2 pickles `bytes` as _codecs.encode(str, 'latin1').
                [Value::Str(s), Value::Str(enc)] if enc.as_ref() == "latin1" => {
                    self.charge(s.len())?;
                    let mut out = Vec::with_capacity(s.chars().count());
                    for c in s.chars() {
                        out.push(u8::try_from(c as u32).map_err(|_| "latin1 out of range")?);
                    }
                    self.owned.push(out.into());
                    let b = Blob {
                        buf: self.owned.len(),
                        start: 0,
                        len: self.owned.last().unwrap().len(),
                    };
                    Ok(Value::Bytes(b))
                }
                _ => self.inert(f, args),
            },
            ("torch._utils", name) if name.starts_with("_rebuild_") => Ok(Value::Unsupported(
                format!(
                    "torch._utils.{name} (a quantized, sparse, nested or device-only tensor) is \
                     not supported"
                )
                .into(),
            )),
            ("copyreg", "_reconstructor" | "__newobj__") if !a.is_empty() => {
                let cls = a[0].clone();
                let rest = Value::Node(self.new_node(Node::Tuple(a[1..].to_vec()))?);
                self.inert(cls, rest)
            }
            _ => self.inert(f, args),
        }
    }

    /// An inert object: the class (or function) reference and its arguments, never applied.
    fn inert(&mut self, class: Value, args: Value) -> Result<Value, String> {
        let args = self.items(&args).unwrap_or_else(|| vec![args]);
        self.charge(args.len() * std::mem::size_of::<Value>())?;
        let id = self.new_node(Node::Object(Object {
            class,
            args,
            state: None,
            items: Vec::new(),
            pairs: Vec::new(),
        }))?;
        Ok(Value::Node(id))
    }

    /// `_rebuild_tensor[_v2|_v3](storage, offset, size, stride, …)`.
    fn rebuild_tensor(
        &mut self,
        a: &[Value],
        dtype: Option<Result<TorchDType, Rc<str>>>,
        g: &Global,
    ) -> Result<Value, String> {
        if a.len() < 4 {
            return Err(format!("{} with {} arguments", g.name, a.len()));
        }
        let s = match &a[0] {
            Value::Storage(s) => *s,
            Value::Unsupported(u) => return Ok(Value::Unsupported(u.clone())),
            other => return Err(format!("{} of {other:?}, not a storage", g.name)),
        };
        let offset = match a[1] {
            Value::Int(o) if o >= 0 => o as usize,
            ref other => return Err(format!("storage offset {other:?}")),
        };
        let shape = self.usize_list(&a[2], "size")?;
        let strides = self.usize_list(&a[3], "stride")?;
        if shape.len() != strides.len() {
            return Err(format!(
                "size {shape:?} and stride {strides:?} differ in rank"
            ));
        }
        let st = &self.storages[s];
        let (dtype, numel) = match dtype {
            // v3: an untyped (byte) storage viewed with an explicit dtype.
            Some(Ok(d)) => (d, st.numel * st.elem_size as u64 / d.size() as u64),
            Some(Err(e)) => return Ok(Value::Unsupported(e)),
            None => match &st.dtype {
                Ok(d) => (*d, st.numel),
                Err(e) => return Ok(Value::Unsupported(e.clone())),
            },
        };
        // The largest element index must lie inside the storage (unless the tensor is empty).
        let mut count: usize = 1;
        let mut last = offset as u128;
        for (&n, &st) in shape.iter().zip(&strides) {
            count = count
                .checked_mul(n)
                .ok_or("the tensor's element count overflows")?;
            if n > 0 {
                last += (n as u128 - 1) * st as u128;
            }
        }
        if count > 0 && last >= numel as u128 {
            return Err(format!(
                "size {shape:?}, stride {strides:?} and offset {offset} reach element {last} of \
                 storage `{}`, which holds {numel}",
                self.storages[s].key
            ));
        }
        self.charge(std::mem::size_of::<TensorDesc>() + 16 * shape.len())?;
        self.tensors.push(TensorDesc {
            storage: s,
            dtype,
            offset,
            shape,
            strides,
        });
        Ok(Value::Tensor(self.tensors.len() - 1))
    }

    /// A persistent id: `('storage', type, key, location, numel[, view_metadata])`.
    pub fn persistent_load(&mut self, pid: Value) -> Result<Value, String> {
        let t = self
            .items(&pid)
            .ok_or_else(|| format!("persistent id {pid:?} is not a tuple"))?;
        match t.first() {
            Some(Value::Str(s)) if s.as_ref() == "storage" => {}
            Some(Value::Str(s)) if s.as_ref() == "module" => {
                return Err(
                    "persistent id ('module', …): torch.save's source-code records of \
                            PyTorch before 1.0 are not handled"
                        .into(),
                )
            }
            _ => return Err(format!("persistent id {:?} is not a storage", t.first())),
        }
        if t.len() < 5 {
            return Err(format!("storage persistent id with {} fields", t.len()));
        }
        let (dtype, elem_size) = match &t[1] {
            Value::Global(g) => storage_dtype(g),
            other => return Err(format!("storage type {other:?}")),
        };
        let key = match &t[2] {
            Value::Str(s) => s.to_string(),
            Value::Int(i) => i.to_string(),
            other => return Err(format!("storage key {other:?}")),
        };
        let numel = match t[4] {
            Value::Int(n) if n >= 0 => n as u64,
            ref other => return Err(format!("storage `{key}` of {other:?} elements")),
        };
        if t.get(5).is_some_and(|v| !matches!(v, Value::None)) {
            return Err(format!(
                "storage `{key}` is a view of another storage (the view_metadata of PyTorch \
                 before 0.4), which is not handled"
            ));
        }
        let by_key = match &mut self.pid {
            PidMode::None => return Err("a persistent id in a plain pickle".into()),
            PidMode::Zip { by_key, .. } | PidMode::Legacy { by_key } => by_key,
        };
        if let Some(&i) = by_key.get(&key) {
            return Ok(Value::Storage(i));
        }
        let idx = self.storages.len();
        by_key.insert(key.clone(), idx);
        let bytes = numel.checked_mul(elem_size as u64);
        let file_len = self.file.len();
        let located = match &mut self.pid {
            PidMode::Zip {
                archive, entries, ..
            } => match entries.get(&format!("data/{key}")) {
                None => Err(format!("the archive has no entry data/{key}")),
                Some((i, name)) => {
                    Ok((*i, name.clone(), locate_entry(archive, *i, name, file_len)?))
                }
            },
            _ => Err("not located yet".to_string()),
        };
        let data = match located {
            Err(e) => Err(e),
            Ok((_, _, Located::Stored(start, len))) => Ok(Blob { buf: 0, start, len }),
            Ok((i, name, Located::Compressed(size))) => {
                self.charge(size)?;
                let PidMode::Zip { archive, .. } = &mut self.pid else {
                    unreachable!("zip mode")
                };
                let out = inflate(archive, i, &name, size)?;
                self.owned.push(out.into());
                Ok(Blob {
                    buf: self.owned.len(),
                    start: 0,
                    len: size,
                })
            }
        };
        if let (Ok(b), Some(bytes)) = (&data, bytes) {
            if (b.len as u64) < bytes {
                return Err(format!(
                    "storage `{key}` declares {numel} elements ({bytes} bytes) but its data \
                     holds {} bytes",
                    b.len
                ));
            }
        }
        if bytes.is_none() {
            return Err(format!("storage `{key}`: {numel} elements overflow"));
        }
        self.charge(std::mem::size_of::<StorageInfo>() + key.len())?;
        self.storages.push(StorageInfo {
            key,
            dtype,
            elem_size,
            numel,
            data,
        });
        Ok(Value::Storage(idx))
    }

    /// `torch.storage._load_from_bytes(b)`: `b` is a legacy `torch.save` of one storage.
    fn load_from_bytes(&mut self, b: Blob) -> Result<Value, String> {
        if self.nested > 0 {
            return Err("_load_from_bytes inside _load_from_bytes".into());
        }
        let saved = std::mem::replace(
            &mut self.pid,
            PidMode::Legacy {
                by_key: HashMap::new(),
            },
        );
        self.nested += 1;
        let what = format!("the storage bytes at byte {} of buffer {}", b.start, b.buf);
        let r = super::formats::legacy(self, b.buf, b.start, b.start + b.len, &what);
        self.nested -= 1;
        self.pid = saved;
        match r {
            Ok(Value::Storage(s)) => Ok(Value::Storage(s)),
            Ok(other) => Err(format!("_load_from_bytes gave {other:?}, not a storage")),
            Err(e) => Err(e.to_string()),
        }
    }
}

enum Located {
    Stored(usize, usize),
    Compressed(usize),
}

/// Where entry `i`'s bytes are: a range of the file when stored, else its inflated size.
fn locate_entry(
    archive: &mut zip::ZipArchive<std::io::Cursor<&[u8]>>,
    i: usize,
    name: &str,
    file_len: usize,
) -> Result<Located, String> {
    let f = archive
        .by_index_raw(i)
        .map_err(|e| format!("entry {name}: {e}"))?;
    let size = usize::try_from(f.size()).map_err(|_| format!("entry {name} is too large"))?;
    if f.compression() == zip::CompressionMethod::Stored {
        let start = f
            .data_start()
            .ok_or_else(|| format!("entry {name}: no data offset"))? as usize;
        let len = f.compressed_size() as usize;
        if len != size || start.checked_add(len).is_none_or(|e| e > file_len) {
            return Err(format!(
                "entry {name}: {len} bytes at offset {start} do not fit in the file (truncated?)"
            ));
        }
        Ok(Located::Stored(start, len))
    } else {
        Ok(Located::Compressed(size))
    }
}

/// Inflates entry `i` (declared to hold `size` bytes) into memory.
fn inflate(
    archive: &mut zip::ZipArchive<std::io::Cursor<&[u8]>>,
    i: usize,
    name: &str,
    size: usize,
) -> Result<Vec<u8>, String> {
    let f = archive
        .by_index(i)
        .map_err(|e| format!("entry {name}: {e}"))?;
    let mut out = Vec::new();
    f.take(size as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("entry {name}: {e}"))?;
    if out.len() != size {
        return Err(format!(
            "entry {name} inflates to {} bytes, not the {size} its header declares",
            out.len()
        ));
    }
    Ok(out)
}

/// The dtype and element size of a storage class (`torch.FloatStorage`, `torch.cuda.HalfStorage`,
/// `torch.UntypedStorage`, …) or of a dtype reference (`torch.float16`).
pub(crate) fn storage_dtype(g: &Global) -> (Result<TorchDType, Rc<str>>, usize) {
    use TorchDType as D;
    if g.module == "torch.storage" && g.name == "UntypedStorage" {
        return (Ok(TorchDType::U8), 1);
    }
    if g.module != "torch" && g.module != "torch.cuda" {
        return (
            Err(format!("storage type {} is not a PyTorch storage", g.dotted()).into()),
            1,
        );
    }
    let d = match g.name.as_str() {
        "DoubleStorage" => D::F64,
        "FloatStorage" => D::F32,
        "HalfStorage" => D::F16,
        "BFloat16Storage" => D::BF16,
        "LongStorage" => D::I64,
        "IntStorage" => D::I32,
        "ShortStorage" => D::I16,
        "CharStorage" => D::I8,
        "ByteStorage" | "UntypedStorage" => D::U8,
        "BoolStorage" => D::Bool,
        other => {
            let size = match other {
                "ComplexDoubleStorage" => 16,
                "ComplexFloatStorage" => 8,
                "QInt32Storage" => 4,
                _ => 1,
            };
            let what = match other {
                "ComplexFloatStorage" => "complex64",
                "ComplexDoubleStorage" => "complex128",
                o if o.starts_with("Q") => "quantized",
                _ => "unknown",
            };
            return (
                Err(format!(
                    "dtype {what} (storage torch.{other}) is not supported: f32, f16, bf16, f64, \
                     i64, i32, i16, i8, u8 and bool are"
                )
                .into()),
                size,
            );
        }
    };
    (Ok(d), d.size())
}

/// A dtype reference such as `torch.float16` (`_rebuild_tensor_v3`).
fn dtype_from_global(g: &Global) -> Result<TorchDType, Rc<str>> {
    use TorchDType as D;
    let d = match (g.module.as_str(), g.name.as_str()) {
        ("torch", "float32" | "float") => D::F32,
        ("torch", "float16" | "half") => D::F16,
        ("torch", "bfloat16") => D::BF16,
        ("torch", "float64" | "double") => D::F64,
        ("torch", "int64" | "long") => D::I64,
        ("torch", "int32" | "int") => D::I32,
        ("torch", "int16" | "short") => D::I16,
        ("torch", "int8") => D::I8,
        ("torch", "uint8") => D::U8,
        ("torch", "bool") => D::Bool,
        _ => return Err(format!("dtype {} is not supported", g.dotted()).into()),
    };
    Ok(d)
}
