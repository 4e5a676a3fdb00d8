//! Prompt templates and class names for CLIP zero-shot heads.
//!
//! A zero-shot head has one row per class: every template with its `{}` replaced by the class
//! name ([`fill`]) is encoded by CLIP's text tower, each embedding L2-normalised, averaged over the
//! templates and L2-normalised again.
//!
//! Built in (files under `crates/dawin-vit/data/`, written by `scripts/make_text_data.py` from the
//! sources named there):
//! * template sets ([`templates`], [`TEMPLATE_SETS`]): `openai-imagenet` (the 80 templates of
//!   OpenAI's ImageNet prompt-engineering notebook, exactly as published: "a origami {}." included),
//!   `openai-imagenet-7` (that notebook's 7-template subset, open_clip's
//!   `SIMPLE_IMAGENET_TEMPLATES`), `simple` (`a photo of a {}.`), and the per-dataset sets of the
//!   task_vectors benchmark (`src/datasets/templates.py`): `cars`, `cifar10`, `cifar100`, `dtd`,
//!   `eurosat`, `food101`, `gtsrb`, `mnist`, `resisc45`, `stl10`, `sun397`, `svhn`;
//! * the 1000 ImageNet class names of CLIP's evaluation ([`imagenet_classes`]).
//!
//! Files: [`read_templates`] (one template per line, each with exactly one `{}`) and
//! [`read_classes`] (one class name per line), with errors naming the file and the line.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Errors of reading templates and class names: each names the file (and line) at fault.
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    /// The file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A line of the file is not a valid template or class name.
    #[error("{}, line {line}: {msg}", path.display())]
    Line {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        msg: String,
    },
    /// The file is not usable as a whole (not UTF-8, empty).
    #[error("{}: {msg}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        msg: String,
    },
    /// A `--templates`/`--classes` argument that is neither a built-in name nor an existing file.
    #[error("`{arg}` is neither a built-in {what} ({known}) nor an existing file")]
    Unknown {
        /// The argument as given.
        arg: String,
        /// "template set" or "class list".
        what: &'static str,
        /// The built-in names, comma-separated.
        known: String,
    },
}

/// The placeholder a template holds exactly once; [`fill`] replaces it by the class name.
pub const PLACEHOLDER: &str = "{}";

/// Built-in template sets: `(name, file contents)`, one template per line.
pub const TEMPLATE_SETS: &[(&str, &str)] = &[
    (
        "openai-imagenet",
        include_str!("../data/templates/openai-imagenet.txt"),
    ),
    (
        "openai-imagenet-7",
        include_str!("../data/templates/openai-imagenet-7.txt"),
    ),
    ("simple", include_str!("../data/templates/simple.txt")),
    ("cars", include_str!("../data/templates/cars.txt")),
    ("cifar10", include_str!("../data/templates/cifar10.txt")),
    ("cifar100", include_str!("../data/templates/cifar100.txt")),
    ("dtd", include_str!("../data/templates/dtd.txt")),
    ("eurosat", include_str!("../data/templates/eurosat.txt")),
    ("food101", include_str!("../data/templates/food101.txt")),
    ("gtsrb", include_str!("../data/templates/gtsrb.txt")),
    ("mnist", include_str!("../data/templates/mnist.txt")),
    ("resisc45", include_str!("../data/templates/resisc45.txt")),
    ("stl10", include_str!("../data/templates/stl10.txt")),
    ("sun397", include_str!("../data/templates/sun397.txt")),
    ("svhn", include_str!("../data/templates/svhn.txt")),
];

const IMAGENET_CLASSES: &str = include_str!("../data/imagenet_classes.txt");

/// The names of the built-in template sets, in [`TEMPLATE_SETS`] order.
pub fn template_set_names() -> Vec<&'static str> {
    TEMPLATE_SETS.iter().map(|(n, _)| *n).collect()
}

fn split_lines(text: &'static str) -> Vec<&'static str> {
    text.lines().collect()
}

/// The built-in template set `name` (ASCII case-insensitive: `Cars`, `EuroSAT` and `SUN397`, as
/// task_vectors spells its datasets, work too), or `None`.
pub fn templates(name: &str) -> Option<&'static [&'static str]> {
    static PARSED: OnceLock<Vec<Vec<&'static str>>> = OnceLock::new();
    let parsed = PARSED.get_or_init(|| TEMPLATE_SETS.iter().map(|(_, t)| split_lines(t)).collect());
    TEMPLATE_SETS
        .iter()
        .position(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|i| parsed[i].as_slice())
}

/// The 1000 ImageNet class names of CLIP's zero-shot evaluation, in class-index order (open_clip's
/// `IMAGENET_CLASSNAMES` = `imagenet_classes` of OpenAI's prompt-engineering notebook).
pub fn imagenet_classes() -> &'static [&'static str] {
    static PARSED: OnceLock<Vec<&'static str>> = OnceLock::new();
    PARSED.get_or_init(|| split_lines(IMAGENET_CLASSES))
}

