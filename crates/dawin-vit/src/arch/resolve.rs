//! The resolution itself: every source's claims gathered (flags, config files, metadata, shapes,
//! then defaults) and each field decided by precedence, facts never overridden (see the module
//! docs of [`crate::arch`]).

use std::collections::BTreeMap;

use super::configs::{self, ConfigFiles};
use super::presets::open_clip_preset;
use super::shapes::{self, in_vision_tower};
use super::text;
use super::{
    Architecture, Claim, Field, HeadSummary, Resolved, Source, SourceKind, TextArchitecture, Value,
};
use crate::config::{Activation, VitConfig};
use crate::error::{Error, Result};
use crate::tensors::TensorSource;
use crate::weights::{CheckpointNaming, LoadOptions};

/// What the resolution needs besides the tensors: the checkpoint's layout in words, the config
/// files, and the head.
pub(crate) struct Inputs<'a> {
    pub format: String,
    pub configs: ConfigFiles,
    pub head: Option<HeadInput<'a>>,
}

/// The head as the resolution sees it.
pub(crate) struct HeadInput<'a> {
    pub src: &'a dyn TensorSource,
    pub weight_name: String,
    /// How reports name the weight: its name in the file it was read from (a head file's
    /// `weight`, not the in-memory `classification_head.weight`).
    pub shown_name: String,
    pub normalize: Resolved<bool>,
    /// Whether it comes from a head file (the checkpoint's own head, if any, is then ignored).
    pub from_file: bool,
    /// The names it reads in the checkpoint (empty when from a file).
    pub names_in_checkpoint: Vec<String>,
}

/// The claims of the flags in `opts`, highest precedence first.
fn flag_claims(opts: &LoadOptions) -> Result<Vec<Claim>> {
    let mut v = Vec::new();
    if let Some(a) = opts.activation {
        v.push(Claim::new(
            Field::Activation,
            Value::Act(a),
            Source::new(SourceKind::Flag, format!("--activation {}", a.name())),
        ));
        v.push(Claim::new(
            Field::TextActivation,
            Value::Act(a),
            Source::new(SourceKind::Flag, format!("--activation {}", a.name())),
        ));
    }
    if let Some(h) = opts.heads {
        v.push(Claim::new(
            Field::Heads,
            Value::N(h),
            Source::new(SourceKind::Flag, format!("--heads {h}")),
        ));
    }
    if let Some(e) = opts.layer_norm_eps {
        v.push(Claim::new(
            Field::LayerNormEps,
            Value::F(e),
            Source::new(SourceKind::Flag, format!("layer_norm_eps {e:e}")),
        ));
    }
    if let Some(name) = &opts.arch {
        v.extend(open_clip_preset(name)?.claims());
    }
    Ok(v)
}

/// Decides `field` from `claims` (see the module docs); `None` when nothing speaks about it.
fn decide(
    field: Field,
    claims: &[Claim],
    overrides: &mut Vec<String>,
) -> Result<Option<Resolved<Value>>> {
    let mut these: Vec<&Claim> = claims.iter().filter(|c| c.field == field).collect();
    these.sort_by_key(|c| c.source.kind); // stable: insertion order within a kind
    let Some(first) = these.first() else {
        return Ok(None);
    };
    if let Some(fact) = these.iter().find(|c| c.source.kind.is_fact()) {
        if let Some(c) = these
            .iter()
            .find(|c| c.source.kind != SourceKind::Default && c.value != fact.value)
        {
            return Err(Error::Config(format!(
                "{}: {} says {}, but {} says {}",
                field.name(),
                c.source,
                c.value,
                fact.source,
                fact.value
            )));
        }
    }
    for c in &these[1..] {
        if c.value != first.value && c.source.kind != SourceKind::Default {
            overrides.push(format!(
                "{}: {} ({}) overrides {} ({})",
                field.name(),
                first.value,
                first.source,
                c.value,
                c.source
            ));
        }
    }
    let mut source = first.source.clone();
    if !source.kind.is_fact() {
        if let Some(fact) = these.iter().find(|c| c.source.kind.is_fact()) {
            source.detail = format!("{} (= {})", source.detail, fact.source.kind.name());
        }
    }
    Ok(Some(Resolved::new(first.value.clone(), source)))
}

