//! An [`Architecture`] as text (what `dawin inspect` prints), as JSON (`--json`, `report.json`,
//! the `dawin.arch` metadata) and as the warning lines every command prints.

use serde_json::{json, Value as Json};

use super::{Architecture, Resolved, SourceKind};
use crate::weights::CheckpointNaming;

fn field<T: Clone>(r: &Resolved<T>) -> Json
where
    Json: From<T>,
{
    json!({ "value": Json::from(r.value.clone()), "source": r.source.kind.name(), "detail": r.source.detail })
}

impl CheckpointNaming {
    /// The naming in words with its prefix: "OpenAI / open_clip, vision tower under
    /// `model.visual.`" or "Hugging Face, vision tower under `vision_model.`".
    pub fn describe(&self) -> String {
        match self {
            CheckpointNaming::OpenAi { prefix } => {
                format!("OpenAI / open_clip, vision tower under `{prefix}`")
            }
            CheckpointNaming::HuggingFace { root } => format!(
                "Hugging Face, vision tower under `{root}vision_model.` (+ `{root}visual_projection.weight`)"
            ),
        }
    }

    /// The prefix of the vision tower's tensors.
    pub fn vision_prefix(&self) -> String {
        match self {
            CheckpointNaming::OpenAi { prefix } => prefix.clone(),
            CheckpointNaming::HuggingFace { root } => format!("{root}vision_model."),
        }
    }
}

/// The warning lines of several resolutions (θ0 and θ1, the models of a multi-task run), one
/// line per kind: the checkpoints whose activation a default decided, then those whose heads a
/// default decided, each with how to override it.
pub fn default_warnings(archs: &[&Architecture]) -> Vec<String> {
    let mut v = Vec::new();
    let act: Vec<&Architecture> = archs
        .iter()
        .copied()
        .filter(|a| a.activation_defaulted())
        .collect();
    if !act.is_empty() {
        let names: Vec<String> = act
            .iter()
            .map(|a| format!("{} ({})", a.checkpoint, a.activation.value.name()))
            .collect();
        v.push(format!(
            "the MLP activation is a DEFAULT, QuickGELU as in OpenAI's CLIP, for {}: no flag, \
             config.json, open_clip_config.json or metadata says which (open_clip's LAION/DataComp \
             towers use exact GELU); pass --activation gelu|quick-gelu or --arch NAME",
            names.join(", ")
        ));
    }
    let heads: Vec<String> = archs
        .iter()
        .filter(|a| a.heads_defaulted())
        .map(|a| {
            format!(
                "{} ({} heads = width {} / 64)",
                a.checkpoint, a.heads.value, a.width.value
            )
        })
        .collect();
    if !heads.is_empty() {
        v.push(format!(
            "the number of attention heads is a DEFAULT for {}: no flag, config file or metadata \
             says; pass --heads N or --arch NAME",
            heads.join(", ")
        ));
    }
    v
}

impl Architecture {
    /// The warning lines of this resolution: a default that decided the activation or the
    /// number of heads (and how to override it). Empty when every field has a stated source.
    pub fn warnings(&self) -> Vec<String> {
        default_warnings(&[self])
    }

    /// Every field with its source, the head, the text tower, the ignored and the unused
    /// tensors, as JSON.
    pub fn to_json(&self) -> Json {
        let text = self.text.as_ref().map(|t| {
            let f = |r: &Option<Resolved<usize>>| r.as_ref().map(field);
            json!({
                "in_checkpoint": t.in_checkpoint,
                "width": f(&t.width), "layers": f(&t.layers), "heads": f(&t.heads),
                "context_length": f(&t.context_length), "vocab_size": f(&t.vocab_size),
                "embed_dim": f(&t.embed_dim),
                "activation": t.activation.as_ref().map(|a| json!({
                    "value": a.value.name(), "source": a.source.kind.name(), "detail": a.source.detail
                })),
            })
        });
        json!({
            "checkpoint": self.checkpoint,
            "format": self.format,
            "naming": match &self.naming {
                CheckpointNaming::OpenAi { .. } => "openai",
                CheckpointNaming::HuggingFace { .. } => "huggingface",
            },
            "prefix": self.naming.vision_prefix(),
            "tensors": self.tensor_count,
            "dtypes": self.dtypes,
            "image_size": field(&self.image_size),
            "patch_size": field(&self.patch_size),
            "width": field(&self.width),
            "layers": field(&self.layers),
            "heads": field(&self.heads),
            "head_width": field(&self.head_width),
            "mlp_dim": field(&self.mlp_dim),
            "embed_dim": field(&self.embed_dim),
            "dtype": field(&self.dtype),
            "activation": {
                "value": self.activation.value.name(),
                "source": self.activation.source.kind.name(),
                "detail": self.activation.source.detail,
            },
            "layer_scale": field(&self.layer_scale),
            "layer_norm_eps": field(&self.layer_norm_eps),
            "head": self.head.as_ref().map(|h| json!({
                "file": h.source_name, "weight": h.weight_name,
                "classes": field(&h.classes), "normalize": field(&h.normalize),
            })),
            "text": text,
            "overrides": self.overrides,
            "config_files": self.config_files,
            "notes": self.notes,
            "ignored": self.ignored.iter().map(|g| json!({
                "prefix": g.prefix, "count": g.count, "why": g.why
            })).collect::<Vec<_>>(),
            "unused": self.unused,
            "warnings": self.warnings(),
        })
    }

