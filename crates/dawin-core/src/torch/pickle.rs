//! An inert pickle virtual machine: opcodes (protocols 0–5) become [`Value`]s in an arena; nothing
//! is imported or called. `GLOBAL`/`STACK_GLOBAL` push a class *reference* (module and name
//! strings); `REDUCE`, `NEWOBJ`, `NEWOBJ_EX`, `INST`, `OBJ` and `BUILD` are handed to
//! [`Ctx::call`](super::loader::Ctx::call) / [`Ctx::build`](super::loader::Ctx::build), which
//! recognise PyTorch's tensor-rebuild functions and a few harmless containers and turn everything
//! else into an inert [`Object`] (a class reference, its arguments and its state).
//!
//! Containers live in an arena ([`Node`]s addressed by index), so values are flat: cycles and deep
//! nesting cannot overflow the stack when they are dropped, and sharing (the pickle memo) costs
//! nothing. Every allocation the VM makes is charged to the loader's budget (a multiple of the
//! file size), and every read is bounds-checked: a hostile pickle gives an error naming the file,
//! the pickle, the byte offset and the opcode.

use std::collections::HashMap;
use std::rc::Rc;

use super::loader::Ctx;
use super::opcodes::{op_name, unescape_raw_unicode, unquote_repr};

/// A node index in the arena.
pub(crate) type NodeId = usize;

/// A pickled value. Containers are [`Value::Node`]s of the arena.
#[derive(Clone, Debug)]
pub(crate) enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// An integer too large for `i64`: little-endian two's-complement bytes.
    BigInt(Rc<[u8]>),
    Float(f64),
    Str(Rc<str>),
    /// Bytes, located in one of the loader's buffers (never copied out of the file).
    Bytes(Blob),
    /// A class or function reference `module.name` (never resolved).
    Global(Rc<Global>),
    Node(NodeId),
    /// A storage of the loader's storage table.
    Storage(usize),
    /// A tensor of the loader's tensor table.
    Tensor(usize),
    /// Something recognised but not supported (a quantized or sparse tensor, a complex storage):
    /// an error only if a tensor name ends up pointing at it.
    Unsupported(Rc<str>),
}

/// `module.name` of a `GLOBAL`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Global {
    pub module: String,
    pub name: String,
}

impl Global {
    pub fn dotted(&self) -> String {
        format!("{}.{}", self.module, self.name)
    }
}

/// A byte range of one of the loader's buffers (0: the memory-mapped file).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Blob {
    pub buf: usize,
    pub start: usize,
    pub len: usize,
}

/// An arena node.
#[derive(Debug)]
pub(crate) enum Node {
    List(Vec<Value>),
    Tuple(Vec<Value>),
    /// Insertion order; a repeated key is kept twice (the name walk reports it).
    Dict(Vec<(Value, Value)>),
    Set(Vec<Value>),
    Object(Object),
}

/// An inert object: what `callable(*args)` would have built, plus what `BUILD`, `APPEND(S)` and
/// `SETITEM(S)` would have fed it.
#[derive(Debug)]
pub(crate) struct Object {
    pub class: Value,
    pub args: Vec<Value>,
    pub state: Option<Value>,
    pub items: Vec<Value>,
    pub pairs: Vec<(Value, Value)>,
}

/// How a callable was applied.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum CallKind {
    Reduce,
    NewObj,
    Inst,
}

/// The highest pickle protocol this VM reads.
pub(crate) const MAX_PROTOCOL: u8 = 5;
/// The most `MARK`s open at once.
const MAX_MARKS: usize = 4096;
/// The longest text line (protocol 0 arguments, `GLOBAL` names).
const MAX_LINE: usize = 1 << 16;

struct Vm<'d> {
    data: &'d [u8],
    /// Offset of `data[0]` inside its buffer (for [`Blob`]s).
    base: usize,
    buf: usize,
    pos: usize,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
}