fn n(r: Resolved<Value>) -> Resolved<usize> {
    match r.value {
        Value::N(v) => Resolved::new(v, r.source),
        other => unreachable!("a count field holds {other:?}"),
    }
}

/// Resolves the architecture of `src` (see the module docs).
pub(crate) fn resolve(
    src: &dyn TensorSource,
    inputs: Inputs<'_>,
    opts: &LoadOptions,
) -> Result<Architecture> {
    let naming = CheckpointNaming::detect(src)?;
    let mut claims = flag_claims(opts)?;
    claims.extend(inputs.configs.claims()?);
    claims.extend(configs::metadata_claims(src)?);
    claims.extend(shapes::shape_claims(src, &naming)?);
    let text_shapes = text::text_shape_claims(src, &naming);
    let text_in_checkpoint = !text_shapes.is_empty();
    claims.extend(text_shapes);
    let mut overrides = Vec::new();
    let mut req = |f: Field, claims: &[Claim]| -> Result<Resolved<Value>> {
        decide(f, claims, &mut overrides)?
            .ok_or_else(|| Error::Config(format!("{}: no source gives it", f.name())))
    };
    let width = n(req(Field::Width, &claims)?);
    let image_size = n(req(Field::ImageSize, &claims)?);
    let patch_size = n(req(Field::PatchSize, &claims)?);
    let layers = n(req(Field::Layers, &claims)?);
    let mlp_dim = n(req(Field::MlpDim, &claims)?);
    let embed_dim = n(req(Field::EmbedDim, &claims)?);
    let layer_scale = match req(Field::LayerScale, &claims)? {
        Resolved {
            value: Value::Bool(b),
            source,
        } => Resolved::new(b, source),
        _ => unreachable!(),
    };
    let w = width.value;
    if w.is_multiple_of(64) {
        claims.push(Claim::new(
            Field::Heads,
            Value::N(w / 64),
            Source::new(
                SourceKind::Default,
                format!("width {w} / 64 (OpenAI's head width); pass --heads N or --arch NAME"),
            ),
        ));
    }
    claims.push(Claim::new(
        Field::Activation,
        Value::Act(Activation::QuickGelu),
        Source::new(
            SourceKind::Default,
            "QuickGELU, OpenAI CLIP's (nothing in a state dict says which); pass --activation \
             gelu|quick-gelu or --arch NAME",
        ),
    ));
    claims.push(Claim::new(
        Field::LayerNormEps,
        Value::F(1e-5),
        Source::new(SourceKind::Default, "CLIP's 1e-5"),
    ));
    let heads = decide(Field::Heads, &claims, &mut overrides)?.ok_or_else(|| {
        Error::Config(format!(
            "{}: width {w} is not a multiple of 64 and no source gives the number of attention \
             heads: pass --heads N or --arch NAME (open_clip's ViT-H-14: 16 heads of 80), or put \
             a config.json / open_clip_config.json beside the checkpoint",
            src.source_name()
        ))
    })?;
    let heads = n(heads);
    if heads.value == 0 || !w.is_multiple_of(heads.value) {
        return Err(Error::Config(format!(
            "heads {} ({}) does not divide width {w} ({})",
            heads.value, heads.source, width.source
        )));
    }
    let head_width = Resolved::new(w / heads.value, heads.source.clone());
    let activation = match decide(Field::Activation, &claims, &mut overrides)? {
        Some(Resolved {
            value: Value::Act(a),
            source,
        }) => Resolved::new(a, source),
        _ => unreachable!("the default is a claim"),
    };
    let layer_norm_eps = match decide(Field::LayerNormEps, &claims, &mut overrides)? {
        Some(Resolved {
            value: Value::F(e),
            source,
        }) => Resolved::new(e, source),
        _ => unreachable!("the default is a claim"),
    };
    let text = resolve_text(&claims, &activation, text_in_checkpoint, &mut overrides)?;

    let head = match &inputs.head {
        None => None,
        Some(h) => {
            let s = h.src.tensor_shape(&h.weight_name).unwrap_or_default();
            if s.len() != 2 || s.contains(&0) {
                return Err(Error::TensorShape {
                    name: h.shown_name.clone(),
                    source_name: h.src.source_name(),
                    got: s,
                    expected: "[classes, embedding width]".into(),
                });
            }
            if s[1] != embed_dim.value {
                return Err(Error::Config(format!(
                    "the head `{}` of {} reads embeddings of width {} ({:?}), but the encoder \
                     embeds to {} ({})",
                    h.shown_name,
                    h.src.source_name(),
                    s[1],
                    s,
                    embed_dim.value,
                    embed_dim.source
                )));
            }
            Some(HeadSummary {
                source_name: h.src.source_name(),
                weight_name: h.shown_name.clone(),
                classes: Resolved::new(
                    s[0],
                    Source::new(
                        SourceKind::Shapes,
                        format!("{} {s:?} of {}", h.shown_name, h.src.source_name()),
                    ),
                ),
                normalize: h.normalize.clone(),
            })
        }
    };

    let mut dtypes = BTreeMap::new();
    let mut vision_dtypes = BTreeMap::new();
    for name in src.tensor_names() {
        let d = src
            .tensor_meta(name)
            .map_or_else(|_| "other".to_string(), |(d, _)| d.name().to_string());
        if in_vision_tower(&naming, name) {
            *vision_dtypes.entry(d.clone()).or_insert(0usize) += 1;
        }
        *dtypes.entry(d).or_insert(0usize) += 1;
    }
    let dtype = Resolved::new(
        vision_dtypes.keys().cloned().collect::<Vec<_>>().join("+"),
        Source::new(
            SourceKind::Shapes,
            format!("{} vision tensors", vision_dtypes.values().sum::<usize>()),
        ),
    );
    let shape_cfg = VitConfig {
        image_size: image_size.value,
        patch_size: patch_size.value,
        width: w,
        layers: layers.value,
        heads: heads.value,
        mlp_dim: mlp_dim.value,
        embed_dim: embed_dim.value,
        num_classes: head.as_ref().map_or(1, |h| h.classes.value),
        layer_norm_eps: layer_norm_eps.value,
        activation: activation.value,
        layer_scale: layer_scale.value,
    };
    let used_head: Vec<String> = inputs
        .head
        .as_ref()
        .map(|h| h.names_in_checkpoint.clone())
        .unwrap_or_default();
    let head_replaced = inputs.head.as_ref().is_some_and(|h| h.from_file);
    let (unused, ignored) = shapes::classify(src, &naming, &shape_cfg, &used_head, head_replaced);
    Ok(Architecture {
        checkpoint: src.source_name(),
        format: inputs.format,
        naming,
        tensor_count: src.tensor_names().len(),
        dtypes,
        image_size,
        patch_size,
        width,
        layers,
        heads,
        head_width,
        mlp_dim,
        embed_dim,
        dtype,
        activation,
        layer_scale,
        layer_norm_eps,
        head,
        text,
        overrides,
        config_files: inputs.configs.paths(),
        notes: inputs.configs.notes.clone(),
        ignored,
        unused,
    })
}

