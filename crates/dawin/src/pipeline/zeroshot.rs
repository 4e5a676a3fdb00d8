//! Stage 0 for a θ0 without a classification head: its zero-shot head built from class names
//! with the checkpoint's own text tower ([`dawin_vit::text::zero_shot_head`]), cached on disk.
//!
//! The cache file is `<dir>/zeroshot-head-<key>.safetensors` with `key` = SHA-256 of
//! [`ZEROSHOT_CACHE_VERSION`], the checkpoint's fingerprint (SHA-256 of its bytes), the class
//! names, the templates, the tokenizer's merges fingerprint and the text options; the file is the
//! head as `dawin zeroshot-head` writes it. Imports no other stage.
use crate::data::file_fingerprint;
use crate::error::{Error, Result};
use crate::progress;
use dawin_vit::prompts::{resolve_classes, resolve_templates};
use dawin_vit::text::{zero_shot_head, ClipTextModel, TextOptions};
use dawin_vit::tokenizer::{find_tokenizer_beside, ClipTokenizer};
use dawin_vit::{load_head, open_checkpoint, ClipClassifier, Linear, LoadOptions, TensorMap};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Version of the zero-shot head cache; bump it when the head's numerics change.
pub const ZEROSHOT_CACHE_VERSION: &str = "dawin-zeroshot-head-v1";

/// Metadata key of a head file: SHA-256 of the checkpoint the head was built from.
pub const META_CHECKPOINT_SHA256: &str = "dawin.zeroshot.checkpoint_sha256";
/// Metadata key: the checkpoint's path as given.
pub const META_CHECKPOINT: &str = "dawin.zeroshot.checkpoint";
/// Metadata key: what loading the text tower assumed, a JSON array of lines.
pub const META_ASSUMPTIONS: &str = "dawin.zeroshot.text_assumptions";

/// What a zero-shot head is built from (the command-line arguments, resolved when built).
#[derive(Clone, Debug, Default)]
pub struct ZeroShotSpec {
    /// `imagenet` (the built-in 1000 names) or a file with one class name per line.
    pub classes: String,
    /// A built-in template set name (`openai-imagenet`, `simple`, `mnist`, …) or a file with one
    /// template per line.
    pub templates: String,
    /// The tokenizer file; `None`: one beside the checkpoint, else the built-in vocabulary.
    pub tokenizer: Option<PathBuf>,
    /// Text-tower fields the weights do not determine.
    pub text: TextOptions,
}

/// A built (or cached) zero-shot head.
#[derive(Clone, Debug)]
pub struct ZeroShotBuild {
    /// `[C, E]` weight, zero bias.
    pub head: Linear,
    /// The cache key (hex SHA-256): identifies the head for the logits cache.
    pub key: String,
    /// The head file in the cache, when there is a cache directory.
    pub path: Option<PathBuf>,
    /// Whether the head was read from the cache.
    pub from_cache: bool,
    /// What to tell the user, one line each: the classes, templates and tokenizer used, what was
    /// assumed about the text tower, the classes whose prompts were truncated (one line).
    pub notes: Vec<String>,
}

impl ZeroShotBuild {
    /// The head as `classification_head.weight` / `.bias` tensors (a head source for
    /// [`ClipClassifier::from_source`]).
    pub fn tensor_map(&self) -> Result<TensorMap> {
        let h = &self.head;
        let mut m = TensorMap::new();
        m.insert(
            "classification_head.weight",
            vec![h.out_dim, h.in_dim],
            h.weight.clone(),
        )?;
        let bias = h.bias.clone().unwrap_or_else(|| vec![0.0; h.out_dim]);
        m.insert("classification_head.bias", vec![h.out_dim], bias)?;
        m.set_source_name(format!("zero-shot head {}", &self.key[..12]));
        Ok(m)
    }
}

