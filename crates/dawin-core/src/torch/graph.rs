//! From the unpickled object graph to dotted state-dict names, as PyTorch's `state_dict()` names
//! them.
//!
//! * A dict (`collections.OrderedDict` or `dict`): each string (or integer) key names its value;
//!   nested dicts, lists and modules are walked with `key.` as prefix.
//! * A pickled `nn.Module` (an object whose state has `_parameters`): `_parameters` (non-`None`),
//!   then `_buffers` not listed in `_non_persistent_buffers_set`, then each of `_modules` under
//!   `name.`, exactly `Module._save_to_state_dict`'s order. Plain attributes that hold tensors are
//!   not in a module's `state_dict()` and are reported as ignored; scalar attributes (e.g. a head's
//!   `normalize`) are kept for [`TorchCheckpoint::attribute`](super::TorchCheckpoint::attribute).
//! * A TorchScript object (class `__torch__.…`): its attributes; those listed in the class's
//!   `__parameters__` then `__buffers__` (from `code/`) are its tensors, other object attributes
//!   are submodules. Without class info every tensor attribute counts.
//! * Any other object (an inert call or class instance): its state and items are walked like a
//!   dict, so tensors held by plain attributes of non-module objects keep their attribute path.

use std::collections::HashSet;

use super::formats::ScriptInfo;
use super::loader::Ctx;
use super::pickle::{Node, NodeId, Value};
use super::Attr;

/// Deepest nesting walked.
const MAX_DEPTH: usize = 256;

/// What the walk found.
#[derive(Default)]
pub(crate) struct Walked {
    /// (name, a `Value::Tensor` or `Value::Unsupported`), in state-dict order.
    pub tensors: Vec<(String, Value)>,
    /// Scalar attributes by dotted path.
    pub attrs: Vec<(String, Attr)>,
    /// Module (and object) class names by dotted path ("" for the root).
    pub classes: Vec<(String, String)>,
    /// Values that were not used, with why.
    pub ignored: Vec<(String, String)>,
}

pub(crate) struct Walker<'c, 'a> {
    ctx: &'c Ctx<'a>,
    script: Option<&'c ScriptInfo>,
    out: Walked,
    on_path: HashSet<NodeId>,
    steps: usize,
    max_steps: usize,
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

impl<'c, 'a> Walker<'c, 'a> {
    pub fn walk(
        ctx: &'c Ctx<'a>,
        script: Option<&'c ScriptInfo>,
        root: &Value,
    ) -> Result<Walked, String> {
        let mut w = Walker {
            ctx,
            script,
            out: Walked::default(),
            on_path: HashSet::new(),
            steps: 0,
            max_steps: 4 * ctx.nodes.len() + 1_000_000,
        };
        w.value("", root, 0)?;
        Ok(w.out)
    }

    fn key_name(&self, k: &Value) -> Option<String> {
        match k {
            Value::Str(s) => Some(s.to_string()),
            Value::Int(i) => Some(i.to_string()),
            _ => None,
        }
    }

    fn class_name(&self, v: &Value) -> String {
        match v {
            Value::Global(g) => g.dotted(),
            other => format!("{other:?}"),
        }
    }

    /// Scalars become attributes; tensors are named; containers and objects are walked.
    fn value(&mut self, path: &str, v: &Value, depth: usize) -> Result<(), String> {
        self.steps += 1;
        if self.steps > self.max_steps {
            return Err("the object graph is too large to walk (shared nodes?)".into());
        }
        if depth > MAX_DEPTH {
            self.out
                .ignored
                .push((path.to_string(), format!("nested deeper than {MAX_DEPTH}")));
            return Ok(());
        }
        match v {
            Value::Tensor(_) | Value::Unsupported(_) => {
                self.out.tensors.push((path.to_string(), v.clone()))
            }
            Value::None => self.out.attrs.push((path.to_string(), Attr::None)),
            Value::Bool(b) => self.out.attrs.push((path.to_string(), Attr::Bool(*b))),
            Value::Int(i) => self.out.attrs.push((path.to_string(), Attr::Int(*i))),
            Value::Float(f) => self.out.attrs.push((path.to_string(), Attr::Float(*f))),
            Value::Str(s) => self
                .out
                .attrs
                .push((path.to_string(), Attr::Str(s.to_string()))),
            Value::BigInt(_) | Value::Bytes(_) | Value::Storage(_) => self.out.ignored.push((
                path.to_string(),
                "bytes, a big integer or a bare storage".into(),
            )),
            Value::Global(g) => self
                .out
                .attrs
                .push((path.to_string(), Attr::Class(g.dotted()))),
            Value::Node(id) => {
                if !self.on_path.insert(*id) {
                    self.out
                        .ignored
                        .push((path.to_string(), "a reference cycle".into()));
                    return Ok(());
                }
                let r = self.node(path, *id, depth);
                self.on_path.remove(id);
                r?;
            }
        }
        Ok(())
    }

