//! The class lists of the paper's datasets (compiled in from `crates/dawin-vit/data/`, sources in
//! `data/README.md`) and [`ClassMapping`]: how a dataset's classes map onto a head's classes.

use std::sync::OnceLock;

use crate::error::{Error, Result};

const IMAGENET_WNIDS: &str = include_str!("../../data/imagenet_wnids.txt");
const IMAGENET_R_WNIDS: &str = include_str!("../../data/imagenet_r_wnids.txt");
const IMAGENET_A_WNIDS: &str = include_str!("../../data/imagenet_a_wnids.txt");
const OBJECTNET_TSV: &str = include_str!("../../data/objectnet_to_imagenet.tsv");

/// The data rows of a list file: `#` lines and blank lines left out, rows trimmed.
fn rows(text: &'static str) -> impl Iterator<Item = &'static str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

/// A WordNet id as ImageNet spells it: `n` and 8 digits.
pub fn is_wnid(s: &str) -> bool {
    s.len() == 9 && s.starts_with('n') && s[1..].bytes().all(|b| b.is_ascii_digit())
}

fn wnid_list(text: &'static str, n: usize, what: &str) -> Vec<&'static str> {
    let v: Vec<&str> = rows(text).collect();
    // The files are compiled in and checked by the tests: a failure here is a build defect.
    assert!(
        v.len() == n && v.iter().all(|w| is_wnid(w)) && v.windows(2).all(|p| p[0] < p[1]),
        "data/{what}: expected {n} distinct sorted WordNet ids"
    );
    v
}

/// ImageNet-1k's 1000 class WordNet ids in the standard sorted order: label `y` is
/// `imagenet_wnids()[y]`, as torchvision's `ImageFolder` assigns labels over the 1000 class folders
/// (source: hendrycks/imagenet-r `eval.py` `all_wnids`; `data/imagenet_wnids.txt`).
pub fn imagenet_wnids() -> &'static [&'static str] {
    static L: OnceLock<Vec<&'static str>> = OnceLock::new();
    L.get_or_init(|| wnid_list(IMAGENET_WNIDS, 1000, "imagenet_wnids.txt"))
}

/// ImageNet-R's 200 class WordNet ids, sorted (= `ImageFolder` label order over its folders;
/// source: hendrycks/imagenet-r `eval.py` `imagenet_r_wnids`; `data/imagenet_r_wnids.txt`).
pub fn imagenet_r_wnids() -> &'static [&'static str] {
    static L: OnceLock<Vec<&'static str>> = OnceLock::new();
    L.get_or_init(|| wnid_list(IMAGENET_R_WNIDS, 200, "imagenet_r_wnids.txt"))
}

/// ImageNet-A's 200 class WordNet ids, sorted (= `ImageFolder` label order over its folders;
/// source: hendrycks/natural-adv-examples `eval.py` `thousand_k_to_200`;
/// `data/imagenet_a_wnids.txt`).
pub fn imagenet_a_wnids() -> &'static [&'static str] {
    static L: OnceLock<Vec<&'static str>> = OnceLock::new();
    L.get_or_init(|| wnid_list(IMAGENET_A_WNIDS, 200, "imagenet_a_wnids.txt"))
}

/// The ImageNet-1k label (index in [`imagenet_wnids`]) of a WordNet id.
pub fn imagenet_index(wnid: &str) -> Option<usize> {
    imagenet_wnids().binary_search(&wnid).ok()
}

/// The ImageNet-1k labels of a list of WordNet ids that all belong to ImageNet-1k.
fn imagenet_indices(wnids: &[&str]) -> Vec<usize> {
    wnids
        .iter()
        .map(|w| imagenet_index(w).expect("a subset's wnid is an ImageNet wnid (tested)"))
        .collect()
}

/// One of ObjectNet's 113 classes that overlap ImageNet-1k.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectNetClass {
    /// The class's folder under `objectnet-1.0/images/`.
    pub folder: &'static str,
    /// ObjectNet's name of the class.
    pub name: &'static str,
    /// The ImageNet-1k labels it maps to (one to three).
    pub imagenet: Vec<usize>,
}