/// SHA-256 of a checkpoint: of the file's bytes; for a directory or a shard index, of the
/// SHA-256 of every checkpoint or config file of its folder (`.safetensors`, `.json`, `.bin`,
/// `.pt`, `.pth`, `.pkl`, `.ckpt`: PyTorch shards too), in name order.
pub fn checkpoint_fingerprint(path: &Path) -> Result<String> {
    if path.is_file() && path.extension().is_none_or(|e| e != "json") {
        return file_fingerprint(path);
    }
    let dir = if path.is_dir() {
        path
    } else {
        path.parent().unwrap_or(Path::new("."))
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.extension().is_some_and(|e| {
                    ["safetensors", "json", "bin", "pt", "pth", "pkl", "ckpt"]
                        .iter()
                        .any(|x| e == *x)
                })
        })
        .collect();
    files.sort();
    let mut h = Sha256::new();
    for f in &files {
        h.update(f.file_name().unwrap_or_default().as_encoded_bytes());
        h.update(file_fingerprint(f)?.as_bytes());
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// A tokenizer or prompt error as the pipeline's error.
fn vit(e: impl Into<dawin_vit::Error>) -> Error {
    Error::Vit(e.into())
}

/// The tokenizer of `spec` for `checkpoint` and how it was found (for the user).
fn tokenizer_for(checkpoint: &Path, spec: &ZeroShotSpec) -> Result<(ClipTokenizer, String)> {
    let (tok, how) = match &spec.tokenizer {
        Some(p) => (ClipTokenizer::from_file(p).map_err(vit)?, "given"),
        None => match find_tokenizer_beside(checkpoint) {
            Some(p) => (
                ClipTokenizer::from_file(&p).map_err(vit)?,
                "found beside the checkpoint",
            ),
            None => (ClipTokenizer::builtin(), "none beside the checkpoint"),
        },
    };
    let mut line = format!("tokenizer: {} ({how})", tok.source());
    if !tok.is_standard() {
        line.push_str("; its merges differ from CLIP's standard ones");
    }
    Ok((tok, line))
}

/// The inputs of a head, resolved: classes, templates, tokenizer, fingerprints, cache key.
struct Prepared {
    classes: Vec<String>,
    templates: Vec<String>,
    tokenizer: ClipTokenizer,
    checkpoint_sha256: String,
    key: String,
    notes: Vec<String>,
    /// The text options in effect: the flags, else what the config files beside the checkpoint
    /// (or its metadata) say.
    text: TextOptions,
    /// The values of `text` that came from those files, and one line each saying so.
    from_files: (TextOptions, Vec<String>),
}

/// The text tower's heads and activation where `given` (the flags) leaves them open, from what
/// [`dawin_vit::resolve_checkpoint`] reads beside and in the checkpoint: open_clip's
/// `open_clip_config.json` (`text_cfg.heads`, `quick_gelu` — absent meaning exact GELU), a
/// Hugging Face `config.json` (`text_config.num_attention_heads`, `hidden_act`), the `dawin.*`
/// metadata. A value only a default would decide stays open: the text tower then states its own
/// default and how to override it. Returns the options in effect, the values taken from the
/// files, and one line per value taken.
fn text_options(
    checkpoint: &Path,
    given: &TextOptions,
) -> (TextOptions, (TextOptions, Vec<String>)) {
    use dawin_vit::arch::SourceKind;
    let mut t = *given;
    let mut taken = TextOptions::default();
    let mut lines = Vec::new();
    if t.heads.is_some() && t.activation.is_some() {
        return (t, (taken, lines));
    }
    // A checkpoint whose vision side cannot be resolved still has a text tower to read: its
    // fields then come from the text tower's own stated defaults.
    let arch = open_checkpoint(checkpoint)
        .and_then(|ck| dawin_vit::resolve_checkpoint(&ck, None, &LoadOptions::default()));
    let Some(text) = arch.ok().and_then(|a| a.text) else {
        return (t, (taken, lines));
    };
    if t.heads.is_none() {
        if let Some(h) = text.heads.filter(|h| h.source.kind != SourceKind::Default) {
            lines.push(format!(
                "text heads = {} ({}; override: --text-heads)",
                h.value, h.source
            ));
            t.heads = Some(h.value);
            taken.heads = Some(h.value);
        }
    }
    if t.activation.is_none() {
        if let Some(a) = text
            .activation
            .filter(|a| a.source.kind != SourceKind::Default)
        {
            lines.push(format!(
                "text activation = {} ({}; override: --text-activation)",
                a.value.name(),
                a.source
            ));
            t.activation = Some(a.value);
            taken.activation = Some(a.value);
        }
    }
    (t, (taken, lines))
}

fn prepare(checkpoint: &Path, spec: &ZeroShotSpec) -> Result<Prepared> {
    let (classes, classes_from) = resolve_classes(&spec.classes).map_err(vit)?;
    let (templates, templates_from) = resolve_templates(&spec.templates).map_err(vit)?;
    let (tokenizer, tok_line) = tokenizer_for(checkpoint, spec)?;
    let (text, from_files) = text_options(checkpoint, &spec.text);
    let notes = vec![
        format!(
            "zero-shot head of {}: {} classes ({classes_from}) × {} templates ({templates_from})",
            checkpoint.display(),
            classes.len(),
            templates.len()
        ),
        tok_line,
    ];
    let checkpoint_sha256 = checkpoint_fingerprint(checkpoint)?;
    let mut h = Sha256::new();
    for part in [
        ZEROSHOT_CACHE_VERSION.to_string(),
        checkpoint_sha256.clone(),
        serde_json::to_string(&classes).expect("strings serialise"),
        serde_json::to_string(&templates).expect("strings serialise"),
        tokenizer.merges_fingerprint().to_string(),
        format!("{text:?}"),
    ] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    let key = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok(Prepared {
        classes,
        templates,
        tokenizer,
        checkpoint_sha256,
        key,
        notes,
        text,
        from_files,
    })
}

/// Builds the head of `p` with `checkpoint`'s text tower and writes it to `dest` when given.
fn build(
    checkpoint: &Path,
    p: Prepared,
    dest: Option<&Path>,
    progress: bool,
) -> Result<ZeroShotBuild> {
    let Prepared {
        classes,
        templates,
        tokenizer,
        checkpoint_sha256,
        key,
        mut notes,
        text,
        from_files: (taken, mut assumed),
    } = p;
    let model = ClipTextModel::from_path(checkpoint, &text)?;
    // What was read or assumed about the text tower: the values taken from the config files,
    // then the model's own lines, less its "(given)" for those values (they were not the user's).
    for a in model.assumptions() {
        let restated = a.ends_with("(given)")
            && ((taken.heads.is_some() && a.starts_with("text heads = "))
                || (taken.activation.is_some() && a.starts_with("text activation = ")));
        if !restated {
            assumed.push(a.clone());
        }
    }
    notes.extend(assumed.iter().cloned());
    let tok = tokenizer
        .with_context_length(model.config().context_length)
        .map_err(vit)?;
    let bar = progress::bar(classes.len(), "zero-shot head (classes)", progress);
    let built = zero_shot_head(&model, &tok, &classes, &templates, &mut |done| {
        bar.set_position(done as u64)
    })?;
    bar.finish_and_clear();
    if !built.truncated.is_empty() {
        let names: Vec<&str> = built
            .truncated
            .iter()
            .map(|&c| classes[c].as_str())
            .collect();
        notes.push(format!(
            "{} class name(s) make prompts longer than {} tokens, truncated as open_clip does \
             (the first {} tokens, then the end token): {}",
            names.len(),
            tok.context_length(),
            tok.context_length() - 1,
            names.join(", ")
        ));
    }
    if let Some(p) = dest {
        if let Some(d) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
        }
        let extra = BTreeMap::from([
            (META_CHECKPOINT_SHA256.to_string(), checkpoint_sha256),
            (
                META_CHECKPOINT.to_string(),
                checkpoint.display().to_string(),
            ),
            (
                META_ASSUMPTIONS.to_string(),
                serde_json::to_string(&assumed).expect("strings serialise"),
            ),
        ]);
        built.write(p, &extra)?;
    }
    Ok(ZeroShotBuild {
        head: built.linear(),
        key,
        path: dest.map(Path::to_path_buf),
        from_cache: false,
        notes,
    })
}

