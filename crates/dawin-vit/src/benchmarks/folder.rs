//! Image-folder trees: finding the class folders and their images as torchvision's `ImageFolder`
//! does, and labelling the class folders by a dataset's rule ([`label_folders`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::classes::{
    imagenet_a_wnids, imagenet_r_wnids, imagenet_wnids, is_wnid, objectnet_classes,
};
use crate::error::{Error, Result};

/// File name endings read as samples (any case): the JPEG and PNG members of torchvision's
/// `IMG_EXTENSIONS`, matched as it does (`filename.lower().endswith(...)`).
pub const READ_EXTENSIONS: [&str; 3] = [".jpg", ".jpeg", ".png"];

/// The rest of torchvision's `IMG_EXTENSIONS`: files `ImageFolder` would read but this crate
/// cannot decode. They are left out and counted ([`FolderScan::unsupported`]).
pub const UNSUPPORTED_EXTENSIONS: [&str; 6] = [".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp"];

fn ends_with_any(name: &str, exts: &[&str]) -> bool {
    let lower = name.to_ascii_lowercase();
    exts.iter().any(|e| lower.ends_with(e))
}

fn dataset_err(path: &Path, msg: impl Into<String>) -> Error {
    Error::Dataset {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A class folder (a sub-folder of the dataset root) and its image files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassFolder {
    /// The folder's name.
    pub name: String,
    /// Its JPEG/PNG files (searched recursively, symbolic links followed), in torchvision's order:
    /// directories by path (`sorted(os.walk(...))`), files by name within a directory.
    pub files: Vec<PathBuf>,
}

/// The class folders of a dataset root, sorted by name (byte order = Python's `sorted`).
#[derive(Clone, Debug)]
pub struct FolderScan {
    /// The dataset root.
    pub root: PathBuf,
    /// Every sub-folder of the root (files directly in the root are ignored, as `ImageFolder`
    /// ignores them).
    pub classes: Vec<ClassFolder>,
    /// Number of files torchvision would read that this crate skips ([`UNSUPPORTED_EXTENSIONS`]).
    pub unsupported: usize,
}

fn walk(
    dir: &Path,
    out: &mut BTreeMap<(Vec<u8>, Vec<u8>), PathBuf>,
    unsupported: &mut usize,
) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let path = entry.map_err(io_err(dir))?.path();
        if path.is_dir() {
            walk(&path, out, unsupported)?;
            continue;
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if ends_with_any(&name, &READ_EXTENSIONS) {
            let key = (
                dir.as_os_str().as_encoded_bytes().to_vec(),
                path.file_name()
                    .unwrap_or_default()
                    .as_encoded_bytes()
                    .to_vec(),
            );
            out.insert(key, path);
        } else if ends_with_any(&name, &UNSUPPORTED_EXTENSIONS) {
            *unsupported += 1;
        }
    }
    Ok(())
}

/// Lists the class folders of `root` and their images. Errors, naming the folder: `root` has no
/// sub-folder, a class folder's name is not UTF-8, or a class folder holds no JPEG/PNG file
/// (torchvision's `ImageFolder` refuses empty class folders too — "Found no valid file for the
/// classes …" — and an empty folder usually means an incomplete copy; remove it to go on).
pub fn scan_class_folders(root: &Path) -> Result<FolderScan> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(root).map_err(io_err(root))? {
        let p = entry.map_err(io_err(root))?.path();
        if p.is_dir() {
            let name = p
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| dataset_err(&p, "class folder name is not UTF-8"))?;
            names.push(name.to_string());
        }
    }
    names.sort();
    if names.is_empty() {
        return Err(dataset_err(
            root,
            "no class sub-folder (expected one sub-folder per class)",
        ));
    }
    let mut classes = Vec::with_capacity(names.len());
    let mut unsupported = 0;
    let mut empty = Vec::new();
    for name in names {
        let mut files = BTreeMap::new();
        let before = unsupported;
        walk(&root.join(&name), &mut files, &mut unsupported)?;
        if files.is_empty() {
            let only = if unsupported > before {
                " (only formats this tool cannot read: .bmp, .ppm, .pgm, .tif, .tiff, .webp)"
            } else {
                ""
            };
            empty.push(format!("`{name}`{only}"));
        }
        classes.push(ClassFolder {
            name,
            files: files.into_values().collect(),
        });
    }
    if !empty.is_empty() {
        return Err(dataset_err(
            root,
            format!(
                "{} class folder(s) hold no .jpg, .jpeg or .png file: {} (torchvision's ImageFolder \
                 refuses empty class folders too; remove them or add their images)",
                empty.len(),
                list_some(&empty, 10)
            ),
        ));
    }
    Ok(FolderScan {
        root: root.to_path_buf(),
        classes,
        unsupported,
    })
}