    /// The report `dawin inspect` prints: one line per field, value and source.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut line = |k: &str, v: String| out.push_str(&format!("{k:<16}{v}\n"));
        line("checkpoint", self.checkpoint.clone());
        line("format", self.format.clone());
        line("naming", self.naming.describe());
        let dt: Vec<String> = self
            .dtypes
            .iter()
            .map(|(d, n)| format!("{d}: {n}"))
            .collect();
        line(
            "tensors",
            format!("{} ({})", self.tensor_count, dt.join(", ")),
        );
        line(
            "config files",
            if self.config_files.is_empty() {
                "none".into()
            } else {
                self.config_files.join(", ")
            },
        );
        let src = |s: &super::Source| {
            if s.kind == SourceKind::Default {
                format!("DEFAULT: {}", s.detail)
            } else {
                s.to_string()
            }
        };
        let rows: Vec<(&str, String, String)> = vec![
            (
                "width",
                self.width.value.to_string(),
                src(&self.width.source),
            ),
            (
                "layers",
                self.layers.value.to_string(),
                src(&self.layers.source),
            ),
            (
                "heads",
                self.heads.value.to_string(),
                src(&self.heads.source),
            ),
            (
                "head width",
                self.head_width.value.to_string(),
                "width / heads".into(),
            ),
            (
                "patch",
                self.patch_size.value.to_string(),
                src(&self.patch_size.source),
            ),
            (
                "image size",
                self.image_size.value.to_string(),
                src(&self.image_size.source),
            ),
            (
                "mlp dim",
                self.mlp_dim.value.to_string(),
                src(&self.mlp_dim.source),
            ),
            (
                "embed dim",
                self.embed_dim.value.to_string(),
                src(&self.embed_dim.source),
            ),
            (
                "classes",
                self.head
                    .as_ref()
                    .map_or("—".into(), |h| h.classes.value.to_string()),
                self.head
                    .as_ref()
                    .map_or("no head (give a head file)".into(), |h| {
                        src(&h.classes.source)
                    }),
            ),
            (
                "head normalize",
                self.head
                    .as_ref()
                    .map_or("—".into(), |h| h.normalize.value.to_string()),
                self.head
                    .as_ref()
                    .map_or(String::new(), |h| src(&h.normalize.source)),
            ),
            ("dtype", self.dtype.value.clone(), src(&self.dtype.source)),
            (
                "activation",
                self.activation.value.name().into(),
                src(&self.activation.source),
            ),
            (
                "LayerScale",
                self.layer_scale.value.to_string(),
                src(&self.layer_scale.source),
            ),
            (
                "layer norm eps",
                format!("{:e}", self.layer_norm_eps.value),
                src(&self.layer_norm_eps.source),
            ),
        ];
        out.push_str("vision tower\n");
        for (k, v, s) in rows {
            out.push_str(&format!("  {k:<16}{v:<12}{s}\n"));
        }
        if let Some(t) = &self.text {
            out.push_str(&format!(
                "text tower      {}\n",
                if t.in_checkpoint {
                    "in the checkpoint (not read by the image classifier)"
                } else {
                    "not in the checkpoint (from the config)"
                }
            ));
            let opt = |k: &str, r: &Option<Resolved<usize>>, out: &mut String| {
                if let Some(r) = r {
                    out.push_str(&format!("  {k:<16}{:<12}{}\n", r.value, src(&r.source)));
                }
            };
            opt("width", &t.width, &mut out);
            opt("layers", &t.layers, &mut out);
            opt("heads", &t.heads, &mut out);
            opt("context length", &t.context_length, &mut out);
            opt("vocab size", &t.vocab_size, &mut out);
            opt("embed dim", &t.embed_dim, &mut out);
            if let Some(a) = &t.activation {
                out.push_str(&format!(
                    "  {:<16}{:<12}{}\n",
                    "activation",
                    a.value.name(),
                    src(&a.source)
                ));
            }
        }
        for o in &self.overrides {
            out.push_str(&format!("override        {o}\n"));
        }
        for n in &self.notes {
            out.push_str(&format!("note            {n}\n"));
        }
        if self.ignored.is_empty() {
            out.push_str("ignored         none\n");
        } else {
            out.push_str("ignored\n");
            for g in &self.ignored {
                out.push_str(&format!(
                    "  {:<40}{:>5} tensor(s)  {}\n",
                    g.prefix, g.count, g.why
                ));
            }
        }
        if self.unused.is_empty() {
            out.push_str("unused          none\n");
        } else {
            out.push_str(&format!(
                "unused          {} tensor(s) under the vision prefix the model does not read (an error when loading; --ignore-unused to run without them)\n",
                self.unused.len()
            ));
            for u in &self.unused {
                out.push_str(&format!("  {u}\n"));
            }
        }
        for w in self.warnings() {
            out.push_str(&format!("warning         {w}\n"));
        }
        out
    }
}