/// ObjectNet's 113 ImageNet-overlapping classes sorted by folder name; class `k` (the ObjectNet
/// label, the index of the folder among the 113 sorted folder names) is
/// `objectnet_classes()[k]`. Source: WiSE-FT's `objectnet_metadata/` combined as its
/// `objectnet.py` `get_metadata` does (`data/objectnet_to_imagenet.tsv`).
pub fn objectnet_classes() -> &'static [ObjectNetClass] {
    static L: OnceLock<Vec<ObjectNetClass>> = OnceLock::new();
    L.get_or_init(|| {
        let v: Vec<ObjectNetClass> = rows(OBJECTNET_TSV)
            .map(|row| {
                let f: Vec<&str> = row.split('\t').collect();
                assert_eq!(
                    f.len(),
                    3,
                    "data/objectnet_to_imagenet.tsv: bad row `{row}`"
                );
                ObjectNetClass {
                    folder: f[0],
                    name: f[2],
                    imagenet: f[1]
                        .split(' ')
                        .map(|t| t.parse().expect("data/objectnet_to_imagenet.tsv: index"))
                        .collect(),
                }
            })
            .collect();
        assert!(
            v.len() == 113 && v.windows(2).all(|p| p[0].folder < p[1].folder),
            "data/objectnet_to_imagenet.tsv: expected 113 rows sorted by folder"
        );
        v
    })
}

/// How a dataset's classes map onto a classification head's classes: dataset class `k` is the
/// group of head classes `groups()[k]`, and a logit row `z` over the head's classes becomes
/// `z'_k = max_{c ∈ group k} z_c` ([`ClassMapping::pool`]), before anything else (softmax,
/// entropies, λ, argmax). With one head class per group this is exactly the class-subset
/// restriction `z' = z[subset]` (ImageNet-R and -A: [`ClassMapping::subset`]); ObjectNet groups
/// one to three ImageNet classes per class and takes the maximum, as WiSE-FT's `objectnet.py`
/// `project_logits` does (`np.max(logits[:, imagenet_ids], axis=1)`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassMapping {
    groups: Vec<Vec<usize>>,
}

impl ClassMapping {
    /// Dataset class `k` ↦ head classes `groups[k]`. Errors: no group, an empty group, or a head
    /// class listed twice (in one group or two: the pooled argmax would be ambiguous).
    pub fn new(groups: Vec<Vec<usize>>) -> Result<Self> {
        if groups.is_empty() {
            return Err(Error::arg(
                "groups",
                "a class mapping needs at least one class",
            ));
        }
        let mut seen = std::collections::HashMap::new();
        for (k, g) in groups.iter().enumerate() {
            if g.is_empty() {
                return Err(Error::arg(
                    "groups",
                    format!("dataset class {k} maps to no head class"),
                ));
            }
            for &c in g {
                if let Some(j) = seen.insert(c, k) {
                    return Err(Error::arg(
                        "groups",
                        format!("head class {c} is listed for dataset classes {j} and {k}"),
                    ));
                }
            }
        }
        Ok(ClassMapping { groups })
    }

    /// The class-subset restriction: dataset class `y` is head class `subset[y]` alone.
    pub fn from_subset(subset: &[usize]) -> Result<Self> {
        Self::new(subset.iter().map(|&c| vec![c]).collect())
    }

    /// ImageNet-R's 200 classes as ImageNet-1k labels, in ImageNet-R label order (equal to WiSE-FT's
    /// `imagenet_r.py` `CLASS_SUBLIST`).
    pub fn imagenet_r() -> Self {
        Self::from_subset(&imagenet_indices(imagenet_r_wnids())).expect("distinct (tested)")
    }

    /// ImageNet-A's 200 classes as ImageNet-1k labels, in ImageNet-A label order (equal to WiSE-FT's
    /// `imagenet_a.py` `CLASS_SUBLIST`).
    pub fn imagenet_a() -> Self {
        Self::from_subset(&imagenet_indices(imagenet_a_wnids())).expect("distinct (tested)")
    }