    fn pairs(&mut self, path: &str, pairs: &[(Value, Value)], depth: usize) -> Result<(), String> {
        for (k, v) in pairs {
            match self.key_name(k) {
                Some(k) => self.value(&join(path, &k), v, depth + 1)?,
                None => self.out.ignored.push((
                    path.to_string(),
                    format!("a value under the non-string key {k:?}"),
                )),
            }
        }
        Ok(())
    }

    fn node(&mut self, path: &str, id: NodeId, depth: usize) -> Result<(), String> {
        let ctx = self.ctx;
        match ctx.node(id) {
            Node::Dict(pairs) => self.pairs(path, pairs, depth),
            Node::List(items) | Node::Tuple(items) => {
                for (i, v) in items.iter().enumerate() {
                    self.value(&join(path, &i.to_string()), v, depth + 1)?;
                }
                Ok(())
            }
            Node::Set(_) => Ok(()),
            Node::Object(o) => {
                let class = self.class_name(&o.class);
                self.out.classes.push((path.to_string(), class.clone()));
                let state = o.state.as_ref().and_then(|s| self.state_pairs(s));
                if let Some(st) = &state {
                    if st
                        .iter()
                        .any(|(k, _)| matches!(k, Value::Str(s) if s.as_ref() == "_parameters"))
                    {
                        return self.module(path, st, depth);
                    }
                    if class.starts_with("__torch__.") {
                        return self.script_object(path, &class, st, depth);
                    }
                }
                if !o.args.is_empty() && state.is_none() && o.pairs.is_empty() && o.items.is_empty()
                {
                    // An inert call such as `os.system('…')`: reported, never walked into.
                    self.out.ignored.push((
                        path.to_string(),
                        format!("a call of {class}(…), kept inert (not run)"),
                    ));
                    return Ok(());
                }
                if let Some(st) = &state {
                    self.pairs(path, st, depth)?;
                }
                self.pairs(path, &o.pairs, depth)?;
                for (i, v) in o.items.iter().enumerate() {
                    self.value(&join(path, &i.to_string()), v, depth + 1)?;
                }
                Ok(())
            }
        }
    }

    /// The `(key, value)` pairs of an object's state: a dict, or `(dict, slots)`.
    fn state_pairs(&self, s: &Value) -> Option<Vec<(Value, Value)>> {
        let dict = |v: &Value| match v {
            Value::Node(id) => match self.ctx.node(*id) {
                Node::Dict(p) => Some(p.clone()),
                _ => None,
            },
            _ => None,
        };
        let Value::Node(id) = s else { return None };
        match self.ctx.node(*id) {
            Node::Dict(p) => Some(p.clone()),
            Node::Tuple(t) if t.len() == 2 => {
                let mut out = dict(&t[0]).unwrap_or_default();
                out.extend(dict(&t[1]).unwrap_or_default());
                Some(out)
            }
            _ => None,
        }
    }

