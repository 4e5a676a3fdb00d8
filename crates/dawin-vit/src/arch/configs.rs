//! What the sources other than the tensors say: open_clip's model names (`--arch`), a Hugging
//! Face `config.json`, open_clip's `open_clip_config.json`, and the `dawin.vit.*` metadata
//! written by this tool. Each source becomes a list of [`Claim`]s (a field, a value, where it
//! was read).

use std::path::{Path, PathBuf};

use serde_json::Value as Json;

use super::presets::mlp_width;
use super::{Claim, Field, Source, SourceKind, Value};
use crate::config::Activation;
use crate::error::{Error, Result};
use crate::tensors::{TensorSource, HEADS_METADATA_KEY};

/// Metadata key of the MLP activation (`quick-gelu` / `gelu`) written by `dawin convert`.
pub const ACTIVATION_METADATA_KEY: &str = "dawin.vit.activation";
/// Metadata key of LayerScale (`true` / `false`).
pub const LAYER_SCALE_METADATA_KEY: &str = "dawin.vit.layer_scale";
/// Metadata key of the layer-norm epsilon.
pub const LAYER_NORM_EPS_METADATA_KEY: &str = "dawin.vit.layer_norm_eps";
/// Metadata key of the whole resolved architecture, as JSON with every field's source
/// (informational: the fields above are what loading reads back).
pub const ARCH_METADATA_KEY: &str = "dawin.arch";

/// The configuration files found for a checkpoint.
#[derive(Clone, Debug, Default)]
pub(crate) struct ConfigFiles {
    pub hf: Option<(PathBuf, Json)>,
    pub open_clip: Option<(PathBuf, Json)>,
    /// Files looked at and not used, with why.
    pub notes: Vec<String>,
}

fn read_json(path: &Path) -> Result<Json> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    serde_json::from_str(&text)
        .map_err(|e| Error::Config(format!("{}: not JSON: {e}", path.display())))
}

/// Whether a JSON object is a Hugging Face CLIP config (`vision_config`, or a `model_type`
/// starting with `clip`).
fn is_hf_clip(j: &Json) -> bool {
    j.get("vision_config").is_some()
        || j.get("model_type")
            .and_then(Json::as_str)
            .is_some_and(|t| t.starts_with("clip"))
}

impl ConfigFiles {
    /// `config.json` and `open_clip_config.json` in `dir` (when given), and the explicit file
    /// `explicit` (its kind told by its content: `model_cfg` → open_clip, a CLIP `vision_config`
    /// or `model_type` → Hugging Face), which replaces a file of the same kind found in `dir`.
    pub fn find(dir: Option<&Path>, explicit: Option<&Path>) -> Result<Self> {
        let mut out = ConfigFiles::default();
        if let Some(dir) = dir {
            let hf = dir.join("config.json");
            if hf.is_file() {
                let j = read_json(&hf)?;
                if is_hf_clip(&j) {
                    out.hf = Some((hf, j));
                } else {
                    out.notes.push(format!(
                        "{} is not a Hugging Face CLIP config (no vision_config, model_type {}): not read",
                        hf.display(),
                        j.get("model_type").map_or("absent".into(), |t| t.to_string())
                    ));
                }
            }
            let oc = dir.join("open_clip_config.json");
            if oc.is_file() {
                out.open_clip = Some((oc.clone(), read_json(&oc)?));
            }
        }
        if let Some(p) = explicit {
            let j = read_json(p)?;
            let replaced = if j.get("model_cfg").is_some() {
                out.open_clip.replace((p.to_path_buf(), j))
            } else if is_hf_clip(&j) {
                out.hf.replace((p.to_path_buf(), j))
            } else {
                return Err(Error::Config(format!(
                    "{}: neither an open_clip config (no `model_cfg`) nor a Hugging Face CLIP \
                     config (no `vision_config`, `model_type` not clip…)",
                    p.display()
                )));
            };
            if let Some((old, _)) = replaced {
                out.notes.push(format!(
                    "{} not read: --config {} replaces it",
                    old.display(),
                    p.display()
                ));
            }
        }
        Ok(out)
    }

