//! What the tensors say: the fields their shapes fix, and which tensors the model reads,
//! which it ignores (outside the vision tower) and which are under the tower's prefix but unused.

use std::collections::{BTreeMap, BTreeSet};

use super::{Claim, Field, IgnoredGroup, Source, SourceKind, Value};
use crate::config::VitConfig;
use crate::error::{Error, Result};
use crate::params::{Group, Module, ParamList, Part};
use crate::tensors::{shape_of, TensorSource};
use crate::weights::CheckpointNaming;

/// LayerScale's per-block tensors (open_clip), relative to a block's prefix.
pub(crate) const LAYER_SCALE_TENSORS: [&str; 2] = ["ls_1.gamma", "ls_2.gamma"];

/// Tensors under the vision prefix that are not parameters and that no forward needs: Hugging
/// Face's `position_ids` buffer (`arange(T)`, kept in older checkpoints).
const BENIGN: &[&str] = &["vision_model.embeddings.position_ids"];

fn shape_src(name: &str, shape: &[usize]) -> Source {
    Source::new(SourceKind::Shapes, format!("{name} {shape:?}"))
}

fn rank(src: &dyn TensorSource, name: &str, shape: &[usize], r: usize) -> Result<()> {
    if shape.len() != r || shape.contains(&0) {
        return Err(Error::TensorShape {
            name: name.to_string(),
            source_name: src.source_name(),
            got: shape.to_vec(),
            expected: format!("a non-empty tensor of rank {r}"),
        });
    }
    Ok(())
}

/// The block indices present under `block_prefix`.
fn block_indices(src: &dyn TensorSource, block_prefix: &str) -> BTreeSet<usize> {
    src.tensor_names()
        .iter()
        .filter_map(|n| n.strip_prefix(block_prefix))
        .filter_map(|rest| rest.split('.').next()?.parse().ok())
        .collect()
}

/// The fields the vision tower's tensor shapes fix: width and patch (the patch embedding),
/// image size (the positional embedding, `T = (image/patch)² + 1`), layers (blocks counted; they
/// must be numbered 0…L−1), MLP width (block 0's first MLP layer), embedding width (the
/// projection), LayerScale (block 0's `ls_1.gamma`). Errors name the tensor whose shape is
/// inconsistent.
pub(crate) fn shape_claims(
    src: &dyn TensorSource,
    naming: &CheckpointNaming,
) -> Result<Vec<Claim>> {
    let pname = naming.name_of(Module::PatchEmbedding, Part::Weight);
    let ps = shape_of(src, &pname)?;
    if ps.len() != 4 || ps[1] != 3 || ps[2] != ps[3] || ps[0] == 0 || ps[2] == 0 {
        return Err(Error::TensorShape {
            name: pname,
            source_name: src.source_name(),
            got: ps,
            expected: "[width, 3, patch, patch]".into(),
        });
    }
    let (width, patch) = (ps[0], ps[2]);
    let mut out = vec![
        Claim::new(Field::Width, Value::N(width), shape_src(&pname, &ps)),
        Claim::new(Field::PatchSize, Value::N(patch), shape_src(&pname, &ps)),
    ];
    let posname = naming.name_of(Module::PositionalEmbedding, Part::Weight);
    let pos = shape_of(src, &posname)?;
    let grid = pos
        .first()
        .map(|&t| ((t.saturating_sub(1)) as f64).sqrt().round() as usize);
    let ok =
        pos.len() == 2 && pos[1] == width && grid.is_some_and(|g| g > 0 && g * g + 1 == pos[0]);
    if !ok {
        return Err(Error::TensorShape {
            name: posname,
            source_name: src.source_name(),
            got: pos,
            expected: format!("[g² + 1, {width}] for some grid g"),
        });
    }
    out.push(Claim::new(
        Field::ImageSize,
        Value::N(grid.unwrap_or(0) * patch),
        Source::new(
            SourceKind::Shapes,
            format!(
                "{posname} {pos:?}: grid {} × patch {patch}",
                grid.unwrap_or(0)
            ),
        ),
    ));

    let bp = naming.block_prefix();
    let blocks = block_indices(src, &bp);
    let layers = blocks.last().map_or(0, |m| m + 1);
    if layers == 0 {
        return Err(Error::NotClipVision {
            source_name: src.source_name(),
            reason: format!("no transformer block (no tensor named `{bp}0.…`)"),
        });
    }
    if blocks.len() != layers {
        let missing = (0..layers).find(|i| !blocks.contains(i)).unwrap_or(0);
        let first = naming.name_of(Module::Ln1, Part::Weight);
        let first = first.replacen(&format!("{bp}0."), &format!("{bp}{missing}."), 1);
        return Err(Error::NotClipVision {
            source_name: src.source_name(),
            reason: format!(
                "blocks are numbered up to {} but block {missing} is absent (no tensor `{first}`)",
                layers - 1
            ),
        });
    }
    out.push(Claim::new(
        Field::Layers,
        Value::N(layers),
        Source::new(
            SourceKind::Shapes,
            format!("blocks {bp}0 … {bp}{}", layers - 1),
        ),
    ));
    let fc = naming.name_of(Module::MlpFc, Part::Weight);
    let fcs = shape_of(src, &fc)?;
    rank(src, &fc, &fcs, 2)?;
    out.push(Claim::new(
        Field::MlpDim,
        Value::N(fcs[0]),
        shape_src(&fc, &fcs),
    ));

    let projname = naming.name_of(Module::Proj, Part::Weight);
    let prs = shape_of(src, &projname)?;
    rank(src, &projname, &prs, 2)?;
    // OpenAI stores `proj` as [W, E] (used as x @ proj), Hugging Face as [E, W].
    let embed = if naming.transposed(Module::Proj, Part::Weight) {
        prs[1]
    } else {
        prs[0]
    };
    out.push(Claim::new(
        Field::EmbedDim,
        Value::N(embed),
        shape_src(&projname, &prs),
    ));

    let ls = format!("{bp}0.{}", LAYER_SCALE_TENSORS[0]);
    let layer_scale = src.tensor_shape(&ls);
    out.push(Claim::new(
        Field::LayerScale,
        Value::Bool(layer_scale.is_some()),
        Source::new(
            SourceKind::Shapes,
            match &layer_scale {
                Some(s) => format!("{ls} {s:?} present"),
                None => format!("no {ls}"),
            },
        ),
    ));
    Ok(out)
}