fn resolve_text(
    claims: &[Claim],
    vision_activation: &Resolved<Activation>,
    in_checkpoint: bool,
    overrides: &mut Vec<String>,
) -> Result<Option<TextArchitecture>> {
    let mut get =
        |f: Field| -> Result<Option<Resolved<usize>>> { Ok(decide(f, claims, overrides)?.map(n)) };
    let mut t = TextArchitecture {
        width: get(Field::TextWidth)?,
        layers: get(Field::TextLayers)?,
        heads: get(Field::TextHeads)?,
        context_length: get(Field::TextContext)?,
        vocab_size: get(Field::TextVocab)?,
        embed_dim: get(Field::TextEmbedDim)?,
        activation: None,
        in_checkpoint,
    };
    if t == (TextArchitecture {
        in_checkpoint,
        ..Default::default()
    }) {
        return Ok(None);
    }
    if t.heads.is_none() {
        if let Some(w) = t.width.as_ref().filter(|w| w.value % 64 == 0) {
            t.heads = Some(Resolved::new(
                w.value / 64,
                Source::new(
                    SourceKind::Default,
                    format!("text width {} / 64 (OpenAI's rule)", w.value),
                ),
            ));
        }
    }
    t.activation = Some(match decide(Field::TextActivation, claims, overrides)? {
        Some(Resolved {
            value: Value::Act(a),
            source,
        }) => Resolved::new(a, source),
        _ => Resolved::new(
            vision_activation.value,
            Source::new(SourceKind::Default, "the vision tower's"),
        ),
    });
    Ok(Some(t))
}