    /// Every claim of both files.
    pub fn claims(&self) -> Result<Vec<Claim>> {
        let mut v = Vec::new();
        if let Some((p, j)) = &self.hf {
            v.extend(hf_claims(p, j)?);
        }
        if let Some((p, j)) = &self.open_clip {
            v.extend(open_clip_claims(p, j)?);
        }
        Ok(v)
    }

    /// The files read.
    pub fn paths(&self) -> Vec<String> {
        let mut v = Vec::new();
        if let Some((p, _)) = &self.hf {
            v.push(p.display().to_string());
        }
        if let Some((p, _)) = &self.open_clip {
            v.push(p.display().to_string());
        }
        v
    }
}

/// How a claim's detail names its file: nothing when it has the canonical name (the source's
/// kind says it), else the file name and a space.
fn label(path: &Path, canonical: &str) -> String {
    match path.file_name().and_then(|n| n.to_str()) {
        Some(n) if n == canonical => String::new(),
        Some(n) => format!("{n} "),
        None => format!("{} ", path.display()),
    }
}

fn usize_of(path: &Path, key: &str, j: &Json) -> Result<usize> {
    // `image_size` / `patch_size` may be a square pair.
    if let Some(a) = j.as_array() {
        if a.len() == 2 && a[0] == a[1] {
            return usize_of(path, key, &a[0]);
        }
    }
    j.as_u64().map(|v| v as usize).ok_or_else(|| {
        Error::Config(format!(
            "{}: `{key}` = {j} is not a positive integer (or a square pair)",
            path.display()
        ))
    })
}

/// A Hugging Face `config.json` of a `CLIPModel` (`vision_config`, `text_config`,
/// `projection_dim`) or of a `CLIPVisionModel(WithProjection)` (the vision fields at the top
/// level). A key it omits takes transformers' default (`save_pretrained` omits values equal to
/// the default): the claim says so.
fn hf_claims(path: &Path, j: &Json) -> Result<Vec<Claim>> {
    let mut out = Vec::new();
    let (vision, vkey) = match j.get("vision_config") {
        Some(v) => (v, "vision_config."),
        None => (j, ""),
    };
    let file = label(path, "config.json");
    let push = |out: &mut Vec<Claim>,
                field: Field,
                obj: &Json,
                prefix: &str,
                key: &str,
                default: Value|
     -> Result<()> {
        let (value, detail) = match obj.get(key) {
            Some(v) => {
                let value = match default {
                    Value::N(_) => Value::N(usize_of(path, key, v)?),
                    Value::F(_) => Value::F(v.as_f64().ok_or_else(|| {
                        Error::Config(format!(
                            "{}: `{prefix}{key}` = {v} is not a number",
                            path.display()
                        ))
                    })? as f32),
                    Value::Act(_) => Value::Act(hf_activation(path, &format!("{prefix}{key}"), v)?),
                    Value::Bool(_) => unreachable!("no bool field in config.json"),
                };
                (value, format!("{file}{prefix}{key} = {v}"))
            }
            None => (
                default.clone(),
                format!("{file}{prefix}{key} absent: transformers' default {default}"),
            ),
        };
        out.push(Claim::new(
            field,
            value,
            Source::new(SourceKind::HfConfig, detail),
        ));
        Ok(())
    };
    push(
        &mut out,
        Field::Width,
        vision,
        vkey,
        "hidden_size",
        Value::N(768),
    )?;
    push(
        &mut out,
        Field::Layers,
        vision,
        vkey,
        "num_hidden_layers",
        Value::N(12),
    )?;
    push(
        &mut out,
        Field::Heads,
        vision,
        vkey,
        "num_attention_heads",
        Value::N(12),
    )?;
    push(
        &mut out,
        Field::MlpDim,
        vision,
        vkey,
        "intermediate_size",
        Value::N(3072),
    )?;
    push(
        &mut out,
        Field::ImageSize,
        vision,
        vkey,
        "image_size",
        Value::N(224),
    )?;
    push(
        &mut out,
        Field::PatchSize,
        vision,
        vkey,
        "patch_size",
        Value::N(32),
    )?;
    push(
        &mut out,
        Field::Activation,
        vision,
        vkey,
        "hidden_act",
        Value::Act(Activation::QuickGelu),
    )?;
    push(
        &mut out,
        Field::LayerNormEps,
        vision,
        vkey,
        "layer_norm_eps",
        Value::F(1e-5),
    )?;
    // The projection width: CLIPModel's top-level projection_dim, else the vision config's.
    if j.get("projection_dim").is_some() || vkey.is_empty() {
        push(
            &mut out,
            Field::EmbedDim,
            j,
            "",
            "projection_dim",
            Value::N(512),
        )?;
    } else {
        push(
            &mut out,
            Field::EmbedDim,
            vision,
            vkey,
            "projection_dim",
            Value::N(512),
        )?;
    }
    if let Some(text) = j.get("text_config") {
        let t = "text_config.";
        push(
            &mut out,
            Field::TextWidth,
            text,
            t,
            "hidden_size",
            Value::N(512),
        )?;
        push(
            &mut out,
            Field::TextLayers,
            text,
            t,
            "num_hidden_layers",
            Value::N(12),
        )?;
        push(
            &mut out,
            Field::TextHeads,
            text,
            t,
            "num_attention_heads",
            Value::N(8),
        )?;
        push(
            &mut out,
            Field::TextContext,
            text,
            t,
            "max_position_embeddings",
            Value::N(77),
        )?;
        push(
            &mut out,
            Field::TextVocab,
            text,
            t,
            "vocab_size",
            Value::N(49408),
        )?;
        push(
            &mut out,
            Field::TextActivation,
            text,
            t,
            "hidden_act",
            Value::Act(Activation::QuickGelu),
        )?;
    }
    Ok(out)
}

