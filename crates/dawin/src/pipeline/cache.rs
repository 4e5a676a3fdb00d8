//! The on-disk logits cache: θ's logits `[N, C]` over the head's classes (before any class
//! mapping) of a dataset, content-addressed.
//!
//! * key = SHA-256 of the cache format version, the model fingerprint and the dataset
//!   fingerprint ([`cache_key`]), so a changed checkpoint or dataset is never served stale;
//! * the whole dataset: `<dir>/<key>.npy`;
//! * a shard ([`Shard`]: `dawin logits --shard I/N`, a contiguous 1/N of the samples):
//!   `<dir>/<key>.shards/<I>-of-<N>.npy`, holding the logits of that shard's rows only.
//!
//! [`lookup`] serves the whole file when present, else assembles a complete set of shards (any
//! N; with several complete sets, the one of fewest shards), else reports what is missing. Every
//! file is written to a temporary name and renamed into place, so parallel writers (a Slurm job
//! array on a shared file system) never leave a half-written shard.
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Version of the cache layout; bump it when the forward changes numerics.
pub const CACHE_VERSION: &str = "dawin-logits-cache-v1";

/// Shard `index` of `count`: the samples `⌊index·N/count⌋ .. ⌊(index+1)·N/count⌋` of an
/// `N`-sample dataset (contiguous, in dataset order; sizes differ by at most one; together the
/// `count` shards cover every sample once).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Shard {
    /// `I`, from 0.
    pub index: usize,
    /// `N`, at least 1.
    pub count: usize,
}

impl Shard {
    /// Shard `index` of `count`; errors unless `index < count`.
    pub fn new(index: usize, count: usize) -> Result<Self> {
        if count == 0 || index >= count {
            return Err(Error::invalid(
                "--shard",
                format!(
                    "{index}/{count}: expected I/N with 0 ≤ I < N (N ≥ 1; I counts from 0, as \
                     $SLURM_ARRAY_TASK_ID of `--array=0-{}`)",
                    count.max(1) - 1
                ),
            ));
        }
        Ok(Shard { index, count })
    }

