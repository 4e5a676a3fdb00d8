//! The text tower's fields, for the zero-shot head builder: from its tensors when the
//! checkpoint keeps them (OpenAI / open_clip `token_embedding.weight`, `positional_embedding`,
//! `transformer.resblocks.N`, `text_projection`; Hugging Face `text_model.…`,
//! `text_projection.weight`) and from the config files and `--arch`.

use std::collections::BTreeSet;

use super::{Claim, Field, Source, SourceKind, Value};
use crate::tensors::TensorSource;
use crate::weights::CheckpointNaming;

/// What the text tower's tensors say (nothing when the checkpoint has no text tower, as
/// task_vectors' `ImageEncoder` with `keep_lang=False`).
pub(crate) fn text_shape_claims(src: &dyn TensorSource, naming: &CheckpointNaming) -> Vec<Claim> {
    let (tok, pos, blocks, proj, proj_transposed) = match naming {
        CheckpointNaming::OpenAi { prefix } => {
            let r = prefix.strip_suffix("visual.").unwrap_or("");
            (
                format!("{r}token_embedding.weight"),
                format!("{r}positional_embedding"),
                format!("{r}transformer.resblocks."),
                format!("{r}text_projection"),
                false,
            )
        }
        CheckpointNaming::HuggingFace { root: r } => (
            format!("{r}text_model.embeddings.token_embedding.weight"),
            format!("{r}text_model.embeddings.position_embedding.weight"),
            format!("{r}text_model.encoder.layers."),
            format!("{r}text_projection.weight"),
            true,
        ),
    };
    let mut out = Vec::new();
    let src_of = |name: &str, s: &[usize]| Source::new(SourceKind::Shapes, format!("{name} {s:?}"));
    if let Some(s) = src.tensor_shape(&tok).filter(|s| s.len() == 2) {
        out.push(Claim::new(
            Field::TextVocab,
            Value::N(s[0]),
            src_of(&tok, &s),
        ));
        out.push(Claim::new(
            Field::TextWidth,
            Value::N(s[1]),
            src_of(&tok, &s),
        ));
    }
    if let Some(s) = src.tensor_shape(&pos).filter(|s| s.len() == 2) {
        out.push(Claim::new(
            Field::TextContext,
            Value::N(s[0]),
            src_of(&pos, &s),
        ));
    }
    let idx: BTreeSet<usize> = src
        .tensor_names()
        .iter()
        .filter_map(|n| n.strip_prefix(blocks.as_str()))
        .filter_map(|r| r.split('.').next()?.parse().ok())
        .collect();
    if let Some(last) = idx.last() {
        out.push(Claim::new(
            Field::TextLayers,
            Value::N(last + 1),
            Source::new(
                SourceKind::Shapes,
                format!("blocks {blocks}0 … {blocks}{last}"),
            ),
        ));
    }
    if let Some(s) = src.tensor_shape(&proj).filter(|s| s.len() == 2) {
        let e = if proj_transposed { s[0] } else { s[1] };
        out.push(Claim::new(
            Field::TextEmbedDim,
            Value::N(e),
            src_of(&proj, &s),
        ));
    }
    out
}