/// Builds the zero-shot head of `checkpoint`'s text tower for `spec`, or reads it from
/// `cache_dir` when it was built before (see the module documentation for the key). A progress
/// bar over classes when `progress`. Errors: a checkpoint without a text tower (naming the
/// tensors looked for), class/template files (naming file and line), a tokenizer that is not
/// CLIP's.
pub fn zero_shot_head_cached(
    checkpoint: &Path,
    spec: &ZeroShotSpec,
    cache_dir: Option<&Path>,
    progress: bool,
) -> Result<ZeroShotBuild> {
    let mut p = prepare(checkpoint, spec)?;
    let path = cache_dir.map(|d| d.join(format!("zeroshot-head-{}.safetensors", p.key)));
    if let Some(file) = path.as_ref().filter(|f| f.is_file()) {
        let head = load_head(file)?.linear;
        if head.out_dim == p.classes.len() {
            let sd = dawin_core::StateDict::open(file)?;
            let assumed = sd.metadata().and_then(|m| m.get(META_ASSUMPTIONS));
            if let Some(lines) = assumed.and_then(|a| serde_json::from_str::<Vec<String>>(a).ok()) {
                p.notes.extend(lines);
            }
            p.notes
                .push(format!("read from the cache: {}", file.display()));
            return Ok(ZeroShotBuild {
                head,
                key: p.key,
                path,
                from_cache: true,
                notes: p.notes,
            });
        }
    }
    let mut b = build(checkpoint, p, path.as_deref(), progress)?;
    if let Some(f) = &b.path {
        b.notes
            .push(format!("written to the cache: {}", f.display()));
    }
    Ok(b)
}

