//! One file per subcommand; each parses its arguments into the library's terms, calls one
//! library function and prints.
pub(crate) mod coef;
pub(crate) mod demo;
pub(crate) mod eval;
pub(crate) mod eval_mtl;
pub(crate) mod logits;
pub(crate) mod merge;
pub(crate) mod mixture;
pub(crate) mod zeroshot_head;

use dawin::vit::{ClipClassifier, LoadOptions};
use dawin::{Error, Result};
use std::path::{Path, PathBuf};

/// A classifier checkpoint; a missing file is an error naming it.
pub(crate) fn load_model(path: &Path, opts: &LoadOptions) -> Result<ClipClassifier> {
    if !path.exists() {
        return Err(Error::invalid(path.display().to_string(), "no such file"));
    }
    Ok(ClipClassifier::from_files(path, None, opts)?)
}

/// The fingerprint of a checkpoint in the logits cache key: the SHA-256 of its file. `eval` and
/// `logits` must agree on it, so that `eval` finds the shards `logits --shard` wrote.
pub(crate) fn checkpoint_fingerprint(path: &Path) -> Result<String> {
    dawin::file_fingerprint(path)
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