/// Runs the pickle that starts at `start` of buffer `buf` (ending at or before `end`) and returns
/// its value and the offset just past its `STOP`. `what` names the pickle in errors.
pub(crate) fn run(
    ctx: &mut Ctx<'_>,
    buf: usize,
    start: usize,
    end: usize,
    what: &str,
) -> crate::Result<(Value, usize)> {
    let owned;
    let data: &[u8] = if buf == 0 {
        &ctx.file[start..end]
    } else {
        owned = ctx.owned[buf - 1].clone();
        &owned[start..end]
    };
    let mut vm = Vm {
        data,
        base: start,
        buf,
        pos: 0,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
    };
    loop {
        let at = vm.pos;
        let Some(&op) = vm.data.get(at) else {
            return Err(ctx.error(format!(
                "{what}: the pickle ends at byte {} without a STOP opcode (truncated?)",
                start + at
            )));
        };
        vm.pos += 1;
        match vm.step(ctx, op) {
            Ok(Some(v)) => return Ok((v, start + vm.pos)),
            Ok(None) => {}
            Err(msg) => {
                return Err(ctx.error(format!(
                    "{what}: byte {}: opcode {op:#04x} ({}): {msg}",
                    start + at,
                    op_name(op)
                )))
            }
        }
    }
}

type Step = Result<Option<Value>, String>;

