//! Any readable checkpoint written as safetensors in this tool's naming, with its resolved
//! architecture in the metadata (`dawin convert`).
//!
//! The output holds the vision tower as `visual.*` (OpenAI / open_clip naming: q, k, v packed in
//! `attn.in_proj_weight`, `visual.proj` `[W, E]`), LayerScale's `…ls_1.gamma` / `…ls_2.gamma`
//! when the tower has them, and the head as `classification_head.weight` / `.bias` when there is
//! one; nothing else (the text tower and other tensors are left out). Values are those of the
//! input, read through f32 and written in the tower's own dtype (f32, f16 or bf16; a mix becomes
//! f32) or the one asked for, so a conversion keeps every value exactly. The metadata carries
//! `dawin.vit.heads`, `dawin.vit.activation`, `dawin.vit.layer_scale`,
//! `dawin.vit.layer_norm_eps`, `dawin.head.normalize` (read back when loading: the converted
//! file needs no flag), each only when something other than a default decided it (a default is
//! decided, and warned about, again when the file is read), and `dawin.arch`, the whole
//! resolution as JSON with every field's source.
//!
//! With a shard size, the tensors go to `<stem>-0000i-of-0000n.safetensors` files of at most
//! that many bytes of tensor data each (a larger tensor gets a shard of its own) and a Hugging
//! Face index `<out>.index.json` (`{"metadata": {"total_size": …}, "weight_map": {…}}`). Every
//! file is written to a temporary file and renamed into place, the index last.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use dawin_core::{DType, OwnedTensor};

use crate::arch::{
    SourceKind, ACTIVATION_METADATA_KEY, ARCH_METADATA_KEY, LAYER_NORM_EPS_METADATA_KEY,
    LAYER_SCALE_METADATA_KEY,
};
use crate::error::{Error, Result};
use crate::head::NORMALIZE_METADATA_KEY;
use crate::load::Opened;
use crate::params::{Group, ParamList, Stored};
use crate::tensors::HEADS_METADATA_KEY;
use crate::weights::{transpose, CheckpointNaming, ParamSpec};

/// How to write a conversion.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ConvertOptions {
    /// At most this many bytes of tensor data per shard; `None`: one file.
    pub shard_size: Option<u64>,
    /// The output dtype (`F32`, `F16`, `BF16`); `None`: the vision tower's own (f32 for a mix).
    pub dtype: Option<DType>,
}

/// What a conversion wrote.
#[derive(Clone, Debug, PartialEq)]
pub struct Converted {
    /// The safetensors files, in order.
    pub files: Vec<PathBuf>,
    /// The shard index, when sharded.
    pub index: Option<PathBuf>,
    /// Number of tensors written.
    pub tensors: usize,
    /// Bytes of tensor data.
    pub total_size: u64,
    /// Their dtype.
    pub dtype: DType,
}

/// Parses a size such as `2GB`, `500MB`, `1.5GB`, `64KiB` or `1000000` (bytes), as Hugging
/// Face's `max_shard_size` does: `KB`/`MB`/`GB` are powers of 1000, `KiB`/`MiB`/`GiB` of 1024.
pub fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let mult: u64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        "KIB" => 1 << 10,
        "MIB" => 1 << 20,
        "GIB" => 1 << 30,
        "TIB" => 1 << 40,
        _ => {
            return Err(Error::arg(
                "shard-size",
                format!("`{s}`: expected a size such as 2GB, 500MB, 64KiB or a byte count"),
            ))
        }
    };
    let v: f64 = num
        .parse()
        .map_err(|_| Error::arg("shard-size", format!("`{s}`: `{num}` is not a number")))?;
    let bytes = (v * mult as f64).round();
    if !(bytes >= 1.0 && bytes < u64::MAX as f64) {
        return Err(Error::arg(
            "shard-size",
            format!("`{s}` must be at least one byte"),
        ));
    }
    Ok(bytes as u64)
}

fn cast(name: String, shape: Vec<usize>, data: &[f32], dtype: DType) -> Result<OwnedTensor> {
    Ok(match dtype {
        DType::F32 => OwnedTensor::from_f32(name, shape, data),
        DType::F16 => {
            let v: Vec<half::f16> = data.iter().map(|&x| half::f16::from_f32(x)).collect();
            OwnedTensor::from_slice(name, shape, &v)
        }
        DType::BF16 => {
            let v: Vec<half::bf16> = data.iter().map(|&x| half::bf16::from_f32(x)).collect();
            OwnedTensor::from_slice(name, shape, &v)
        }
        other => {
            return Err(Error::arg(
                "dtype",
                format!("{other}: a conversion writes f32, f16 or bf16"),
            ))
        }
    })
}

