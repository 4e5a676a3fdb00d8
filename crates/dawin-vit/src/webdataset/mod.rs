//! WebDataset `.tar` shards as a dataset, read in place (never unpacked).
//!
//! Layout, as the `webdataset` Python package (1.0.2) reads it (`tariterators.py`):
//! * a shard is a plain (uncompressed) tar; its regular-file members are taken in tar order;
//!   members whose first path component is `__…__` (metadata) are skipped;
//! * a member `name` splits into key and suffix as `base_plus_ext` does, by the regex
//!   `^((?:.*/|)[^.]+)[.]([^/]*)$`: the key is the path up to the first dot of the file name
//!   (`train/n01440764_10026.jpg` → key `train/n01440764_10026`, suffix `jpg`;
//!   `a/b.seg.png` → `a/b`, `seg.png`); a name without such a dot is skipped; the suffix is
//!   lower-cased;
//! * consecutive members with one key form a sample; samples never span shards; two members of a
//!   sample with one suffix are an error;
//! * a sample here needs exactly one image, suffix `jpg`, `jpeg` or `png`, and a `cls`: ASCII
//!   text holding a non-negative integer label (surrounding white space ignored). Other members
//!   (`json`, `txt`, …) are ignored.
//!
//! [`WebDataset::open`] scans the shards once (tar headers only, seeking past the data; `.cls`
//! members are read) into an index of each sample's image offset and size, then reads sample `i`
//! with one positioned read ([`WebDataset::read_image`]; the shard is opened per read, so any
//! number of shards stays within the open-file limit), so batches load by index and in
//! parallel. [`WebDataset::iter`] walks the samples in order; [`for_each_sample`] streams a tar
//! from any reader (a pipe) without an index.
//!
//! Order is deterministic: shards in the order given (brace patterns expanded left to right,
//! [`expand_shard_spec`]), samples in tar order within a shard.

mod brace;

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

pub use brace::{expand_braces, MAX_EXPANSION};

use crate::error::{Error, Result};
use crate::preprocess::{decode_image, Preprocessor, RgbImage};
use crate::source::{Crop, ImageSource};

/// Image suffixes a sample's image may have.
pub const IMAGE_SUFFIXES: [&str; 3] = ["jpg", "jpeg", "png"];

/// Expands a shard specification into shard paths: `::`-separated parts (webdataset's list
/// separator), each brace-expanded ([`expand_braces`]): `data/shard-{000000..000009}.tar`,
/// `a.tar::b.tar`, `{train,val}-{0..3}.tar`. Errors on bad braces or an empty part.
pub fn expand_shard_spec(spec: &str) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for part in spec.split("::") {
        if part.is_empty() {
            return Err(Error::arg("shards", format!("`{spec}` has an empty part")));
        }
        let v = expand_braces(part).map_err(|m| Error::arg("shards", m))?;
        out.extend(v.into_iter().map(PathBuf::from));
    }
    Ok(out)
}

/// Splits a member name into webdataset's (key, suffix), as `base_plus_ext`'s regex
/// `^((?:.*/|)[^.]+)[.]([^/]*)$` does; `None` when it does not match (the member is skipped).
/// The suffix is returned as written (webdataset lower-cases it after).
pub fn split_key(name: &str) -> Option<(&str, &str)> {
    let base_start = name.rfind('/').map_or(0, |i| i + 1);
    match name[base_start..].find('.')? {
        0 => {
            // A file name starting with a dot: the regex's `[^.]+` may then start at the previous
            // directory component (after the slash before it, or at 0) and run to the slash, when
            // that component has no dot; the key then ends with `/`.
            if base_start == 0 {
                return None;
            }
            let prev = name[..base_start - 1].rfind('/').map_or(0, |i| i + 1);
            (!name[prev..base_start].contains('.'))
                .then(|| (&name[..base_start], &name[base_start + 1..]))
        }
        j => Some((&name[..base_start + j], &name[base_start + j + 1..])),
    }
}