impl<'d> Vm<'d> {
    fn take(&mut self, n: usize) -> Result<&'d [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or_else(|| {
                format!(
                    "needs {n} bytes but only {} remain (truncated or corrupt)",
                    self.data.len() - self.pos
                )
            })?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().unwrap()))
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    fn len_of(&self, n: u64) -> Result<usize, String> {
        let remain = (self.data.len() - self.pos) as u64;
        if n > remain {
            return Err(format!(
                "declares {n} bytes but only {remain} remain (truncated or corrupt)"
            ));
        }
        Ok(n as usize)
    }

    /// A text line (without its `\n`).
    fn line(&mut self) -> Result<&'d [u8], String> {
        let rest = &self.data[self.pos..];
        let n = rest
            .iter()
            .take(MAX_LINE)
            .position(|&b| b == b'\n')
            .ok_or("a text argument without its end of line")?;
        self.pos += n + 1;
        Ok(&rest[..n])
    }

    fn line_str(&mut self) -> Result<&'d str, String> {
        std::str::from_utf8(self.line()?).map_err(|_| "a text argument that is not UTF-8".into())
    }

    fn push(&mut self, ctx: &mut Ctx<'_>, v: Value) -> Result<(), String> {
        ctx.charge(std::mem::size_of::<Value>())?;
        self.stack.push(v);
        Ok(())
    }

    fn pop(&mut self) -> Result<Value, String> {
        if self.marks.last().is_some_and(|&m| m >= self.stack.len()) {
            return Err("pops past a MARK".into());
        }
        self.stack.pop().ok_or_else(|| "the stack is empty".into())
    }

    fn top(&self) -> Result<&Value, String> {
        if self.marks.last().is_some_and(|&m| m >= self.stack.len()) {
            return Err("reads past a MARK".into());
        }
        self.stack.last().ok_or_else(|| "the stack is empty".into())
    }

    fn pop_mark(&mut self) -> Result<Vec<Value>, String> {
        let m = self.marks.pop().ok_or("no MARK to pop to")?;
        Ok(self.stack.split_off(m))
    }

    fn node(&mut self, ctx: &mut Ctx<'_>, n: Node) -> Result<(), String> {
        let id = ctx.new_node(n)?;
        self.push(ctx, Value::Node(id))
    }

    fn str_value(&mut self, ctx: &mut Ctx<'_>, bytes: &[u8]) -> Result<(), String> {
        let s = std::str::from_utf8(bytes).map_err(|_| "a string that is not UTF-8")?;
        ctx.charge(s.len())?;
        self.push(ctx, Value::Str(s.into()))
    }

    fn bytes_value(&mut self, ctx: &mut Ctx<'_>, n: usize) -> Result<(), String> {
        let start = self.base + self.pos;
        self.take(n)?;
        let b = Blob {
            buf: self.buf,
            start,
            len: n,
        };
        self.push(ctx, Value::Bytes(b))
    }

    fn memo_put(&mut self, ctx: &mut Ctx<'_>, key: u32) -> Result<(), String> {
        let v = self.top()?.clone();
        ctx.charge(2 * std::mem::size_of::<Value>() + 16)?;
        self.memo.insert(key, v);
        Ok(())
    }

    fn memo_get(&mut self, ctx: &mut Ctx<'_>, key: u32) -> Result<(), String> {
        let v = self
            .memo
            .get(&key)
            .cloned()
            .ok_or_else(|| format!("memo entry {key} was never stored"))?;
        self.push(ctx, v)
    }

    fn global(&mut self, ctx: &mut Ctx<'_>, module: &str, name: &str) -> Result<(), String> {
        // Protocol 2 pickles written by Python 3 use Python 2's module names.
        let module = match module {
            "__builtin__" => "builtins",
            "copy_reg" => "copyreg",
            m => m,
        };
        ctx.charge(module.len() + name.len() + 64)?;
        self.push(
            ctx,
            Value::Global(Rc::new(Global {
                module: module.to_string(),
                name: name.to_string(),
            })),
        )
    }

    fn int(&mut self, ctx: &mut Ctx<'_>, bytes: &[u8]) -> Result<(), String> {
        let v = if bytes.is_empty() {
            Value::Int(0)
        } else if bytes.len() <= 8 {
            let neg = bytes[bytes.len() - 1] & 0x80 != 0;
            let mut b = [if neg { 0xff } else { 0 }; 8];
            b[..bytes.len()].copy_from_slice(bytes);
            Value::Int(i64::from_le_bytes(b))
        } else {
            ctx.charge(bytes.len())?;
            Value::BigInt(bytes.into())
        };
        self.push(ctx, v)
    }

    fn text_int(&mut self, ctx: &mut Ctx<'_>, long: bool) -> Result<(), String> {
        let s = self.line_str()?;
        let s = if long { s.trim_end_matches('L') } else { s };
        let v = match s {
            "01" if !long => Value::Bool(true),
            "00" if !long => Value::Bool(false),
            _ => Value::Int(
                s.trim()
                    .parse::<i64>()
                    .map_err(|_| format!("`{s}` is not an integer this reader handles"))?,
            ),
        };
        self.push(ctx, v)
    }

    fn set_items(&mut self, ctx: &mut Ctx<'_>, items: Vec<Value>) -> Result<(), String> {
        if !items.len().is_multiple_of(2) {
            return Err("an odd number of items for a dict".into());
        }
        ctx.charge(items.len() * std::mem::size_of::<Value>())?;
        let mut pairs = Vec::with_capacity(items.len() / 2);
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            pairs.push((k, v));
        }
        match self.top()? {
            Value::Node(id) => match ctx.node_mut(*id) {
                Node::Dict(d) => d.extend(pairs),
                Node::Object(o) => o.pairs.extend(pairs),
                _ => return Err("sets items on something that is not a dict".into()),
            },
            _ => return Err("sets items on something that is not a dict".into()),
        }
        Ok(())
    }

    fn append(&mut self, ctx: &mut Ctx<'_>, items: Vec<Value>) -> Result<(), String> {
        ctx.charge(items.len() * std::mem::size_of::<Value>())?;
        match self.top()? {
            Value::Node(id) => match ctx.node_mut(*id) {
                Node::List(l) => l.extend(items),
                Node::Set(s) => s.extend(items),
                Node::Object(o) => o.items.extend(items),
                _ => return Err("appends to something that is not a list".into()),
            },
            _ => return Err("appends to something that is not a list".into()),
        }
        Ok(())
    }

    fn step(&mut self, ctx: &mut Ctx<'_>, op: u8) -> Step {
        match op {
            0x80 => {
                let v = self.u8()?;
                if v > MAX_PROTOCOL {
                    return Err(format!(
                        "pickle protocol {v} is not handled (this reader knows 0 to {MAX_PROTOCOL})"
                    ));
                }
            }
            0x95 => {
                self.u64()?; // FRAME: a length hint only
            }
            b'.' => {
                let v = self.pop()?;
                return Ok(Some(v));
            }
            b'(' => {
                if self.marks.len() >= MAX_MARKS {
                    return Err(format!("more than {MAX_MARKS} MARKs open"));
                }
                self.marks.push(self.stack.len());
            }
            b'0' => {
                self.pop()?;
            }
            b'1' => {
                self.pop_mark()?;
            }
            b'2' => {
                let v = self.top()?.clone();
                self.push(ctx, v)?;
            }
            b'N' => self.push(ctx, Value::None)?,
            0x88 => self.push(ctx, Value::Bool(true))?,
            0x89 => self.push(ctx, Value::Bool(false))?,
            b'I' => self.text_int(ctx, false)?,
            b'L' => self.text_int(ctx, true)?,
            b'J' => {
                let v = self.u32()? as i32;
                self.push(ctx, Value::Int(v as i64))?
            }
            b'K' => {
                let v = self.u8()?;
                self.push(ctx, Value::Int(v as i64))?
            }
            b'M' => {
                let v = self.u16()?;
                self.push(ctx, Value::Int(v as i64))?
            }
            0x8a => {
                let n = self.u8()? as usize;
                let b = self.take(n)?;
                self.int(ctx, b)?
            }
            0x8b => {
                let n = self.u32()? as u64;
                let n = self.len_of(n)?;
                let b = self.take(n)?;
                self.int(ctx, b)?
            }
            b'F' => {
                let s = self.line_str()?;
                let v: f64 = s
                    .trim()
                    .parse()
                    .map_err(|_| format!("`{s}` is not a float"))?;
                self.push(ctx, Value::Float(v))?
            }
            b'G' => {
                let v = f64::from_be_bytes(self.take(8)?.try_into().unwrap());
                self.push(ctx, Value::Float(v))?
            }
            b'X' => {
                let n = self.u32()? as u64;
                let n = self.len_of(n)?;
                let b = self.take(n)?;
                self.str_value(ctx, b)?
            }
            0x8c => {
                let n = self.u8()? as usize;
                let b = self.take(n)?;
                self.str_value(ctx, b)?
            }
            0x8d => {
                let n = self.u64()?;
                let n = self.len_of(n)?;
                let b = self.take(n)?;
                self.str_value(ctx, b)?
            }
            b'V' => {
                let b = self.line()?;
                let s = unescape_raw_unicode(b)?;
                ctx.charge(s.len())?;
                self.push(ctx, Value::Str(s.into()))?
            }
            b'S' => {
                // Python 2 str: a quoted repr. Decoded as text (state-dict keys).
                let b = self.line()?;
                let s = unquote_repr(b)?;
                ctx.charge(s.len())?;
                self.push(ctx, Value::Str(s.into()))?
            }
            b'T' => {
                let n = self.u32()? as u64;
                let n = self.len_of(n)?;
                let b = self.take(n)?;
                self.str_value(ctx, b)?
            }
            b'U' => {
                let n = self.u8()? as usize;
                let b = self.take(n)?;
                self.str_value(ctx, b)?
            }
            b'B' => {
                let n = self.u32()? as u64;
                let n = self.len_of(n)?;
                self.bytes_value(ctx, n)?
            }
            b'C' => {
                let n = self.u8()? as usize;
                self.bytes_value(ctx, n)?
            }
            0x8e | 0x96 => {
                let n = self.u64()?;
                let n = self.len_of(n)?;
                self.bytes_value(ctx, n)?
            }
            0x97 => {
                return Err(
                    "out-of-band buffers (pickle protocol 5 NEXT_BUFFER) are not handled".into(),
                )
            }
            0x98 => {
                self.top()?;
            }
            0x82..=0x84 => {
                return Err(
                    "the copyreg extension registry (EXT1/EXT2/EXT4) is not handled: no PyTorch \
                     checkpoint uses it"
                        .into(),
                )
            }
            b')' => self.node(ctx, Node::Tuple(Vec::new()))?,
            b't' => {
                let items = self.pop_mark()?;
                ctx.charge(items.len() * std::mem::size_of::<Value>())?;
                self.node(ctx, Node::Tuple(items))?
            }
            0x85..=0x87 => {
                let n = (op - 0x84) as usize;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.pop()?);
                }
                items.reverse();
                self.node(ctx, Node::Tuple(items))?
            }
            b']' => self.node(ctx, Node::List(Vec::new()))?,
            b'l' => {
                let items = self.pop_mark()?;
                ctx.charge(items.len() * std::mem::size_of::<Value>())?;
                self.node(ctx, Node::List(items))?
            }
            b'}' => self.node(ctx, Node::Dict(Vec::new()))?,
            b'd' => {
                let items = self.pop_mark()?;
                self.node(ctx, Node::Dict(Vec::new()))?;
                self.set_items(ctx, items)?
            }
            0x8f => self.node(ctx, Node::Set(Vec::new()))?,
            0x91 => {
                let items = self.pop_mark()?;
                ctx.charge(items.len() * std::mem::size_of::<Value>())?;
                self.node(ctx, Node::Set(items))?
            }
            b'a' => {
                let v = self.pop()?;
                self.append(ctx, vec![v])?
            }
            b'e' | 0x90 => {
                let items = self.pop_mark()?;
                self.append(ctx, items)?
            }
            b's' => {
                let v = self.pop()?;
                let k = self.pop()?;
                self.set_items(ctx, vec![k, v])?
            }
            b'u' => {
                let items = self.pop_mark()?;
                self.set_items(ctx, items)?
            }
            b'p' => {
                let key = self
                    .line_str()?
                    .parse::<u32>()
                    .map_err(|_| "a memo key that is not a number")?;
                self.memo_put(ctx, key)?
            }
            b'q' => {
                let key = self.u8()? as u32;
                self.memo_put(ctx, key)?
            }
            b'r' => {
                let key = self.u32()?;
                self.memo_put(ctx, key)?
            }
            0x94 => {
                let key = u32::try_from(self.memo.len()).map_err(|_| "memo overflow")?;
                self.memo_put(ctx, key)?
            }
            b'g' => {
                let key = self
                    .line_str()?
                    .parse::<u32>()
                    .map_err(|_| "a memo key that is not a number")?;
                self.memo_get(ctx, key)?
            }
            b'h' => {
                let key = self.u8()? as u32;
                self.memo_get(ctx, key)?
            }
            b'j' => {
                let key = self.u32()?;
                self.memo_get(ctx, key)?
            }
            b'c' => {
                let module = self.line_str()?;
                let name = self.line_str()?;
                self.global(ctx, module, name)?
            }
            0x93 => {
                let name = self.pop()?;
                let module = self.pop()?;
                match (module, name) {
                    (Value::Str(m), Value::Str(n)) => self.global(ctx, &m, &n)?,
                    _ => return Err("STACK_GLOBAL needs two strings".into()),
                }
            }
            b'P' => {
                let s = self.line_str()?;
                ctx.charge(s.len())?;
                let v = ctx.persistent_load(Value::Str(s.into()))?;
                self.push(ctx, v)?
            }
            b'Q' => {
                let pid = self.pop()?;
                let v = ctx.persistent_load(pid)?;
                self.push(ctx, v)?
            }
            b'R' => {
                let args = self.pop()?;
                let f = self.pop()?;
                let v = ctx.call(f, args, CallKind::Reduce)?;
                self.push(ctx, v)?
            }
            0x81 => {
                let args = self.pop()?;
                let cls = self.pop()?;
                let v = ctx.call(cls, args, CallKind::NewObj)?;
                self.push(ctx, v)?
            }
            0x92 => {
                let _kwargs = self.pop()?;
                let args = self.pop()?;
                let cls = self.pop()?;
                let v = ctx.call(cls, args, CallKind::NewObj)?;
                self.push(ctx, v)?
            }
            b'i' => {
                let module = self.line_str()?;
                let name = self.line_str()?;
                let args = self.pop_mark()?;
                self.global(ctx, module, name)?;
                let cls = self.pop()?;
                let args = Value::Node(ctx.new_node(Node::Tuple(args))?);
                let v = ctx.call(cls, args, CallKind::Inst)?;
                self.push(ctx, v)?
            }
            b'o' => {
                let mut items = self.pop_mark()?;
                if items.is_empty() {
                    return Err("OBJ without a class".into());
                }
                let cls = items.remove(0);
                let args = Value::Node(ctx.new_node(Node::Tuple(items))?);
                let v = ctx.call(cls, args, CallKind::Inst)?;
                self.push(ctx, v)?
            }
            b'b' => {
                let state = self.pop()?;
                let obj = self.top()?.clone();
                ctx.build(&obj, state)?;
            }
            _ => return Err("not a pickle opcode this reader handles".into()),
        }
        Ok(None)
    }
}
