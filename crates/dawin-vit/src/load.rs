//! From a checkpoint on disk (any form [`open_checkpoint`] reads) to a resolved
//! [`Architecture`] and a [`ClipClassifier`]: the head found (in the checkpoint or a head
//! file), the config files beside the checkpoint read, every field resolved with its source,
//! unused tensors refused.

use std::path::Path;

use crate::arch::{self, Architecture, HeadInput, Inputs, Resolved, Source, SourceKind};
use crate::checkpoint::{open_checkpoint, Checkpoint};
use crate::error::Result;
use crate::head::{head_normalize, head_tensor_names, load_head, ClassificationHead};
use crate::tensors::{TensorMap, TensorSource};
use crate::weights::{head_root, ClipWeights, LoadOptions};
use crate::ClipClassifier;

/// A checkpoint opened and resolved, not yet read: what [`ClipClassifier::from_files`] loads
/// and `dawin inspect` prints.
pub struct Opened {
    /// The checkpoint, memory-mapped.
    pub checkpoint: Checkpoint,
    /// The head file's head, when one was given.
    pub head: Option<ClassificationHead>,
    /// The resolved architecture.
    pub arch: Architecture,
}

/// The head of `ck` itself (`…classification_head.weight`), as the resolution sees it.
fn own_head(ck: &Checkpoint) -> Result<Option<HeadInput<'_>>> {
    let Some(root) = head_root(ck) else {
        return Ok(None);
    };
    let w = format!("{root}classification_head.weight");
    Ok(Some(HeadInput {
        src: ck,
        normalize: head_normalize(ck, &w)?,
        names_in_checkpoint: vec![w.clone(), format!("{root}classification_head.bias")],
        shown_name: w.clone(),
        weight_name: w,
        from_file: false,
    }))
}

/// Opens the checkpoint at `path` and the head file `head_file` (when given: it replaces the
/// checkpoint's own head), reads the config files beside the checkpoint (unless
/// `opts.no_config_files`) and `opts.config`, and resolves the architecture. Nothing is
/// refused here that `dawin inspect` should show: unused tensors are listed, a missing head
/// leaves the classes unknown.
///
/// ```no_run
/// use dawin_vit::{open_resolved, LoadOptions};
///
/// let opts = LoadOptions { arch: Some("ViT-B-32-quickgelu".into()), ..LoadOptions::default() };
/// let opened = open_resolved("finetune_clipvitb32.pt".as_ref(), None, &opts)?;
/// for w in opened.arch.warnings() {
///     eprintln!("warning: {w}"); // a default decided the activation or the heads
/// }
/// println!("{}", opened.arch.render()); // what `dawin inspect` prints
/// let (model, _ignored) = opened.load(opts.ignore_unused)?;
/// # let _ = model;
/// # Ok::<(), dawin_vit::Error>(())
/// ```
pub fn open_resolved(path: &Path, head_file: Option<&Path>, opts: &LoadOptions) -> Result<Opened> {
    let checkpoint = open_checkpoint(path)?;
    let head = head_file.map(load_head).transpose()?;
    let arch = resolve_checkpoint(&checkpoint, head.as_ref(), opts)?;
    Ok(Opened {
        checkpoint,
        head,
        arch,
    })
}

/// Resolves the architecture of an opened checkpoint, with `head` (a head file's, replacing the
/// checkpoint's own) or the checkpoint's head; the config files beside `checkpoint.path()` are
/// read unless `opts.no_config_files`, and `opts.config`.
pub fn resolve_checkpoint(
    checkpoint: &Checkpoint,
    head: Option<&ClassificationHead>,
    opts: &LoadOptions,
) -> Result<Architecture> {
    let head_map = head.map(ClassificationHead::to_tensor_map).transpose()?;
    let configs = arch::config_files_for(
        (!opts.no_config_files).then_some(checkpoint.path()),
        opts.config.as_deref(),
    )?;
    let head_input = match (head, &head_map) {
        (Some(h), Some(m)) => Some(HeadInput {
            src: m,
            weight_name: "classification_head.weight".into(),
            shown_name: h.weight_name.clone(),
            normalize: h.normalize.clone(),
            from_file: true,
            names_in_checkpoint: Vec::new(),
        }),
        _ => own_head(checkpoint)?,
    };
    arch::resolve(
        checkpoint,
        Inputs {
            format: checkpoint.format_name().to_string(),
            configs,
            head: head_input,
        },
        opts,
    )
}

/// [`open_resolved`], for `dawin inspect`: the architecture alone.
pub fn inspect_checkpoint(
    path: &Path,
    head_file: Option<&Path>,
    opts: &LoadOptions,
) -> Result<Architecture> {
    Ok(open_resolved(path, head_file, opts)?.arch)
}

/// Resolves the architecture of tensors that may be in memory (no file beside them is read;
/// `opts.config` is), with the head from `head` (its `classification_head.weight`, or `weight`
/// for a head alone) or from `src`.
pub(crate) fn resolve_source(
    src: &dyn TensorSource,
    head: Option<&dyn TensorSource>,
    opts: &LoadOptions,
) -> Result<Architecture> {
    let hsrc = head.unwrap_or(src);
    let head_input = head_tensor_names(hsrc).map(|(w, b)| {
        let normalize = normalize_from_metadata(hsrc);
        HeadInput {
            src: hsrc,
            names_in_checkpoint: if head.is_none() {
                vec![w.clone(), b]
            } else {
                Vec::new()
            },
            shown_name: w.clone(),
            weight_name: w,
            normalize,
            from_file: head.is_some(),
        }
    });
    arch::resolve(
        src,
        Inputs {
            format: "tensors".into(),
            configs: arch::config_files_for(None, opts.config.as_deref())?,
            head: head_input,
        },
        opts,
    )
}

fn normalize_from_metadata(src: &dyn TensorSource) -> Resolved<bool> {
    match src
        .metadata_value(crate::head::NORMALIZE_METADATA_KEY)
        .as_deref()
        .map(str::trim)
    {
        Some("false") => Resolved::new(
            false,
            Source::new(SourceKind::Metadata, "`dawin.head.normalize` = false"),
        ),
        Some("true") => Resolved::new(
            true,
            Source::new(SourceKind::Metadata, "`dawin.head.normalize` = true"),
        ),
        _ => Resolved::new(
            true,
            Source::new(
                SourceKind::Default,
                "CLIP's convention: features L2-normalised before the head",
            ),
        ),
    }
}

impl Opened {
    /// Reads the model: refuses unused tensors (unless `ignore_unused`; the warning line is
    /// returned) and a missing head, then loads every tensor the architecture needs.
    pub fn load(self, ignore_unused: bool) -> Result<(ClipClassifier, Option<String>)> {
        let warning = self.arch.check_unused(ignore_unused)?;
        let cfg = self.arch.config()?;
        let head_map: Option<TensorMap> = self
            .head
            .as_ref()
            .map(ClassificationHead::to_tensor_map)
            .transpose()?;
        let weights = ClipWeights::load(
            &self.checkpoint,
            head_map.as_ref().map(|m| m as &dyn TensorSource),
            &cfg,
            &self.arch.naming,
        )?;
        let normalize = self.arch.head.as_ref().is_none_or(|h| h.normalize.value);
        let model = ClipClassifier::new(cfg, weights)?
            .with_architecture(self.arch)
            .with_head_normalize(normalize);
        Ok((model, warning))
    }
}