/// True for webdataset's skipped metadata members: first path component `__…__`
/// (`skip_meta = r"__[^/]*__($|/)"`).
fn is_meta(name: &str) -> bool {
    let first = name.split('/').next().unwrap_or("");
    first.len() >= 4 && first.starts_with("__") && first.ends_with("__")
}

/// Options of [`WebDataset::open_with`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WdsOptions {
    /// Skip (and list in [`WebDataset::skipped`]) samples missing their image or `.cls` instead
    /// of erroring.
    pub skip_incomplete: bool,
    /// Crop applied to each decoded image ([`ImageSource::load_rgb`]).
    pub crop: Crop,
}

/// One indexed sample.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WdsEntry {
    /// Index of its shard in [`WebDataset::shards`].
    pub shard: usize,
    /// Its key (path up to the first dot of the file name).
    pub key: String,
    /// Its image's suffix (`jpg`, `jpeg` or `png`, lower case).
    pub image_suffix: String,
    /// Byte offset of the image's data in the shard.
    pub offset: u64,
    /// Byte size of the image.
    pub size: u64,
    /// The `.cls` label.
    pub label: i64,
}

/// A sample left out with [`WdsOptions::skip_incomplete`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WdsSkipped {
    /// Its shard.
    pub shard: PathBuf,
    /// Its key.
    pub key: String,
    /// Why.
    pub reason: String,
}

impl std::fmt::Display for WdsSkipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: sample `{}` {}",
            self.shard.display(),
            self.key,
            self.reason
        )
    }
}

/// A sample's data, read in order ([`WebDataset::iter`], [`for_each_sample`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WdsSample {
    /// Its key.
    pub key: String,
    /// Its image's suffix.
    pub image_suffix: String,
    /// The image file's bytes.
    pub image: Vec<u8>,
    /// The `.cls` label.
    pub label: i64,
}

/// Samples of WebDataset shards, indexed for random access (see the module doc).
#[derive(Debug)]
pub struct WebDataset {
    shards: Vec<PathBuf>,
    entries: Vec<WdsEntry>,
    labels: Vec<i64>,
    skipped: Vec<WdsSkipped>,
    crop: Crop,
}