/// `template` with its `{}` replaced by `class_name` (the placeholder is the literal two
/// characters `{}`; other braces are kept as they are, unlike Python's `str.format`).
pub fn fill(template: &str, class_name: &str) -> String {
    template.replacen(PLACEHOLDER, class_name, 1)
}

/// Checks one template: exactly one `{}`. `Err` holds the reason.
pub fn check_template(template: &str) -> Result<(), String> {
    match template.matches(PLACEHOLDER).count() {
        1 => Ok(()),
        0 => Err(format!(
            "template {template:?} has no `{{}}` for the class name"
        )),
        n => Err(format!(
            "template {template:?} has {n} `{{}}`: one is expected (the class name goes there)"
        )),
    }
}

/// The lines of a text file: UTF-8 (an initial byte-order mark is dropped), `\n` or `\r\n` line
/// ends, a final line end optional. An empty file is an error.
fn read_lines(path: &Path) -> Result<Vec<String>, PromptError> {
    let bytes = std::fs::read(path).map_err(|source| PromptError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|e| PromptError::File {
        path: path.to_path_buf(),
        msg: format!("not UTF-8 text ({e})"),
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    if lines.is_empty() {
        return Err(PromptError::File {
            path: path.to_path_buf(),
            msg: "the file is empty".into(),
        });
    }
    Ok(lines)
}

/// Reads a templates file: one template per line, each with exactly one `{}`; every line counts
/// (no comments, no blank lines). Errors name the file and the 1-based line.
pub fn read_templates(path: impl AsRef<Path>) -> Result<Vec<String>, PromptError> {
    let path = path.as_ref();
    let lines = read_lines(path)?;
    for (i, t) in lines.iter().enumerate() {
        check_template(t).map_err(|msg| PromptError::Line {
            path: path.to_path_buf(),
            line: i + 1,
            msg,
        })?;
    }
    Ok(lines)
}

/// Reads a class-names file: one class name per line, in class-index order; a blank line (only
/// whitespace) is an error, as is an empty file. Names are kept as written (the tokenizer strips
/// and collapses whitespace).
pub fn read_classes(path: impl AsRef<Path>) -> Result<Vec<String>, PromptError> {
    let path = path.as_ref();
    let lines = read_lines(path)?;
    for (i, c) in lines.iter().enumerate() {
        if c.trim().is_empty() {
            return Err(PromptError::Line {
                path: path.to_path_buf(),
                line: i + 1,
                msg: "empty class name (one class name per line, no blank lines)".into(),
            });
        }
    }
    Ok(lines)
}

/// Resolves a `--templates NAME|FILE` argument: a built-in set name ([`templates`]) first, else a
/// file ([`read_templates`]). Returns the templates and a description (`built-in set openai-imagenet`
/// or `file PATH`).
pub fn resolve_templates(arg: &str) -> Result<(Vec<String>, String), PromptError> {
    if let Some(t) = templates(arg) {
        return Ok((
            t.iter().map(|s| s.to_string()).collect(),
            format!("built-in set {}", arg.to_ascii_lowercase()),
        ));
    }
    let path = Path::new(arg);
    if path.is_file() {
        return Ok((read_templates(path)?, format!("file {}", path.display())));
    }
    Err(PromptError::Unknown {
        arg: arg.into(),
        what: "template set",
        known: template_set_names().join(", "),
    })
}

/// Resolves a `--classes imagenet|FILE` argument: `imagenet` is [`imagenet_classes`], anything
/// else a file ([`read_classes`]). Returns the class names and a description.
pub fn resolve_classes(arg: &str) -> Result<(Vec<String>, String), PromptError> {
    if arg.eq_ignore_ascii_case("imagenet") {
        return Ok((
            imagenet_classes().iter().map(|s| s.to_string()).collect(),
            "built-in ImageNet class names (1000)".into(),
        ));
    }
    let path = Path::new(arg);
    if path.is_file() {
        return Ok((read_classes(path)?, format!("file {}", path.display())));
    }
    Err(PromptError::Unknown {
        arg: arg.into(),
        what: "class list",
        known: "imagenet".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_template_has_one_placeholder() {
        for (name, _) in TEMPLATE_SETS {
            let t = templates(name).unwrap();
            assert!(!t.is_empty(), "{name}");
            for s in t {
                check_template(s).unwrap_or_else(|e| panic!("{name}: {e}"));
            }
        }
    }

    #[test]
    fn fill_replaces_the_placeholder_only() {
        assert_eq!(fill("a {} in {braces}.", "cat"), "a cat in {braces}.");
        assert!(check_template("a {} and a {}.").is_err());
        assert!(check_template("no placeholder").is_err());
    }
}