/// `a, b, c` for at most `n` items, then `… (N in all)`.
pub(crate) fn list_some(items: &[String], n: usize) -> String {
    if items.len() <= n {
        items.join(", ")
    } else {
        format!("{}, … ({} in all)", items[..n].join(", "), items.len())
    }
}

/// A fixed WordNet-id class list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WnidList {
    /// ImageNet-1k's 1000 classes ([`imagenet_wnids`]).
    ImageNet,
    /// ImageNet-R's 200 ([`imagenet_r_wnids`]).
    ImageNetR,
    /// ImageNet-A's 200 ([`imagenet_a_wnids`]).
    ImageNetA,
}

impl WnidList {
    /// The WordNet ids, sorted; label = index.
    pub fn wnids(self) -> &'static [&'static str] {
        match self {
            WnidList::ImageNet => imagenet_wnids(),
            WnidList::ImageNetR => imagenet_r_wnids(),
            WnidList::ImageNetA => imagenet_a_wnids(),
        }
    }

    /// The list's name in messages.
    pub fn title(self) -> &'static str {
        match self {
            WnidList::ImageNet => "ImageNet-1k's 1000",
            WnidList::ImageNetR => "ImageNet-R's 200",
            WnidList::ImageNetA => "ImageNet-A's 200",
        }
    }
}

/// How a dataset's class folders are labelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FolderRule {
    /// Any image folder: by the folders' integers when every class folder name is an integer
    /// (unless `sorted_labels`), else torchvision `ImageFolder`'s sorted-name order.
    Plain {
        /// Force the sorted-name order even for integer names.
        sorted_labels: bool,
    },
    /// Folders named by WordNet ids of a fixed list; label = the wnid's index in the list
    /// (ImageNet, ImageNet-Sketch: 1000; ImageNet-R, ImageNet-A: 200).
    Wnids(WnidList),
    /// Folders named `0` … `n − 1`; label = the integer (ImageNet-V2: `n` = 1000).
    IntegerRange(usize),
    /// ObjectNet: the 113 folders mapped to ImageNet, label = index among their sorted names;
    /// every other folder is left out, as WiSE-FT's `ObjectNetDataset` does.
    ObjectNet,
}

/// The labelling decision of [`label_folders`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FolderLabels {
    /// Per class folder (in the order given): its label, or `None` when it is left out.
    pub labels: Vec<Option<i64>>,
    /// True when the labels are the folders' integers.
    pub integer: bool,
    /// One human-readable line saying what was applied, for the CLI and reports.
    pub line: String,
    /// Warnings (missing classes, folders left out), each one line.
    pub notes: Vec<String>,
}

fn parse_integer(name: &str) -> Option<i64> {
    if name.is_empty() || name.len() > 18 || !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    name.parse().ok()
}

fn missing_note(what: &str, missing: &[String]) -> Option<String> {
    (!missing.is_empty()).then(|| {
        format!(
            "{} of {what} classes have no folder ({}): their labels stay unused, the others keep \
             their fixed labels",
            missing.len(),
            list_some(missing, 5)
        )
    })
}