/// `hidden_act`: `quick_gelu` or `gelu` (exact); the tanh approximations are refused.
fn hf_activation(path: &Path, key: &str, v: &Json) -> Result<Activation> {
    match v.as_str() {
        Some("quick_gelu") => Ok(Activation::QuickGelu),
        Some("gelu") => Ok(Activation::Gelu),
        _ => Err(Error::Config(format!(
            "{}: `{key}` = {v}: only \"quick_gelu\" and \"gelu\" (exact) are implemented",
            path.display()
        ))),
    }
}

/// open_clip's `open_clip_config.json` (`{"model_cfg": {...}}`, as its Hugging Face
/// repositories ship it; a bare model config is read too). `quick_gelu` absent means exact GELU
/// and `head_width` absent means 64, as open_clip reads them. Settings that change the tower in
/// ways this crate does not implement are refused, naming the key.
fn open_clip_claims(path: &Path, j: &Json) -> Result<Vec<Claim>> {
    let file = path.display().to_string();
    let short = label(path, "open_clip_config.json");
    let cfg = j.get("model_cfg").unwrap_or(j);
    let vision = cfg
        .get("vision_cfg")
        .ok_or_else(|| Error::Config(format!("{file}: no `model_cfg.vision_cfg`")))?;
    let key = |k: &str| format!("model_cfg.vision_cfg.{k}");
    let refuse = |k: &str, v: &Json| {
        Error::Config(format!(
            "{file}: `{}` = {v} describes a tower this crate does not implement",
            key(k)
        ))
    };
    for (k, default) in [
        ("attentional_pool", Json::Bool(false)),
        ("no_ln_pre", Json::Bool(false)),
        ("final_ln_after_pool", Json::Bool(false)),
        ("qk_norm", Json::Bool(false)),
        ("scaled_cosine_attn", Json::Bool(false)),
        ("scale_heads", Json::Bool(false)),
        ("scale_attn_inner", Json::Bool(false)),
        ("scale_attn", Json::Bool(false)),
        ("scale_fc", Json::Bool(false)),
        ("pool_type", Json::String("tok".into())),
        ("pos_embed_type", Json::String("learnable".into())),
    ] {
        if let Some(v) = vision.get(k) {
            if *v != default {
                return Err(refuse(k, v));
            }
        }
    }
    for k in ["timm_model_name", "act_kwargs"] {
        if let Some(v) = vision.get(k).filter(|v| !v.is_null()) {
            return Err(refuse(k, v));
        }
    }
    if vision.get("layers").is_some_and(Json::is_array) {
        return Err(refuse("layers", &vision["layers"]));
    }
    let src = |detail: String| Source::new(SourceKind::OpenClipConfig, format!("{short}{detail}"));
    let get_n = |k: &str, default: usize| -> Result<(usize, String)> {
        match vision.get(k) {
            Some(v) => Ok((usize_of(path, &key(k), v)?, format!("{} = {v}", key(k)))),
            None => Ok((
                default,
                format!("{} absent: open_clip's default {default}", key(k)),
            )),
        }
    };
    let mut out = Vec::new();
    let (width, wd) = get_n("width", 768)?;
    out.push(Claim::new(Field::Width, Value::N(width), src(wd)));
    let (layers, ld) = get_n("layers", 12)?;
    out.push(Claim::new(Field::Layers, Value::N(layers), src(ld)));
    let (patch, pd) = get_n("patch_size", 16)?;
    out.push(Claim::new(Field::PatchSize, Value::N(patch), src(pd)));
    let (image, id) = get_n("image_size", 224)?;
    out.push(Claim::new(Field::ImageSize, Value::N(image), src(id)));
    let (hw, hd) = get_n("head_width", 64)?;
    if hw == 0 || width % hw != 0 {
        return Err(Error::Config(format!(
            "{file}: head_width {hw} does not divide width {width}"
        )));
    }
    out.push(Claim::new(
        Field::Heads,
        Value::N(width / hw),
        src(format!("width {width} / {hd}")),
    ));
    let (ratio, rd) = match vision.get("mlp_ratio") {
        Some(v) => (
            v.as_f64().ok_or_else(|| {
                Error::Config(format!(
                    "{file}: `{}` = {v} is not a number",
                    key("mlp_ratio")
                ))
            })?,
            format!("{} = {v}", key("mlp_ratio")),
        ),
        None => (
            4.0,
            format!("{} absent: open_clip's default 4.0", key("mlp_ratio")),
        ),
    };
    out.push(Claim::new(
        Field::MlpDim,
        Value::N(mlp_width(width, ratio)),
        src(format!("int(width {width} · {rd})")),
    ));
    if let Some(v) = cfg.get("embed_dim") {
        let e = usize_of(path, "model_cfg.embed_dim", v)?;
        out.push(Claim::new(
            Field::EmbedDim,
            Value::N(e),
            src(format!("model_cfg.embed_dim = {v}")),
        ));
        if cfg.get("text_cfg").is_some() {
            out.push(Claim::new(
                Field::TextEmbedDim,
                Value::N(e),
                src(format!("model_cfg.embed_dim = {v}")),
            ));
        }
    }
    let (quick, qd) = match cfg.get("quick_gelu") {
        Some(Json::Bool(b)) => (*b, format!("model_cfg.quick_gelu = {b}")),
        Some(v) => {
            return Err(Error::Config(format!(
                "{file}: `model_cfg.quick_gelu` = {v} is not a bool"
            )))
        }
        None => (
            false,
            "model_cfg.quick_gelu absent: exact GELU, as open_clip reads it".into(),
        ),
    };
    let act = if quick {
        Activation::QuickGelu
    } else {
        Activation::Gelu
    };
    out.push(Claim::new(
        Field::Activation,
        Value::Act(act),
        src(qd.clone()),
    ));
    let ls = vision.get("ls_init_value").filter(|v| !v.is_null());
    out.push(Claim::new(
        Field::LayerScale,
        Value::Bool(ls.is_some()),
        src(match ls {
            Some(v) => format!("{} = {v}", key("ls_init_value")),
            None => format!("{} absent: no LayerScale", key("ls_init_value")),
        }),
    ));
    if let Some(eps) = vision
        .get("norm_kwargs")
        .and_then(|n| n.get("eps"))
        .and_then(Json::as_f64)
    {
        out.push(Claim::new(
            Field::LayerNormEps,
            Value::F(eps as f32),
            src(format!("{} = {eps}", key("norm_kwargs.eps"))),
        ));
    }
    if let Some(text) = cfg.get("text_cfg") {
        for (field, k, default) in [
            (Field::TextWidth, "width", 512),
            (Field::TextHeads, "heads", 8),
            (Field::TextLayers, "layers", 12),
            (Field::TextContext, "context_length", 77),
            (Field::TextVocab, "vocab_size", 49408),
        ] {
            let (v, d) = match text.get(k) {
                Some(v) => (
                    usize_of(path, k, v)?,
                    format!("model_cfg.text_cfg.{k} = {v}"),
                ),
                None => (
                    default,
                    format!("model_cfg.text_cfg.{k} absent: open_clip's default {default}"),
                ),
            };
            out.push(Claim::new(field, Value::N(v), src(d)));
        }
        out.push(Claim::new(Field::TextActivation, Value::Act(act), src(qd)));
    }
    Ok(out)
}

