//! The file layouts: zip `torch.save` and TorchScript archives, legacy `torch.save`, plain
//! `pickle.dump`. Each runs the inert pickle VM on the right bytes and locates the storages.

use std::collections::HashMap;
use std::io::Cursor;

use super::loader::{Ctx, PidMode};
use super::pickle::{run, Node, Value};
use super::TorchFormat;
use crate::error::Result;

/// `torch.save`'s legacy magic number 0x1950a86a20f9469cfc6c, as a pickled `LONG1`.
const MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
/// The legacy format's protocol version.
const LEGACY_PROTOCOL: i64 = 1001;

/// Per TorchScript class (`__torch__.pkg.mod.Class`): its `__parameters__` and `__buffers__`,
/// read from the archive's `code/` sources (text only; nothing is run).
pub(crate) type ScriptInfo = HashMap<String, (Vec<String>, Vec<String>)>;

/// What a file holds: the root value, its layout and, for TorchScript, the class info.
pub(crate) struct Parsed {
    pub root: Value,
    pub format: TorchFormat,
    pub script: Option<ScriptInfo>,
}

/// Reads any supported layout.
pub(crate) fn read(ctx: &mut Ctx<'_>) -> Result<Parsed> {
    let f = ctx.file;
    if f.starts_with(b"PK\x03\x04") || f.starts_with(b"PK\x05\x06") {
        return zip_format(ctx);
    }
    if f.first() != Some(&0x80) && !f.first().is_some_and(|b| b"(}]cN".contains(b)) {
        let head: Vec<String> = f.iter().take(8).map(|b| format!("{b:02x}")).collect();
        return Err(ctx.error(format!(
            "neither a zip archive nor a pickle (it starts with bytes \
             {})",
            head.join(" ")
        )));
    }
    let (first, _) = run(ctx, 0, 0, f.len(), "the first pickle")?;
    if is_magic(&first) {
        let root = legacy(ctx, 0, 0, f.len(), "the legacy torch.save")?;
        return Ok(Parsed {
            root,
            format: TorchFormat::Legacy,
            script: None,
        });
    }
    Ok(Parsed {
        root: first,
        format: TorchFormat::Pickle,
        script: None,
    })
}

fn is_magic(v: &Value) -> bool {
    matches!(v, Value::BigInt(b) if b.as_ref() == MAGIC)
}

/// A legacy `torch.save` in `buf[start..end]`: magic number, protocol version, sys_info, the
/// object pickle, the storage-key list, then for each key an 8-byte little-endian element count
/// and the raw bytes. Returns the object; its storages point into the buffer (no copy).
pub(crate) fn legacy(
    ctx: &mut Ctx<'_>,
    buf: usize,
    start: usize,
    end: usize,
    what: &str,
) -> Result<Value> {
    let (magic, p) = run(ctx, buf, start, end, &format!("{what}: magic number"))?;
    if !is_magic(&magic) {
        return Err(ctx.error(format!("{what}: not a legacy torch.save (no magic number)")));
    }
    let (proto, p) = run(ctx, buf, p, end, &format!("{what}: protocol version"))?;
    if !matches!(proto, Value::Int(LEGACY_PROTOCOL)) {
        return Err(ctx.error(format!(
            "{what}: legacy protocol version {proto:?} is not handled (expected {LEGACY_PROTOCOL})"
        )));
    }
    let (sys_info, p) = run(ctx, buf, p, end, &format!("{what}: sys_info"))?;
    if let Value::Node(id) = sys_info {
        if let Node::Dict(d) = ctx.node(id) {
            let big_endian = d.iter().any(|(k, v)| {
                matches!(k, Value::Str(s) if s.as_ref() == "little_endian")
                    && matches!(v, Value::Bool(false))
            });
            if big_endian {
                return Err(ctx.error(format!(
                    "{what}: written on a big-endian machine, which is not handled"
                )));
            }
        }
    }
    ctx.pid = PidMode::Legacy {
        by_key: HashMap::new(),
    };
    let (root, p) = run(ctx, buf, p, end, &format!("{what}: object pickle"))?;
    let (keys, mut p) = run(ctx, buf, p, end, &format!("{what}: storage keys"))?;
    let keys = ctx
        .items(&keys)
        .ok_or_else(|| ctx.error(format!("{what}: the storage-key list is not a list")))?;
    let PidMode::Legacy { by_key } = std::mem::replace(&mut ctx.pid, PidMode::None) else {
        unreachable!("set above")
    };
    let data_len = ctx.buffer(buf)[..end].len();
    for k in keys {
        let Value::Str(k) = k else {
            return Err(ctx.error(format!("{what}: a storage key {k:?} is not a string")));
        };
        let &idx = by_key.get(k.as_ref()).ok_or_else(|| {
            ctx.error(format!(
                "{what}: storage `{k}` is listed but no tensor uses it, so its element size is \
                 unknown"
            ))
        })?;
        let count = ctx
            .buffer(buf)
            .get(p..p + 8)
            .filter(|_| p + 8 <= end)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
            .ok_or_else(|| {
                ctx.error(format!(
                    "{what}: the data of storage `{k}` is missing at byte {p} (truncated)"
                ))
            })?;
        let st = &ctx.storages[idx];
        if count != st.numel {
            return Err(ctx.error(format!(
                "{what}: storage `{k}` holds {count} elements but its pickle declares {}",
                st.numel
            )));
        }
        let bytes = count
            .checked_mul(st.elem_size as u64)
            .and_then(|b| usize::try_from(b).ok())
            .filter(|&b| b <= data_len.saturating_sub(p + 8))
            .ok_or_else(|| {
                ctx.error(format!(
                    "{what}: storage `{k}` ({count} elements at byte {}) runs past the end of \
                     the data (truncated)",
                    p + 8
                ))
            })?;
        ctx.storages[idx].data = Ok(super::pickle::Blob {
            buf,
            start: p + 8,
            len: bytes,
        });
        p += 8 + bytes;
    }
    for (k, &idx) in &by_key {
        if let Err(e) = &ctx.storages[idx].data {
            if e == "not located yet" {
                ctx.storages[idx].data = Err(format!(
                    "storage `{k}` is not in the file's storage-key list"
                ));
            }
        }
    }
    Ok(root)
}