    /// ObjectNet's 113 classes, each the maximum over its ImageNet-1k classes
    /// ([`objectnet_classes`]).
    pub fn objectnet() -> Self {
        Self::new(
            objectnet_classes()
                .iter()
                .map(|c| c.imagenet.clone())
                .collect(),
        )
        .expect("distinct (tested)")
    }

    /// Number of dataset classes (the width of a pooled row).
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// Never true: a mapping has at least one class.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// The head classes of each dataset class.
    pub fn groups(&self) -> &[Vec<usize>] {
        &self.groups
    }

    /// The class subset (`subset[y]` = the one head class of dataset class `y`) when every group
    /// is a single head class, for `Dataset::class_subset` of the pipeline; `None` when some group
    /// pools several (ObjectNet).
    pub fn subset(&self) -> Option<Vec<usize>> {
        self.groups
            .iter()
            .map(|g| (g.len() == 1).then(|| g[0]))
            .collect()
    }

    /// The smallest head that holds every mapped class: `1 + max head class`.
    pub fn min_head_classes(&self) -> usize {
        1 + self.groups.iter().flatten().max().copied().unwrap_or(0)
    }

    /// Errors, naming `dataset`, when a mapped head class is `≥ num_classes`.
    pub fn check_head(&self, num_classes: usize, dataset: &str) -> Result<()> {
        let need = self.min_head_classes();
        if need > num_classes {
            return Err(Error::arg(
                "head",
                format!(
                    "dataset `{dataset}` maps its classes to head classes up to {}, but the head has \
                     {num_classes} classes",
                    need - 1
                ),
            ));
        }
        Ok(())
    }

    /// Pools one logit row over the head's classes into one over the dataset's classes:
    /// `out[k] = max_{c ∈ groups[k]} row[c]` (a NaN in a group gives NaN, as numpy's `max`).
    /// Errors when the row is shorter than [`min_head_classes`](Self::min_head_classes).
    pub fn pool(&self, row: &[f32]) -> Result<Vec<f32>> {
        let mut out = vec![0.0; self.len()];
        self.pool_into(row, &mut out)?;
        Ok(out)
    }

    /// [`pool`](Self::pool) into `out` (`len()` values).
    pub fn pool_into(&self, row: &[f32], out: &mut [f32]) -> Result<()> {
        if row.len() < self.min_head_classes() {
            return Err(Error::arg(
                "row",
                format!(
                    "{} logits, but the mapping needs head classes up to {}",
                    row.len(),
                    self.min_head_classes() - 1
                ),
            ));
        }
        if out.len() != self.len() {
            return Err(Error::arg(
                "out",
                format!("{} values for {} dataset classes", out.len(), self.len()),
            ));
        }
        for (o, g) in out.iter_mut().zip(&self.groups) {
            let mut m = f32::NEG_INFINITY;
            for &c in g {
                let v = row[c];
                if v.is_nan() {
                    m = f32::NAN;
                    break;
                }
                if v > m {
                    m = v;
                }
            }
            *o = m;
        }
        Ok(())
    }