/// The checkpoint tensors a model of `cfg` reads from the encoder (the parameter list's: LayerScale
/// included when `cfg.layer_scale`).
pub(crate) fn used_encoder_tensors(cfg: &VitConfig, naming: &CheckpointNaming) -> BTreeSet<String> {
    ParamList::new(cfg)
        .group(Group::Encoder)
        .flat_map(|d| d.checkpoint_tensors(naming, ""))
        .map(|(n, _)| n)
        .collect()
}

/// The vision tower's tensors: those under its prefix (`…visual.` or `…vision_model.`) and
/// Hugging Face's `…visual_projection.weight`.
pub(crate) fn in_vision_tower(naming: &CheckpointNaming, name: &str) -> bool {
    match naming {
        CheckpointNaming::OpenAi { prefix } => name.starts_with(prefix.as_str()),
        CheckpointNaming::HuggingFace { root } => name
            .strip_prefix(root.as_str())
            .is_some_and(|r| r.starts_with("vision_model.") || r == "visual_projection.weight"),
    }
}

/// Sorts every tensor of `src` that the model does not read: `unused` (under the vision tower's
/// prefix: a model that ignored them would silently compute something else), and the rest,
/// ignored, grouped by prefix with counts (`used_head` are the head's tensors when the head comes
/// from the checkpoint).
pub(crate) fn classify(
    src: &dyn TensorSource,
    naming: &CheckpointNaming,
    cfg: &VitConfig,
    used_head: &[String],
    head_replaced: bool,
) -> (Vec<String>, Vec<IgnoredGroup>) {
    let used = used_encoder_tensors(cfg, naming);
    let root = match naming {
        CheckpointNaming::OpenAi { prefix } => {
            prefix.strip_suffix("visual.").unwrap_or("").to_string()
        }
        CheckpointNaming::HuggingFace { root } => root.clone(),
    };
    let mut unused = Vec::new();
    let mut groups: BTreeMap<(String, String), usize> = BTreeMap::new();
    for name in src.tensor_names() {
        if used.contains(name) || used_head.iter().any(|h| h == name) {
            continue;
        }
        if in_vision_tower(naming, name) {
            let rel = name.strip_prefix(root.as_str()).unwrap_or(name);
            if BENIGN.contains(&rel) {
                *groups
                    .entry((name.to_string(), "a buffer no forward reads".into()))
                    .or_default() += 1;
            } else {
                unused.push(name.to_string());
            }
            continue;
        }
        let (group, why) = if name.contains("classification_head.") {
            let g = &name
                [..name.find("classification_head.").unwrap_or(0) + "classification_head.".len()];
            (
                g.to_string(),
                if head_replaced {
                    "the checkpoint's head, replaced by the head file"
                } else {
                    "a second head (the shortest-named one is read)"
                },
            )
        } else {
            let rel = name.strip_prefix(root.as_str()).unwrap_or(name);
            let first = rel.split('.').next().unwrap_or(rel);
            let under = if name.starts_with(root.as_str()) {
                root.as_str()
            } else {
                ""
            };
            let g = if rel.len() > first.len() {
                format!("{under}{first}.")
            } else {
                format!("{under}{first}")
            };
            (g, "outside the vision tower")
        };
        *groups.entry((group, why.to_string())).or_default() += 1;
    }
    let ignored = groups
        .into_iter()
        .map(|((prefix, why), count)| IgnoredGroup { prefix, count, why })
        .collect();
    (unused, ignored)
}