/// What the `dawin.vit.*` metadata of a checkpoint written by this tool says.
pub(crate) fn metadata_claims(src: &dyn TensorSource) -> Result<Vec<Claim>> {
    let name = src.source_name();
    let bad = |key: &str, v: &str, what: &str| {
        Error::Config(format!("metadata `{key}` = {v:?} of {name} is not {what}"))
    };
    let meta = |key: &str, v: &str| Source::new(SourceKind::Metadata, format!("`{key}` = {v}"));
    let mut out = Vec::new();
    if let Some(v) = src.metadata_value(HEADS_METADATA_KEY) {
        let n = v
            .trim()
            .parse::<usize>()
            .map_err(|_| bad(HEADS_METADATA_KEY, &v, "a number"))?;
        out.push(Claim::new(
            Field::Heads,
            Value::N(n),
            meta(HEADS_METADATA_KEY, &v),
        ));
    }
    if let Some(v) = src.metadata_value(ACTIVATION_METADATA_KEY) {
        let a = Activation::parse(v.trim())
            .map_err(|_| bad(ACTIVATION_METADATA_KEY, &v, "gelu or quick-gelu"))?;
        out.push(Claim::new(
            Field::Activation,
            Value::Act(a),
            meta(ACTIVATION_METADATA_KEY, &v),
        ));
    }
    if let Some(v) = src.metadata_value(LAYER_SCALE_METADATA_KEY) {
        let b = v
            .trim()
            .parse::<bool>()
            .map_err(|_| bad(LAYER_SCALE_METADATA_KEY, &v, "true or false"))?;
        out.push(Claim::new(
            Field::LayerScale,
            Value::Bool(b),
            meta(LAYER_SCALE_METADATA_KEY, &v),
        ));
    }
    if let Some(v) = src.metadata_value(LAYER_NORM_EPS_METADATA_KEY) {
        let e = v
            .trim()
            .parse::<f32>()
            .ok()
            .filter(|e| e.is_finite() && *e > 0.0)
            .ok_or_else(|| bad(LAYER_NORM_EPS_METADATA_KEY, &v, "a positive number"))?;
        out.push(Claim::new(
            Field::LayerNormEps,
            Value::F(e),
            meta(LAYER_NORM_EPS_METADATA_KEY, &v),
        ));
    }
    Ok(out)
}