    /// Pools every row of `logits` (`[N, num_classes]`) into `[N, len()]`.
    pub fn pool_rows(&self, logits: &[f32], num_classes: usize) -> Result<Vec<f32>> {
        if num_classes == 0 || !logits.len().is_multiple_of(num_classes) {
            return Err(Error::arg(
                "logits",
                format!("{} values are not rows of {num_classes}", logits.len()),
            ));
        }
        let k = self.len();
        let mut out = vec![0.0; logits.len() / num_classes * k];
        for (row, o) in logits
            .chunks_exact(num_classes)
            .zip(out.chunks_exact_mut(k))
        {
            self.pool_into(row, o)?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_parse_and_are_consistent() {
        assert_eq!(imagenet_wnids().len(), 1000);
        assert_eq!(imagenet_wnids()[0], "n01440764"); // tench, label 0
        assert_eq!(imagenet_wnids()[999], "n15075141"); // toilet tissue, label 999
        assert_eq!(imagenet_index("n01443537"), Some(1));
        assert_eq!(imagenet_index("n99999999"), None);
        assert!(imagenet_r_wnids()
            .iter()
            .all(|w| imagenet_index(w).is_some()));
        assert!(imagenet_a_wnids()
            .iter()
            .all(|w| imagenet_index(w).is_some()));
        assert!(!is_wnid("n0144076") && !is_wnid("x01440764") && is_wnid("n01440764"));
    }

    /// ImageNet-R's and -A's subsets against WiSE-FT's `CLASS_SUBLIST` (src/datasets/imagenet_r.py,
    /// imagenet_a.py at 58b7a4b): first and last entries copied by hand, and the sums of all 200
    /// computed from those lists by `scripts/make_imagenet_classes.py`.
    #[test]
    fn subsets_match_wise_ft() {
        let r = ClassMapping::imagenet_r().subset().unwrap();
        assert_eq!(r[..8], [1, 2, 4, 6, 8, 9, 11, 13]);
        assert_eq!(r[196..], [980, 981, 983, 988]);
        assert_eq!(r.iter().sum::<usize>(), 86135);
        let a = ClassMapping::imagenet_a().subset().unwrap();
        assert_eq!(a[..8], [6, 11, 13, 15, 17, 22, 23, 27]);
        assert_eq!(a[197..], [986, 987, 988]);
        assert_eq!(a.iter().sum::<usize>(), 102178);
        assert_eq!((r.len(), a.len()), (200, 200));
    }

    /// ObjectNet rows checked by hand against WiSE-FT's metadata: "Alarm clock" → "analog clock;
    /// digital clock" = ImageNet 409 (n02708093 analog clock), 530 (n03196217 digital clock).
    #[test]
    fn objectnet_mapping_by_hand() {
        let c = objectnet_classes();
        assert_eq!(c.len(), 113);
        assert_eq!(c[0].folder, "alarm_clock");
        assert_eq!(c[0].name, "Alarm clock");
        assert_eq!(c[0].imagenet, [409, 530]);
        assert_eq!(imagenet_wnids()[409], "n02708093");
        assert_eq!(imagenet_wnids()[530], "n03196217");
        let m = ClassMapping::objectnet();
        assert_eq!(m.groups().iter().map(Vec::len).sum::<usize>(), 125);
        assert!(m.subset().is_none());
        assert!(m.min_head_classes() <= 1000);
    }

    #[test]
    fn pooling_by_hand() {
        // Head of 6 classes; dataset class 0 = {4, 1}, class 1 = {0}, class 2 = {2, 3, 5}.
        let m = ClassMapping::new(vec![vec![4, 1], vec![0], vec![2, 3, 5]]).unwrap();
        let z = [
            0.5, -1.0, 2.0, 3.0, -2.0, 1.0, /* row 2 */ 9.0, 8.0, 7.0, 6.0, 5.0, 4.0,
        ];
        assert_eq!(m.pool(&z[..6]).unwrap(), [-1.0, 0.5, 3.0]);
        assert_eq!(m.pool_rows(&z, 6).unwrap(), [-1.0, 0.5, 3.0, 8.0, 9.0, 7.0]);
        assert!(m.pool(&[f32::NAN, 0., 0., 0., 0., 0.]).unwrap()[1].is_nan());
        assert_eq!(m.min_head_classes(), 6);
        assert!(m.pool(&z[..5]).is_err());
        let e = m.check_head(5, "toy").unwrap_err().to_string();
        assert!(e.contains("`toy`") && e.contains("5 classes"), "{e}");
        // Singleton groups are exactly the subset restriction z[subset].
        let s = ClassMapping::from_subset(&[3, 0, 5]).unwrap();
        assert_eq!(s.subset().unwrap(), [3, 0, 5]);
        assert_eq!(s.pool(&z[..6]).unwrap(), [z[3], z[0], z[5]]);
        assert!(ClassMapping::new(vec![vec![1], vec![2, 1]]).is_err());
        assert!(ClassMapping::new(vec![vec![]]).is_err());
        assert!(ClassMapping::new(vec![]).is_err());
    }
}