/// A zip archive: `torch.save` (default since PyTorch 1.6) or `torch.jit.save`.
fn zip_format(ctx: &mut Ctx<'_>) -> Result<Parsed> {
    let file = ctx.file;
    let archive = zip::ZipArchive::new(Cursor::new(file))
        .map_err(|e| ctx.error(format!("not a readable zip archive (truncated?): {e}")))?;
    let mut names = Vec::with_capacity(archive.len().min(file.len() / 30 + 1));
    for i in 0..archive.len() {
        match archive.name_for_index(i) {
            Some(Ok(n)) => names.push((i, n.into_owned())),
            _ => return Err(ctx.error(format!("zip entry {i} has no readable name"))),
        }
    }
    let root = names
        .iter()
        .filter_map(|(_, n)| n.strip_suffix("/data.pkl"))
        .filter(|r| !r.contains('/'))
        .min_by_key(|r| r.len())
        .map(str::to_string);
    let Some(root) = root else {
        let old_script = names.iter().any(|(_, n)| n.ends_with("model.json"));
        let listed: Vec<&str> = names.iter().take(6).map(|(_, n)| n.as_str()).collect();
        return Err(ctx.error(if old_script {
            "a TorchScript archive of the format before PyTorch 1.4 (model.json): not handled"
                .to_string()
        } else {
            format!(
                "the zip archive has no <folder>/data.pkl, so it is not a torch.save or \
                 TorchScript archive (its entries begin: {})",
                listed.join(", ")
            )
        }));
    };
    let prefix = format!("{root}/");
    let mut entries = HashMap::new();
    for (i, n) in names {
        if let Some(rel) = n.strip_prefix(&prefix) {
            entries.insert(rel.to_string(), (i, n));
        }
    }
    let is_script =
        entries.keys().any(|k| k.starts_with("code/")) || entries.contains_key("constants.pkl");
    ctx.pid = PidMode::Zip {
        archive: Box::new(archive),
        entries,
        by_key: HashMap::new(),
    };
    if entries_has(ctx, "byteorder") {
        let b = entry_blob(ctx, "byteorder")?;
        if &ctx.buffer(b.buf)[b.start..b.start + b.len] == b"big" {
            return Err(ctx.error(format!(
                "{root}/byteorder says `big`: written on a big-endian machine, which is not \
                 handled"
            )));
        }
    }
    let script = if is_script {
        Some(script_info(ctx)?)
    } else {
        None
    };
    let data_pkl = entry_blob(ctx, "data.pkl")?;
    let what = format!("{root}/data.pkl");
    let (root_value, _) = run(
        ctx,
        data_pkl.buf,
        data_pkl.start,
        data_pkl.start + data_pkl.len,
        &what,
    )?;
    Ok(Parsed {
        root: root_value,
        format: if is_script {
            TorchFormat::TorchScript
        } else {
            TorchFormat::Zip
        },
        script,
    })
}