/// Labels class folders `names` (sorted, as [`FolderScan::classes`]) of the dataset at `root`
/// by `rule`. Errors name `root` and the offending folders: a folder outside a fixed list, a
/// non-integer or out-of-range folder for [`FolderRule::IntegerRange`], two integer folders with
/// one value (`1` and `01`), no ObjectNet folder at all.
pub fn label_folders(root: &Path, names: &[String], rule: FolderRule) -> Result<FolderLabels> {
    let k = names.len();
    match rule {
        FolderRule::Plain { sorted_labels } => {
            let ints: Option<Vec<i64>> = names.iter().map(|n| parse_integer(n)).collect();
            match ints {
                Some(ints) if !sorted_labels => {
                    check_distinct(root, names, &ints)?;
                    let max = ints.iter().max().copied().unwrap_or(0);
                    Ok(FolderLabels {
                        labels: ints.into_iter().map(Some).collect(),
                        integer: true,
                        line: format!(
                            "labels: all {k} class folder names are integers, so label = the folder's \
                             integer (0 … {max}), not the folders' sorted order (set sorted_labels for \
                             torchvision ImageFolder's order)"
                        ),
                        notes: vec![],
                    })
                }
                ints => {
                    let why = if ints.is_some() {
                        " (integer folder names, sorted order forced)".to_string()
                    } else if let (Some(bad), true) = (
                        names.iter().find(|n| parse_integer(n).is_none()),
                        names.iter().any(|n| parse_integer(n).is_some()),
                    ) {
                        format!(
                            "; the names mix integers and others (`{bad}` is not an integer), so no \
                             integer labelling"
                        )
                    } else {
                        String::new()
                    };
                    Ok(FolderLabels {
                        labels: (0..k as i64).map(Some).collect(),
                        integer: false,
                        line: format!(
                            "labels: {k} class folders in sorted name order (torchvision ImageFolder), \
                             label 0 = `{}`{why}",
                            names[0]
                        ),
                        notes: vec![],
                    })
                }
            }
        }
        FolderRule::Wnids(list) => {
            let wnids = list.wnids();
            let mut labels = Vec::with_capacity(k);
            let mut unknown = Vec::new();
            for n in names {
                match wnids.binary_search(&n.as_str()) {
                    Ok(i) => labels.push(Some(i as i64)),
                    Err(_) => {
                        let why = if !is_wnid(n) {
                            "not a WordNet id"
                        } else if imagenet_wnids().binary_search(&n.as_str()).is_ok() {
                            "an ImageNet class outside the subset"
                        } else {
                            "not an ImageNet-1k class"
                        };
                        unknown.push(format!("`{n}` ({why})"));
                    }
                }
            }
            if !unknown.is_empty() {
                return Err(dataset_err(
                    root,
                    format!(
                        "{} class folder(s) are not among {} WordNet ids: {}",
                        unknown.len(),
                        list.title(),
                        list_some(&unknown, 5)
                    ),
                ));
            }
            let missing: Vec<String> = wnids
                .iter()
                .filter(|w| names.binary_search_by(|n| n.as_str().cmp(w)).is_err())
                .map(|w| w.to_string())
                .collect();
            Ok(FolderLabels {
                labels,
                integer: false,
                line: format!(
                    "labels: {k} WordNet-id class folders, label = the wnid's index in {} sorted \
                     list (data/{})",
                    list.title(),
                    match list {
                        WnidList::ImageNet => "imagenet_wnids.txt",
                        WnidList::ImageNetR => "imagenet_r_wnids.txt",
                        WnidList::ImageNetA => "imagenet_a_wnids.txt",
                    }
                ),
                notes: missing_note(list.title(), &missing).into_iter().collect(),
            })
        }
        FolderRule::IntegerRange(n) => {
            let bad: Vec<String> = names
                .iter()
                .filter(|s| parse_integer(s).is_none_or(|v| v >= n as i64))
                .map(|s| format!("`{s}`"))
                .collect();
            if !bad.is_empty() {
                return Err(dataset_err(
                    root,
                    format!(
                        "class folders must be named by integers 0 … {} (label = the integer); not so: {}",
                        n - 1,
                        list_some(&bad, 5)
                    ),
                ));
            }
            let ints: Vec<i64> = names.iter().map(|s| parse_integer(s).unwrap()).collect();
            check_distinct(root, names, &ints)?;
            let missing: Vec<String> = (0..n as i64)
                .filter(|v| !ints.contains(v))
                .map(|v| v.to_string())
                .collect();
            Ok(FolderLabels {
                labels: ints.into_iter().map(Some).collect(),
                integer: true,
                line: format!(
                    "labels: {k} integer class folders, label = the folder's integer (not the \
                     folders' sorted order)"
                ),
                notes: missing_note(&format!("the {n}"), &missing)
                    .into_iter()
                    .collect(),
            })
        }
        FolderRule::ObjectNet => {
            let classes = objectnet_classes();
            let labels: Vec<Option<i64>> = names
                .iter()
                .map(|n| {
                    classes
                        .binary_search_by(|c| c.folder.cmp(n.as_str()))
                        .ok()
                        .map(|i| i as i64)
                })
                .collect();
            let used = labels.iter().flatten().count();
            if used == 0 {
                return Err(dataset_err(
                    root,
                    format!(
                        "none of its {k} sub-folders is one of ObjectNet's 113 ImageNet-mapped class \
                         folders (alarm_clock, backpack, …); pass the folder objectnet-1.0/images"
                    ),
                ));
            }
            let missing: Vec<String> = classes
                .iter()
                .filter(|c| {
                    names
                        .binary_search_by(|n| n.as_str().cmp(c.folder))
                        .is_err()
                })
                .map(|c| c.folder.to_string())
                .collect();
            let mut notes: Vec<String> = missing_note("ObjectNet's 113 mapped", &missing)
                .into_iter()
                .collect();
            if used < k {
                notes.push(format!(
                    "{} folder(s) not mapped to ImageNet left out (ObjectNet has 313 classes; WiSE-FT \
                     evaluates the 113 that overlap ImageNet)",
                    k - used
                ));
            }
            Ok(FolderLabels {
                labels,
                integer: false,
                line: format!(
                    "labels: {used} of ObjectNet's 113 ImageNet-mapped class folders, label = index of \
                     the folder among the 113 sorted names (data/objectnet_to_imagenet.tsv)"
                ),
                notes,
            })
        }
    }
}

fn check_distinct(root: &Path, names: &[String], ints: &[i64]) -> Result<()> {
    let mut seen = BTreeMap::new();
    for (n, v) in names.iter().zip(ints) {
        if let Some(prev) = seen.insert(*v, n) {
            return Err(dataset_err(
                root,
                format!("class folders `{prev}` and `{n}` both name the integer label {v}"),
            ));
        }
    }
    Ok(())
}