/// Builds the zero-shot head of `checkpoint` for `spec` and writes it to `out` (atomically):
/// `classification_head.weight` `[C, E]`, `.bias` (zeros), with the class names, templates,
/// tokenizer, the checkpoint's path and SHA-256 and the text tower's assumptions in the
/// metadata ([`dawin_vit::text::ZeroShotHead::metadata`], [`META_CHECKPOINT_SHA256`], …).
pub fn write_zero_shot_head(
    checkpoint: &Path,
    spec: &ZeroShotSpec,
    out: &Path,
    progress: bool,
) -> Result<ZeroShotBuild> {
    let p = prepare(checkpoint, spec)?;
    build(checkpoint, p, Some(out), progress)
}

/// Whether the checkpoint (file, shard index or directory) holds a `classification_head.weight`.
pub fn has_classification_head(checkpoint: &Path) -> Result<bool> {
    use dawin_core::TensorSource;
    const W: &str = "classification_head.weight";
    let ck = open_checkpoint(checkpoint)?;
    Ok(ck
        .tensor_names()
        .iter()
        .any(|n| *n == W || n.ends_with(&format!(".{W}"))))
}

/// A classifier from `checkpoint`'s image tower with the zero-shot head `head` (its own
/// `classification_head`, if any, is not used), its architecture resolved as for any checkpoint
/// (flags, config files beside it, metadata, shapes; unused vision tensors refused unless
/// `load.ignore_unused`). The head applies to L2-normalised features, as CLIP's zero-shot
/// classifier does.
pub fn classifier_with_head(
    checkpoint: &Path,
    head: &ZeroShotBuild,
    load: &LoadOptions,
) -> Result<ClipClassifier> {
    use dawin_vit::arch::{Resolved, Source, SourceKind};
    let ck = open_checkpoint(checkpoint)?;
    let head = dawin_vit::ClassificationHead {
        linear: head.head.clone(),
        normalize: Resolved::new(
            true,
            Source::new(
                SourceKind::Default,
                "a zero-shot head reads L2-normalised features (CLIP)",
            ),
        ),
        source_name: head
            .path
            .as_ref()
            .map_or_else(|| "<zero-shot head>".into(), |p| p.display().to_string()),
        weight_name: "classification_head.weight".into(),
    };
    let arch = dawin_vit::resolve_checkpoint(&ck, Some(&head), load)?;
    let opened = dawin_vit::Opened {
        checkpoint: ck,
        head: Some(head),
        arch,
    };
    let (model, warning) = opened.load(load.ignore_unused)?;
    if let Some(w) = warning {
        eprintln!("warning: {w}");
    }
    Ok(model)
}