    /// Parses `I/N`. Errors name the argument: not two integers, `I ≥ N`, `N = 0`.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = || {
            Error::invalid(
                "--shard",
                format!("`{s}`: expected I/N, two integers with 0 ≤ I < N (e.g. 0/8)"),
            )
        };
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let i: usize = i.trim().parse().map_err(|_| bad())?;
        let n: usize = n.trim().parse().map_err(|_| bad())?;
        Self::new(i, n)
    }

    /// The samples of this shard in a dataset of `len` samples.
    pub fn range(&self, len: usize) -> Range<usize> {
        let at = |k: usize| ((k as u128 * len as u128) / self.count as u128) as usize;
        at(self.index)..at(self.index + 1)
    }

    /// The shard's file name, `<I>-of-<N>.npy`.
    fn file_name(&self) -> String {
        format!("{}-of-{}.npy", self.index, self.count)
    }

    /// Parses a shard file name written by [`file_name`](Self::file_name).
    fn from_file_name(name: &str) -> Option<Self> {
        let stem = name.strip_suffix(".npy")?;
        let (i, n) = stem.split_once("-of-")?;
        let s = Shard::new(i.parse().ok()?, n.parse().ok()?).ok()?;
        (s.file_name() == name).then_some(s)
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The cache key of (model, dataset): hex SHA-256 of the version and both fingerprints.
pub fn cache_key(model_fingerprint: &str, dataset_fingerprint: &str) -> String {
    let mut h = Sha256::new();
    for part in [CACHE_VERSION, model_fingerprint, dataset_fingerprint] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    crate::data::hex(&h.finalize())
}

/// Where the logits of (model, dataset) live under `dir`: the whole dataset's file, or a shard's.
pub fn cache_file(dir: &Path, key: &str, shard: Option<Shard>) -> PathBuf {
    match shard {
        None => dir.join(format!("{key}.npy")),
        Some(s) => dir.join(format!("{key}.shards")).join(s.file_name()),
    }
}

/// What the cache holds for (model, dataset).
#[derive(Debug)]
pub enum Lookup {
    /// The logits `[N, C]`, from the whole file or assembled from this many shards.
    Found {
        /// The logits.
        logits: Vec<f32>,
        /// `Some(N)` when assembled from N shards.
        shards: Option<usize>,
    },
    /// Nothing.
    Missing,
    /// Some shards of one set, not all: the set's count and the missing shards.
    Partial {
        /// `N` of the set.
        count: usize,
        /// The shards not in the cache.
        missing: Vec<Shard>,
    },
}

/// Reads an `.npy` of logits, checking its shape `[rows, c]`; a file of another shape is an
/// error naming it (written for another dataset or head under the same key: remove it).
fn read_rows(file: &Path, rows: usize, c: usize) -> Result<Vec<f32>> {
    let a = dawin_core::npy::read_f32(file)?;
    if a.shape != [rows, c] {
        return Err(Error::invalid(
            file.display().to_string(),
            format!(
                "cached logits have shape {:?}, expected [{rows}, {c}]; the file does not belong \
                 to this dataset and model: remove it",
                a.shape
            ),
        ));
    }
    Ok(a.data)
}

/// The shards present under `<dir>/<key>.shards/`, grouped by count.
fn shards_present(dir: &Path, key: &str) -> Result<BTreeMap<usize, Vec<Shard>>> {
    let sd = dir.join(format!("{key}.shards"));
    let mut sets: BTreeMap<usize, Vec<Shard>> = BTreeMap::new();
    let entries = match std::fs::read_dir(&sd) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(sets),
        Err(e) => return Err(Error::io(&sd, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(&sd, e))?;
        if let Some(s) = entry.file_name().to_str().and_then(Shard::from_file_name) {
            sets.entry(s.count).or_default().push(s);
        }
    }
    for v in sets.values_mut() {
        v.sort();
    }
    Ok(sets)
}

/// Looks up the logits `[n, c]` of (model, dataset) under `dir` (see the module doc). A
/// mismatch is an error naming the files: shards of several counts none of which is complete
/// (e.g. 2 of 3 and 5 of 7: two runs with different `--shard …/N` mixed), a file of the wrong
/// shape. The whole file with a wrong shape (an old layout) counts as missing.
pub fn lookup(dir: &Path, key: &str, n: usize, c: usize) -> Result<Lookup> {
    let whole = cache_file(dir, key, None);
    if let Ok(a) = dawin_core::npy::read_f32(&whole) {
        if a.shape == [n, c] {
            return Ok(Lookup::Found {
                logits: a.data,
                shards: None,
            });
        }
    }
    let sets = shards_present(dir, key)?;
    if let Some((&count, _)) = sets.iter().find(|(&count, v)| v.len() == count) {
        let mut logits = Vec::with_capacity(n * c);
        for index in 0..count {
            let s = Shard { index, count };
            let rows = s.range(n).len();
            logits.extend(read_rows(&cache_file(dir, key, Some(s)), rows, c)?);
        }
        return Ok(Lookup::Found {
            logits,
            shards: Some(count),
        });
    }
    match sets.len() {
        0 => Ok(Lookup::Missing),
        1 => {
            let (&count, have) = sets.iter().next().expect("one set");
            let missing = (0..count)
                .map(|index| Shard { index, count })
                .filter(|s| !have.contains(s))
                .collect();
            Ok(Lookup::Partial { count, missing })
        }
        _ => {
            let what: Vec<String> = sets
                .iter()
                .map(|(n, v)| format!("{} of {n} shards", v.len()))
                .collect();
            Err(Error::invalid(
                dir.join(format!("{key}.shards")).display().to_string(),
                format!(
                    "mismatched shard counts: {} and none complete (runs with different \
                     --shard …/N were mixed); finish one set or remove the others",
                    what.join(" and ")
                ),
            ))
        }
    }
}

/// Stores logits `[rows, c]` of the whole dataset (`shard = None`) or of one shard, atomically.
pub fn store(
    dir: &Path,
    key: &str,
    shard: Option<Shard>,
    logits: &[f32],
    c: usize,
) -> Result<PathBuf> {
    let file = cache_file(dir, key, shard);
    if let Some(parent) = file.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    dawin_core::npy::write_f32(&file, logits, &[logits.len() / c.max(1), c])?;
    Ok(file)
}

/// The error for an incomplete set: names the dataset, the model, the missing shards and how to
/// finish or override.
pub fn partial_error(
    model: &str,
    dataset: &str,
    dir: &Path,
    count: usize,
    missing: &[Shard],
) -> Error {
    let list: Vec<String> = missing.iter().map(Shard::to_string).collect();
    let shown = if list.len() > 8 {
        format!("{}, … ({} in all)", list[..8].join(", "), list.len())
    } else {
        list.join(", ")
    };
    Error::invalid(
        format!("logits of {model} on `{dataset}` in {}", dir.display()),
        format!(
            "{} of {count} shards present, missing: {shown}; run `dawin logits --shard I/{count}` \
             for them, or pass --compute-missing-shards to compute them here",
            count - missing.len()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_the_samples_once_in_order() {
        for n in [0usize, 1, 5, 7, 23, 100] {
            for count in 1..=9 {
                let mut next = 0;
                for index in 0..count {
                    let r = Shard::new(index, count).unwrap().range(n);
                    assert_eq!(r.start, next);
                    assert!(r.len() == n / count || r.len() == n / count + 1);
                    next = r.end;
                }
                assert_eq!(next, n);
            }
        }
        // By hand: 10 samples in 3 shards = 0..3, 3..6, 6..10.
        let r: Vec<_> = (0..3)
            .map(|i| Shard::new(i, 3).unwrap().range(10))
            .collect();
        assert_eq!(r, [0..3, 3..6, 6..10]);
    }

    #[test]
    fn shard_arguments_parse_or_are_named() {
        assert_eq!(Shard::parse("2/7").unwrap(), Shard { index: 2, count: 7 });
        for bad in ["3/3", "0/0", "7", "a/3", "-1/3", "1/", "1/2/3"] {
            let e = Shard::parse(bad).unwrap_err().to_string();
            assert!(e.contains("--shard"), "{bad}: {e}");
        }
        assert!(Shard::parse("3/3")
            .unwrap_err()
            .to_string()
            .contains("0 ≤ I < N"));
        let s = Shard::new(11, 12).unwrap();
        assert_eq!(Shard::from_file_name(&s.file_name()), Some(s));
        assert_eq!(Shard::from_file_name("1-of-1.npy.tmp"), None);
        assert_eq!(Shard::from_file_name("3-of-3.npy"), None);
        assert_eq!(Shard::from_file_name("01-of-3.npy"), None);
    }

    #[test]
    fn lookup_assembles_reports_missing_and_refuses_mixed_counts() {
        let dir = tempfile::tempdir().unwrap();
        let (n, c) = (10, 2);
        let z: Vec<f32> = (0..n * c).map(|v| v as f32).collect();
        let put = |count: usize, indices: &[usize]| {
            for &index in indices {
                let s = Shard::new(index, count).unwrap();
                let r = s.range(n);
                store(dir.path(), "k", Some(s), &z[r.start * c..r.end * c], c).unwrap();
            }
        };
        assert!(matches!(
            lookup(dir.path(), "k", n, c).unwrap(),
            Lookup::Missing
        ));
        put(3, &[0, 2]);
        match lookup(dir.path(), "k", n, c).unwrap() {
            Lookup::Partial { count, missing } => {
                assert_eq!((count, missing), (3, vec![Shard::new(1, 3).unwrap()]))
            }
            other => panic!("{other:?}"),
        }
        put(7, &[0, 1]);
        let e = lookup(dir.path(), "k", n, c).unwrap_err().to_string();
        assert!(
            e.contains("mismatched shard counts") && e.contains("2 of 3"),
            "{e}"
        );
        put(7, &[2, 3, 4, 5, 6]);
        match lookup(dir.path(), "k", n, c).unwrap() {
            Lookup::Found { logits, shards } => assert_eq!((logits, shards), (z.clone(), Some(7))),
            other => panic!("{other:?}"),
        }
        // A shard of the wrong shape is named.
        store(dir.path(), "k", Some(Shard::new(3, 7).unwrap()), &z[..4], c).unwrap();
        let e = lookup(dir.path(), "k", n, c).unwrap_err().to_string();
        assert!(e.contains("3-of-7.npy") && e.contains("[2, 2]"), "{e}");
        // The whole file wins.
        store(dir.path(), "k", None, &z, c).unwrap();
        assert!(matches!(
            lookup(dir.path(), "k", n, c).unwrap(),
            Lookup::Found { shards: None, .. }
        ));
    }
}