fn shard_err(shard: &Path, msg: impl Into<String>) -> Error {
    Error::Dataset {
        path: shard.to_path_buf(),
        msg: msg.into(),
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A sample being grouped: its key, suffixes seen, image payload, label.
struct Pending<T> {
    key: String,
    suffixes: Vec<String>,
    image: Option<(String, T)>,
    label: Option<i64>,
}

/// Largest `.cls` member read (a label is a few digits).
const MAX_CLS_BYTES: u64 = 4096;

fn parse_cls(shard: &Path, key: &str, bytes: &[u8]) -> Result<i64> {
    let text = std::str::from_utf8(bytes).map_err(|_| {
        shard_err(
            shard,
            format!("sample `{key}`: its .cls is not UTF-8 text, not an integer label"),
        )
    })?;
    let t = text.trim();
    match t.parse::<i64>() {
        Ok(v) if v >= 0 => Ok(v),
        Ok(v) => Err(shard_err(
            shard,
            format!("sample `{key}`: its .cls label {v} is negative"),
        )),
        Err(_) => Err(shard_err(
            shard,
            format!(
                "sample `{key}`: its .cls holds `{}`, not an integer label",
                t.escape_default()
            ),
        )),
    }
}

/// A complete sample, or why it is incomplete (an error unless `skip_incomplete`).
type Grouped<T> = std::result::Result<(String, String, T, i64), WdsSkipped>;

fn finish<T>(p: Pending<T>, shard: &Path, skip_incomplete: bool) -> Result<Grouped<T>> {
    let missing = match (&p.image, p.label) {
        (Some(_), Some(_)) => None,
        (None, Some(_)) => Some("has no image (.jpg, .jpeg or .png)"),
        (Some(_), None) => Some("has no .cls label"),
        (None, None) => Some("has neither an image nor a .cls label"),
    };
    if let Some(m) = missing {
        let reason = format!("{m} (members: .{})", p.suffixes.join(", ."));
        if !skip_incomplete {
            return Err(shard_err(
                shard,
                format!(
                    "sample `{}` {reason}; fix the shard or skip incomplete samples",
                    p.key
                ),
            ));
        }
        return Ok(Err(WdsSkipped {
            shard: shard.to_path_buf(),
            key: p.key,
            reason,
        }));
    }
    let (suffix, data) = p.image.expect("checked");
    Ok(Ok((p.key, suffix, data, p.label.expect("checked"))))
}

/// Walks the members of one shard, groups them into samples and calls `emit` with each complete
/// sample (`Ok(None)` for an incomplete one when skipping). `payload` reads an image member.
fn walk_shard<R: Read, T>(
    entries: tar::Entries<'_, R>,
    shard: &Path,
    skip_incomplete: bool,
    mut payload: impl FnMut(&mut tar::Entry<'_, R>) -> std::io::Result<T>,
    mut emit: impl FnMut(Grouped<T>) -> Result<()>,
) -> Result<()> {
    let mut cur: Option<Pending<T>> = None;
    for entry in entries {
        let mut entry = entry.map_err(|e| shard_err(shard, format!("unreadable tar: {e}")))?;
        let ty = entry.header().entry_type();
        if ty == tar::EntryType::GNUSparse {
            return Err(shard_err(
                shard,
                "holds a sparse member, which WebDataset shards do not use",
            ));
        }
        if !(ty.is_file() || ty.is_contiguous()) {
            continue;
        }
        let name_bytes = entry.path_bytes().into_owned();
        let name = String::from_utf8(name_bytes).map_err(|e| {
            shard_err(
                shard,
                format!(
                    "member name {:?} is not UTF-8",
                    String::from_utf8_lossy(e.as_bytes())
                ),
            )
        })?;
        if is_meta(&name) {
            continue;
        }
        let Some((key, suffix)) = split_key(&name) else {
            continue;
        };
        let suffix = suffix.to_lowercase();
        if cur.as_ref().is_some_and(|p| p.key != key) {
            emit(finish(cur.take().expect("some"), shard, skip_incomplete)?)?;
        }
        let p = cur.get_or_insert_with(|| Pending {
            key: key.to_string(),
            suffixes: Vec::new(),
            image: None,
            label: None,
        });
        if p.suffixes.contains(&suffix) {
            return Err(shard_err(
                shard,
                format!("sample `{key}` has two `.{suffix}` members"),
            ));
        }
        p.suffixes.push(suffix.clone());
        if suffix == "cls" {
            if entry.size() > MAX_CLS_BYTES {
                return Err(shard_err(
                    shard,
                    format!(
                        "sample `{key}`: its .cls is {} bytes, not an integer label",
                        entry.size()
                    ),
                ));
            }
            let mut buf = Vec::new();
            entry.read_to_end(&mut buf).map_err(io_err(shard))?;
            p.label = Some(parse_cls(shard, key, &buf)?);
        } else if IMAGE_SUFFIXES.contains(&suffix.as_str()) {
            if let Some((other, _)) = &p.image {
                return Err(shard_err(
                    shard,
                    format!("sample `{key}` has two images, .{other} and .{suffix}"),
                ));
            }
            let data = payload(&mut entry).map_err(io_err(shard))?;
            p.image = Some((suffix, data));
        }
    }
    if let Some(p) = cur.take() {
        emit(finish(p, shard, skip_incomplete)?)?;
    }
    Ok(())
}

impl WebDataset {
    /// Opens the shards of `spec` ([`expand_shard_spec`]) with default options: an incomplete
    /// sample is an error, no crop.
    pub fn open(spec: &str) -> Result<Self> {
        Self::open_with(spec, &WdsOptions::default())
    }

    /// [`open`](Self::open) with options.
    pub fn open_with(spec: &str, opts: &WdsOptions) -> Result<Self> {
        Self::open_shards(&expand_shard_spec(spec)?, opts)
    }

    /// Scans `shards` in order into the sample index. Errors, naming the shard (and the sample's
    /// key): a missing or unreadable shard, a `.cls` that is not a non-negative integer, a sample
    /// without its image or label (unless skipped), two members with one suffix, no sample.
    pub fn open_shards(shards: &[PathBuf], opts: &WdsOptions) -> Result<Self> {
        if shards.is_empty() {
            return Err(Error::arg("shards", "no shard given"));
        }
        let mut ds = WebDataset {
            shards: shards.to_vec(),
            entries: Vec::new(),
            labels: Vec::new(),
            skipped: Vec::new(),
            crop: opts.crop,
        };
        for (si, path) in shards.iter().enumerate() {
            let file = File::open(path).map_err(io_err(path))?;
            let mut archive = tar::Archive::new(&file);
            let entries = archive
                .entries_with_seek()
                .map_err(|e| shard_err(path, format!("unreadable tar: {e}")))?;
            let (items, skipped) = (&mut ds.entries, &mut ds.skipped);
            walk_shard(
                entries,
                path,
                opts.skip_incomplete,
                |e| Ok((e.raw_file_position(), e.size())),
                |r| {
                    match r {
                        Ok((key, image_suffix, (offset, size), label)) => items.push(WdsEntry {
                            shard: si,
                            key,
                            image_suffix,
                            offset,
                            size,
                            label,
                        }),
                        Err(s) => skipped.push(s),
                    }
                    Ok(())
                },
            )?;
        }
        if ds.entries.is_empty() {
            return Err(shard_err(
                &shards[0],
                format!(
                    "the {} shard(s) hold no sample with an image and a .cls label{}",
                    shards.len(),
                    if ds.skipped.is_empty() {
                        String::new()
                    } else {
                        format!(" ({} incomplete)", ds.skipped.len())
                    }
                ),
            ));
        }
        ds.labels = ds.entries.iter().map(|e| e.label).collect();
        Ok(ds)
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Never true for an opened dataset.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The shards, in order.
    pub fn shards(&self) -> &[PathBuf] {
        &self.shards
    }

    /// The index: one entry per sample, in order.
    pub fn entries(&self) -> &[WdsEntry] {
        &self.entries
    }

    /// The `.cls` labels, one per sample.
    pub fn labels(&self) -> &[i64] {
        &self.labels
    }

    /// Samples left out as incomplete ([`WdsOptions::skip_incomplete`]).
    pub fn skipped(&self) -> &[WdsSkipped] {
        &self.skipped
    }

    /// The image bytes of sample `i`: one positioned read of its shard.
    pub fn read_image(&self, i: usize) -> Result<Vec<u8>> {
        let e = self.entries.get(i).ok_or_else(|| {
            Error::arg(
                "index",
                format!("{i} is out of range for {} samples", self.entries.len()),
            )
        })?;
        let path = &self.shards[e.shard];
        let mut buf = vec![0u8; e.size as usize];
        // Opened per read: a dataset may have more shards than a process may hold open files,
        // and an open costs microseconds next to a decode.
        File::open(path)
            .and_then(|f| read_exact_at(&f, &mut buf, e.offset))
            .map_err(|source| Error::Io {
                path: path.clone(),
                source: std::io::Error::new(
                    source.kind(),
                    format!(
                        "sample `{}` ({} bytes at {}): {source}",
                        e.key, e.size, e.offset
                    ),
                ),
            })?;
        Ok(buf)
    }

    /// The samples in order, read one by one (positioned reads, nothing held but one sample).
    pub fn iter(&self) -> impl Iterator<Item = Result<WdsSample>> + '_ {
        (0..self.len()).map(move |i| {
            let e = &self.entries[i];
            Ok(WdsSample {
                key: e.key.clone(),
                image_suffix: e.image_suffix.clone(),
                image: self.read_image(i)?,
                label: e.label,
            })
        })
    }
}

impl ImageSource for WebDataset {
    fn len(&self) -> usize {
        self.entries.len()
    }
    fn sample_name(&self, i: usize) -> String {
        let e = &self.entries[i];
        format!(
            "{}:{}.{}",
            self.shards[e.shard].display(),
            e.key,
            e.image_suffix
        )
    }
    fn load_rgb(&self, i: usize) -> Result<RgbImage> {
        let bytes = self.read_image(i)?;
        decode_image(&bytes)
            .and_then(|img| self.crop.apply(img))
            .map_err(|msg| Error::Image {
                path: PathBuf::from(self.sample_name(i)),
                msg,
            })
    }
    fn preprocess_into(
        &self,
        i: usize,
        pre: &mut Preprocessor,
        size: usize,
        out: &mut [f32],
    ) -> Result<()> {
        if self.crop != Crop::None {
            return pre.preprocess_rgb(&self.load_rgb(i)?, size, out);
        }
        let bytes = self.read_image(i)?;
        pre.preprocess_bytes(&bytes, size, out)
            .map_err(|msg| Error::Image {
                path: PathBuf::from(self.sample_name(i)),
                msg,
            })
    }
}

#[cfg(unix)]
fn read_exact_at(f: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(f, buf, offset)
}

#[cfg(windows)]
fn read_exact_at(f: &File, mut buf: &mut [u8], mut offset: u64) -> std::io::Result<()> {
    while !buf.is_empty() {
        match std::os::windows::fs::FileExt::seek_read(f, buf, offset) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Streams the samples of one tar from any reader (a file, a pipe), in order, without an index:
/// `f` gets each complete sample; incomplete ones are an error naming `shard` and the key, or are
/// skipped with `skip_incomplete`. Returns the number of samples given to `f` and the skipped
/// ones.
pub fn for_each_sample<R: Read>(
    reader: R,
    shard: &Path,
    skip_incomplete: bool,
    mut f: impl FnMut(WdsSample) -> Result<()>,
) -> Result<(usize, Vec<WdsSkipped>)> {
    let mut archive = tar::Archive::new(reader);
    let entries = archive
        .entries()
        .map_err(|e| shard_err(shard, format!("unreadable tar: {e}")))?;
    let (mut n, mut skipped) = (0, Vec::new());
    walk_shard(
        entries,
        shard,
        skip_incomplete,
        |e| {
            let mut v = Vec::with_capacity(e.size() as usize);
            e.read_to_end(&mut v)?;
            Ok(v)
        },
        |r| match r {
            Ok((key, image_suffix, image, label)) => {
                n += 1;
                f(WdsSample {
                    key,
                    image_suffix,
                    image,
                    label,
                })
            }
            Err(s) => {
                skipped.push(s);
                Ok(())
            }
        },
    )?;
    Ok((n, skipped))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expected splits written by hand from the regex `^((?:.*/|)[^.]+)[.]([^/]*)$`
    /// (re.match semantics); `tests/webdataset.rs` checks more against Python itself.
    #[test]
    fn split_key_follows_webdataset_regex() {
        assert_eq!(split_key("abc.jpg"), Some(("abc", "jpg")));
        assert_eq!(split_key("a/b.seg.png"), Some(("a/b", "seg.png")));
        assert_eq!(split_key("d.x/k.cls"), Some(("d.x/k", "cls")));
        assert_eq!(split_key("noext"), None);
        assert_eq!(split_key("d.x/noext"), None);
        assert_eq!(split_key(".hidden"), None);
        assert_eq!(split_key("dir/.x.jpg"), Some(("dir/", "x.jpg")));
        assert_eq!(split_key("d.y/.x.jpg"), None);
        assert!(is_meta("__info__") && is_meta("__a__/x.json"));
        assert!(!is_meta("__a") && !is_meta("a/__b__") && !is_meta("____x"));
    }
}