    fn get<'p>(pairs: &'p [(Value, Value)], key: &str) -> Option<&'p Value> {
        pairs
            .iter()
            .rev()
            .find(|(k, _)| matches!(k, Value::Str(s) if s.as_ref() == key))
            .map(|(_, v)| v)
    }

    fn dict_of(&self, v: Option<&Value>) -> Vec<(Value, Value)> {
        match v {
            Some(Value::Node(id)) => match self.ctx.node(*id) {
                Node::Dict(p) => p.clone(),
                Node::Object(o) => {
                    let mut p = o.pairs.clone();
                    if let Some(s) = o.state.as_ref().and_then(|s| self.state_pairs(s)) {
                        p.extend(s);
                    }
                    p
                }
                _ => Vec::new(),
            },
            _ => Vec::new(),
        }
    }

    fn string_set(&self, v: Option<&Value>) -> HashSet<String> {
        let items = match v {
            Some(Value::Node(id)) => match self.ctx.node(*id) {
                Node::Set(s) | Node::List(s) | Node::Tuple(s) => s.clone(),
                Node::Object(o) => o
                    .args
                    .first()
                    .and_then(|a| self.ctx.items(a))
                    .unwrap_or_default(),
                _ => Vec::new(),
            },
            _ => Vec::new(),
        };
        items
            .into_iter()
            .filter_map(|v| match v {
                Value::Str(s) => Some(s.to_string()),
                _ => None,
            })
            .collect()
    }

    /// A pickled `nn.Module`: parameters, persistent buffers, then submodules.
    fn module(&mut self, path: &str, st: &[(Value, Value)], depth: usize) -> Result<(), String> {
        for (k, v) in self.dict_of(Self::get(st, "_parameters")) {
            if let (Some(k), false) = (self.key_name(&k), matches!(v, Value::None)) {
                self.value(&join(path, &k), &v, depth + 1)?;
            }
        }
        let non_persistent = self.string_set(Self::get(st, "_non_persistent_buffers_set"));
        for (k, v) in self.dict_of(Self::get(st, "_buffers")) {
            let Some(k) = self.key_name(&k) else { continue };
            if matches!(v, Value::None) {
                continue;
            }
            if non_persistent.contains(&k) {
                self.out
                    .ignored
                    .push((join(path, &k), "a non-persistent buffer".into()));
                continue;
            }
            self.value(&join(path, &k), &v, depth + 1)?;
        }
        for (k, v) in self.dict_of(Self::get(st, "_modules")) {
            if let (Some(k), false) = (self.key_name(&k), matches!(v, Value::None)) {
                self.value(&join(path, &k), &v, depth + 1)?;
            }
        }
        for (k, v) in st {
            let Some(k) = self.key_name(k) else { continue };
            if k.starts_with('_') {
                continue;
            }
            match v {
                Value::None | Value::Bool(_) | Value::Int(_) | Value::Float(_) | Value::Str(_) => {
                    self.value(&join(path, &k), v, depth + 1)?
                }
                Value::Tensor(_) => self.out.ignored.push((
                    join(path, &k),
                    "a plain tensor attribute of a module (not in its state_dict())".into(),
                )),
                Value::Node(id) => {
                    let class = match self.ctx.node(*id) {
                        Node::Object(o) => self.class_name(&o.class),
                        _ => "a container".into(),
                    };
                    self.out.ignored.push((
                        join(path, &k),
                        format!("a plain attribute ({class}), not in state_dict()"),
                    ))
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// A TorchScript module object: parameters, buffers (per `code/`), then object attributes.
    fn script_object(
        &mut self,
        path: &str,
        class: &str,
        st: &[(Value, Value)],
        depth: usize,
    ) -> Result<(), String> {
        let info = self.script.and_then(|s| s.get(class)).cloned();
        let attrs: Vec<(String, Value)> = st
            .iter()
            .filter_map(|(k, v)| self.key_name(k).map(|k| (k, v.clone())))
            .collect();
        let is_tensor = |v: &Value| matches!(v, Value::Tensor(_) | Value::Unsupported(_));
        match &info {
            Some((params, buffers)) => {
                for list in [params, buffers] {
                    for (k, v) in &attrs {
                        if list.contains(k) && is_tensor(v) {
                            self.value(&join(path, k), v, depth + 1)?;
                        }
                    }
                }
                for (k, v) in &attrs {
                    if is_tensor(v) && !params.contains(k) && !buffers.contains(k) {
                        self.out.ignored.push((
                            join(path, k),
                            "a tensor attribute that is neither a parameter nor a buffer".into(),
                        ));
                    }
                }
            }
            None => {
                for (k, v) in &attrs {
                    if is_tensor(v) {
                        self.value(&join(path, k), v, depth + 1)?;
                    }
                }
            }
        }
        for (k, v) in &attrs {
            match v {
                Value::Node(id) if matches!(self.ctx.node(*id), Node::Object(_)) => {
                    self.value(&join(path, k), v, depth + 1)?
                }
                Value::None | Value::Bool(_) | Value::Int(_) | Value::Float(_) | Value::Str(_) => {
                    self.value(&join(path, k), v, depth + 1)?
                }
                _ => {}
            }
        }
        Ok(())
    }
}
