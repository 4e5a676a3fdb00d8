//! One file per subcommand; each parses its arguments into the library's terms, calls one
//! library function and prints.
pub(crate) mod coef;
pub(crate) mod convert;
pub(crate) mod demo;
pub(crate) mod eval;
pub(crate) mod eval_mtl;
pub(crate) mod inspect;
pub(crate) mod logits;
pub(crate) mod merge;
pub(crate) mod mixture;
pub(crate) mod zeroshot_head;

use dawin::vit::arch::{default_warnings, Architecture};
use dawin::vit::{open_resolved, ClipClassifier, LoadOptions};
use dawin::{Error, Result};
use std::path::{Path, PathBuf};

/// A classifier checkpoint in any form (safetensors, `.pt`/`.pth`/`.bin`, shard index,
/// directory), with its head from `head` when given; a missing file is an error naming it.
/// Tensors ignored with `--ignore-unused` are listed on stderr; the architecture's default
/// warnings are left to [`warn_defaults`] (one line for all the models of a command).
pub(crate) fn load_model(
    path: &Path,
    head: Option<&Path>,
    opts: &LoadOptions,
) -> Result<ClipClassifier> {
    for p in std::iter::once(path).chain(head) {
        if !p.exists() {
            return Err(Error::invalid(p.display().to_string(), "no such file"));
        }
    }
    let (model, warning) = open_resolved(path, head, opts)?.load(opts.ignore_unused)?;
    if let Some(w) = warning {
        eprintln!("warning: {w}");
    }
    Ok(model)
}

/// Prints the warnings of the resolutions (one line per kind of default, naming every
/// checkpoint it concerns) on stderr.
pub(crate) fn warn_defaults(archs: &[&Architecture]) {
    for w in default_warnings(archs) {
        eprintln!("warning: {w}");
    }
}

/// Adds `"architectures": {label: resolution}` to `<dir>/report.json` (rewritten atomically):
/// every field of each model's architecture with its source.
pub(crate) fn annotate_report(dir: &Path, archs: &[(String, &Architecture)]) -> Result<()> {
    let p = dir.join("report.json");
    let text = std::fs::read_to_string(&p).map_err(|e| Error::io(&p, e))?;
    let mut json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::invalid(p.display().to_string(), format!("not JSON: {e}")))?;
    let map: serde_json::Map<String, serde_json::Value> = archs
        .iter()
        .map(|(k, a)| (k.clone(), a.to_json()))
        .collect();
    if let Some(o) = json.as_object_mut() {
        o.insert("architectures".into(), serde_json::Value::Object(map));
    }
    let out = serde_json::to_string_pretty(&json).expect("JSON");
    dawin::core::atomic_write(&p, |tmp| std::fs::write(tmp, out.as_bytes()))?;
    Ok(())
}

/// The fingerprint of a checkpoint in the logits cache key: the SHA-256 of its file, or of every
/// checkpoint file of a directory or shard index ([`dawin::zeroshot::checkpoint_fingerprint`]).
/// `eval` and `logits` must agree on it, so that `eval` finds the shards `logits --shard` wrote.
pub(crate) fn checkpoint_fingerprint(path: &Path) -> Result<String> {
    dawin::zeroshot::checkpoint_fingerprint(path)
}

/// What a model's logits cache key adds to its checkpoint file's fingerprint: the architecture
/// fields a flag or a config file may decide (activation, heads, LayerScale, layer-norm eps, the
/// head's normalisation) and the head file's fingerprint, so that logits computed under other
/// flags or with another head are never taken from the cache.
pub(crate) fn model_tag(m: &ClipClassifier, head: Option<&Path>) -> Result<String> {
    let c = m.config();
    let mut t = format!(
        ":arch={},{},{},{:e},{}",
        c.activation.name(),
        c.heads,
        c.layer_scale,
        c.layer_norm_eps,
        m.head_normalize()
    );
    if let Some(h) = head {
        t += &format!(":head={}", checkpoint_fingerprint(h)?);
    }
    Ok(t)
}

/// A file's stem, the name tables give it.
pub(crate) fn stem(p: &Path) -> String {
    p.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

/// `NAME=PATH` of the option `arg`.
pub(crate) fn name_path(arg: &str, s: &str) -> Result<(String, PathBuf)> {
    match s.split_once('=') {
        Some((n, p)) if !n.is_empty() && !p.is_empty() => Ok((n.to_string(), PathBuf::from(p))),
        _ => Err(Error::invalid(arg, format!("`{s}`: expected NAME=PATH"))),
    }
}