/// The tensors of `opened` in this tool's naming, in `dtype`.
fn tool_tensors(opened: &Opened, dtype: DType) -> Result<Vec<OwnedTensor>> {
    let arch = &opened.arch;
    let ck = &opened.checkpoint;
    let cfg = arch.shape_config();
    let out_naming = CheckpointNaming::OpenAi {
        prefix: "visual.".into(),
    };
    let mut out = Vec::new();
    for def in ParamList::new(&cfg).group(Group::Encoder) {
        let data = ParamSpec::new(def, &arch.naming, "").load(ck)?;
        let parts = def.checkpoint_tensors(&out_naming, "");
        let (name, shape) = parts
            .into_iter()
            .next()
            .expect("one tensor in OpenAI naming");
        let data = match def.stored(&out_naming) {
            Stored::Transposed(_) => transpose(&data, shape[1], shape[0]),
            _ => data,
        };
        out.push(cast(name, shape, &data, dtype)?);
    }
    if let Some(h) = &arch.head {
        let (w, b, c, e) = match &opened.head {
            Some(file) => (
                file.linear.weight.clone(),
                file.linear.bias.clone(),
                file.linear.out_dim,
                file.linear.in_dim,
            ),
            None => {
                let head = crate::head::read_head_tensors(
                    ck,
                    &h.weight_name,
                    &format!("{}bias", h.weight_name.strip_suffix("weight").unwrap_or("")),
                )?;
                let l = head.linear;
                (l.weight, l.bias, l.out_dim, l.in_dim)
            }
        };
        out.push(cast(
            "classification_head.weight".into(),
            vec![c, e],
            &w,
            dtype,
        )?);
        if let Some(b) = b {
            out.push(cast("classification_head.bias".into(), vec![c], &b, dtype)?);
        }
    }
    Ok(out)
}

/// The metadata of a conversion: what loading reads back, and the whole resolution.
fn metadata(opened: &Opened) -> HashMap<String, String> {
    let a = &opened.arch;
    let mut m = HashMap::new();
    // A value a default decided is not written as a fact: read back, it is decided (and warned
    // about) by the same default again.
    let mut put = |key: &str, value: String, source: &crate::arch::Source| {
        if source.kind != SourceKind::Default {
            m.insert(key.to_string(), value);
        }
    };
    put(
        HEADS_METADATA_KEY,
        a.heads.value.to_string(),
        &a.heads.source,
    );
    put(
        ACTIVATION_METADATA_KEY,
        a.activation.value.name().to_string(),
        &a.activation.source,
    );
    put(
        LAYER_SCALE_METADATA_KEY,
        a.layer_scale.value.to_string(),
        &a.layer_scale.source,
    );
    put(
        LAYER_NORM_EPS_METADATA_KEY,
        format!("{:e}", a.layer_norm_eps.value),
        &a.layer_norm_eps.source,
    );
    if let Some(h) = &a.head {
        put(
            NORMALIZE_METADATA_KEY,
            h.normalize.value.to_string(),
            &h.normalize.source,
        );
    }
    m.insert(ARCH_METADATA_KEY.to_string(), a.to_json().to_string());
    m.insert("format".to_string(), "pt".to_string());
    m
}

/// Writes `opened` (its vision tower and head; see the module docs) to `out` (a `.safetensors`
/// path), sharded when `opts.shard_size` is set and the tensors do not fit one shard. Refuses
/// unused tensors unless `ignore_unused` (they are left out either way).
pub fn convert(
    opened: &Opened,
    out: &Path,
    opts: &ConvertOptions,
    ignore_unused: bool,
) -> Result<Converted> {
    opened.arch.check_unused(ignore_unused)?;
    let stem = out
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".safetensors"))
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Error::arg("out", format!("{} must end in .safetensors", out.display())))?
        .to_string();
    let dtype = match opts.dtype {
        Some(d) => d,
        None => match opened.arch.dtype.value.as_str() {
            "f16" => DType::F16,
            "bf16" => DType::BF16,
            _ => DType::F32,
        },
    };
    let tensors = tool_tensors(opened, dtype)?;
    let meta = metadata(opened);
    let total: u64 = tensors.iter().map(|t| t.bytes.len() as u64).sum();
    let count = tensors.len();
    let max = opts.shard_size.unwrap_or(u64::MAX);
    let mut shards: Vec<Vec<OwnedTensor>> = vec![Vec::new()];
    let mut size = 0u64;
    for t in tensors {
        let n = t.bytes.len() as u64;
        if size > 0 && size.saturating_add(n) > max {
            shards.push(Vec::new());
            size = 0;
        }
        size += n;
        shards.last_mut().expect("one shard").push(t);
    }
    if shards.len() == 1 {
        dawin_core::write_safetensors(out, &shards[0], Some(meta))?;
        return Ok(Converted {
            files: vec![out.to_path_buf()],
            index: None,
            tensors: count,
            total_size: total,
            dtype,
        });
    }
    let dir = out.parent().unwrap_or(Path::new(""));
    let n = shards.len();
    let mut files = Vec::new();
    let mut weight_map = BTreeMap::new();
    for (i, shard) in shards.iter().enumerate() {
        let file = format!("{stem}-{:05}-of-{n:05}.safetensors", i + 1);
        let p = dir.join(&file);
        dawin_core::write_safetensors(&p, shard, Some(meta.clone()))?;
        for t in shard {
            weight_map.insert(t.name.clone(), file.clone());
        }
        files.push(p);
    }
    let mut index_meta: serde_json::Map<String, serde_json::Value> = meta
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    index_meta.insert("total_size".into(), total.into());
    let index = serde_json::json!({ "metadata": index_meta, "weight_map": weight_map });
    let index_path = dir.join(format!("{stem}.safetensors.index.json"));
    let text = serde_json::to_string_pretty(&index).expect("JSON of strings");
    dawin_core::atomic_write(&index_path, |tmp| std::fs::write(tmp, text.as_bytes()))?;
    Ok(Converted {
        files,
        index: Some(index_path),
        tensors: count,
        total_size: total,
        dtype,
    })
}