/// The bytes of the archive entry `rel` (relative to the root folder): a range of the file when
/// stored, an inflated copy otherwise.
fn entry_blob(ctx: &mut Ctx<'_>, rel: &str) -> Result<super::pickle::Blob> {
    let PidMode::Zip {
        archive, entries, ..
    } = &mut ctx.pid
    else {
        unreachable!("zip mode")
    };
    let Some((i, name)) = entries.get(rel).cloned() else {
        return Err(ctx.error(format!("the archive has no entry {rel}")));
    };
    let f = archive
        .by_index_raw(i)
        .map_err(|e| super::format_error(ctx.path, format!("entry {name}: {e}")))?;
    let (size, csize, stored, start) = (
        f.size(),
        f.compressed_size(),
        f.compression() == zip::CompressionMethod::Stored,
        f.data_start(),
    );
    drop(f);
    if stored {
        let start = start.unwrap_or(u64::MAX);
        let end = start.saturating_add(csize);
        if end > ctx.file.len() as u64 || csize != size {
            return Err(ctx.error(format!(
                "entry {name}: {csize} bytes at offset {start} do not fit in the file (truncated?)"
            )));
        }
        return Ok(super::pickle::Blob {
            buf: 0,
            start: start as usize,
            len: csize as usize,
        });
    }
    let size = usize::try_from(size).unwrap_or(usize::MAX);
    ctx.charge(size)
        .map_err(|e| ctx.error(format!("entry {name}: {e}")))?;
    let PidMode::Zip { archive, .. } = &mut ctx.pid else {
        unreachable!("zip mode")
    };
    let mut out = Vec::new();
    let r = archive
        .by_index(i)
        .map_err(|e| e.to_string())
        .and_then(|f| {
            use std::io::Read;
            f.take(size as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| e.to_string())
        });
    if let Err(e) = r {
        return Err(ctx.error(format!("entry {name}: {e}")));
    }
    if out.len() != size {
        return Err(ctx.error(format!(
            "entry {name} inflates to {} bytes, not the {size} its header declares",
            out.len()
        )));
    }
    ctx.owned.push(out.into());
    Ok(super::pickle::Blob {
        buf: ctx.owned.len(),
        start: 0,
        len: size,
    })
}

/// `__parameters__` and `__buffers__` of every class in the archive's `code/` sources, read as
/// text: `class Name(Module):` then `  __parameters__ = ["a", "b", ]`.
fn script_info(ctx: &mut Ctx<'_>) -> Result<ScriptInfo> {
    let PidMode::Zip { entries, .. } = &ctx.pid else {
        unreachable!("zip mode")
    };
    let mut files: Vec<String> = entries
        .keys()
        .filter(|k| k.starts_with("code/") && k.ends_with(".py"))
        .cloned()
        .collect();
    files.sort();
    let mut info = ScriptInfo::new();
    for rel in files {
        let blob = entry_blob(ctx, &rel)?;
        let text = &ctx.buffer(blob.buf)[blob.start..blob.start + blob.len];
        let Ok(text) = std::str::from_utf8(text) else {
            continue;
        };
        let module = rel["code/".len()..rel.len() - 3].replace('/', ".");
        let mut class: Option<String> = None;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("class ") {
                let name = rest.split(['(', ':']).next().unwrap_or("").trim();
                class = Some(format!("{module}.{name}"));
                continue;
            }
            let Some(c) = &class else { continue };
            let t = line.trim_start();
            for (field, which) in [("__parameters__", 0), ("__buffers__", 1)] {
                if let Some(list) = t
                    .strip_prefix(field)
                    .and_then(|r| r.trim_start().strip_prefix('='))
                {
                    let names: Vec<String> = list
                        .split('"')
                        .skip(1)
                        .step_by(2)
                        .map(str::to_string)
                        .collect();
                    let e = info.entry(c.clone()).or_default();
                    if which == 0 {
                        e.0 = names;
                    } else {
                        e.1 = names;
                    }
                }
            }
        }
    }
    Ok(info)
}

fn entries_has(ctx: &Ctx<'_>, rel: &str) -> bool {
    matches!(&ctx.pid, PidMode::Zip { entries, .. } if entries.contains_key(rel))
}
