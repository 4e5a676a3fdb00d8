//! The paper's evaluation datasets and their conventions: layout, labelling, class subset or
//! mapping, image crop — chosen by the dataset's NAME ([`Benchmark::parse`]) and applied by
//! [`open`], which says what it applied ([`BenchmarkData::describe`]).
//!
//! | name | layout | label | head classes | crop |
//! |---|---|---|---|---|
//! | `imagenet`, `imagenet-sketch` | 1000 WordNet-id folders | index of the wnid in ImageNet's sorted list | all 1000 | none |
//! | `imagenet-v2` | folders `0` … `999` | the folder's integer | all 1000 | none |
//! | `imagenet-r`, `imagenet-a` | 200 wnid folders | index in the sorted 200-wnid list | the 200 (class subset) | none |
//! | `objectnet` | the 113 ImageNet-mapped of 313 folders | index among the 113 sorted folders | max over 1–3 ImageNet classes per class | 2 px border |
//! | any other | class folders | the folder's integer if all are integers, else sorted order | the head's | none |
//!
//! Sources: the class lists are in `crates/dawin-vit/data/` (see its README); the rules are those
//! of WiSE-FT's `src/datasets/` (mlfoundations/wise-ft), which DaWin's evaluation builds on, and of
//! torchvision's `ImageFolder`. A dataset may also be a safetensors file or WebDataset `.tar`
//! shards ([`crate::webdataset`]): their labels are taken as given (in the dataset's own label
//! space, e.g. 0 … 199 for `imagenet-r`), and the mapping and crop still apply.
//!
//! ```
//! use dawin_vit::benchmarks::{open, Benchmark, OpenOptions};
//!
//! // ImageNet-V2's layout: folders named by the label's integer.
//! let dir = tempfile::tempdir()?;
//! for class in ["0", "2", "10"] {
//!     std::fs::create_dir(dir.path().join(class))?;
//!     image::RgbImage::new(4, 4).save(dir.path().join(class).join("x.png")).unwrap();
//! }
//! let b = Benchmark::parse("imagenet-v2");
//! let data = open(b, dir.path().to_str().unwrap(), 224, &OpenOptions::default())?;
//! assert_eq!(data.dataset.labels().unwrap(), [0, 2, 10]); // not "0" < "10" < "2"
//! println!("{}", data.describe()); // what was applied, one line
//! data.check_head(1000)?;          // an ImageNet-1k head
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod classes;
pub mod folder;

use std::path::{Path, PathBuf};

pub use classes::{
    imagenet_a_wnids, imagenet_index, imagenet_r_wnids, imagenet_wnids, objectnet_classes,
    ClassMapping, ObjectNetClass,
};
pub use folder::{
    label_folders, scan_class_folders, FolderLabels, FolderRule, FolderScan, WnidList,
};

use crate::dataset::ImageDataset;
use crate::error::{Error, Result};
use crate::source::{Crop, FileSource};
use crate::webdataset::{expand_shard_spec, WdsOptions, WebDataset};

/// A dataset convention, chosen by the dataset's name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Benchmark {
    /// ImageNet-1k (validation): 1000 WordNet-id folders.
    ImageNet,
    /// ImageNet-V2: folders `0` … `999`, label = the integer.
    ImageNetV2,
    /// ImageNet-R: 200 wnid folders, logits restricted to those 200 ImageNet classes.
    ImageNetR,
    /// ImageNet-A: 200 wnid folders, logits restricted to those 200 ImageNet classes.
    ImageNetA,
    /// ImageNet-Sketch: 1000 wnid folders, like ImageNet.
    ImageNetSketch,
    /// ObjectNet: 113 ImageNet-mapped classes, max-pooled logits, 2-pixel border crop.
    ObjectNet,
    /// Any other name: a plain image folder (integer labels when all folder names are integers).
    Folder,
}

impl Benchmark {
    /// The six named conventions, in the paper's order.
    pub const NAMED: [Benchmark; 6] = [
        Benchmark::ImageNet,
        Benchmark::ImageNetV2,
        Benchmark::ImageNetR,
        Benchmark::ImageNetSketch,
        Benchmark::ObjectNet,
        Benchmark::ImageNetA,
    ];

    /// The convention of a dataset name: `imagenet`, `imagenet-v2`, `imagenet-r`, `imagenet-a`,
    /// `imagenet-sketch`, `objectnet` (ASCII case ignored); any other name is [`Benchmark::Folder`].
    pub fn parse(name: &str) -> Benchmark {
        Self::NAMED
            .into_iter()
            .find(|b| b.name().eq_ignore_ascii_case(name))
            .unwrap_or(Benchmark::Folder)
    }

    /// The name that selects the convention (`folder` for a plain folder).
    pub fn name(self) -> &'static str {
        match self {
            Benchmark::ImageNet => "imagenet",
            Benchmark::ImageNetV2 => "imagenet-v2",
            Benchmark::ImageNetR => "imagenet-r",
            Benchmark::ImageNetA => "imagenet-a",
            Benchmark::ImageNetSketch => "imagenet-sketch",
            Benchmark::ObjectNet => "objectnet",
            Benchmark::Folder => "folder",
        }
    }

    /// The convention's rule, one line (before any data is read; [`BenchmarkData::describe`]
    /// says what was applied to a dataset).
    pub fn describe(self) -> &'static str {
        match self {
            Benchmark::ImageNet => {
                "imagenet: 1000 WordNet-id class folders, label = index of the wnid in ImageNet's \
                 sorted list; the head's 1000 classes; no crop"
            }
            Benchmark::ImageNetSketch => {
                "imagenet-sketch: 1000 WordNet-id class folders like ImageNet, label = index of the \
                 wnid in ImageNet's sorted list; the head's 1000 classes; no crop"
            }
            Benchmark::ImageNetV2 => {
                "imagenet-v2: class folders 0 … 999, label = the folder's integer; the head's 1000 \
                 classes; no crop"
            }
            Benchmark::ImageNetR => {
                "imagenet-r: 200 WordNet-id class folders, label = index in ImageNet-R's sorted \
                 200-wnid list; logits restricted to those 200 ImageNet classes; no crop"
            }
            Benchmark::ImageNetA => {
                "imagenet-a: 200 WordNet-id class folders, label = index in ImageNet-A's sorted \
                 200-wnid list; logits restricted to those 200 ImageNet classes; no crop"
            }
            Benchmark::ObjectNet => {
                "objectnet: the 113 class folders mapped to ImageNet (others left out), label = \
                 index among their sorted names; logit of a class = max over its 1-3 ImageNet \
                 classes; 2-pixel border cropped before the resize"
            }
            Benchmark::Folder => {
                "image folder: class folders labelled by their integer when all names are \
                 integers, else in sorted name order (torchvision ImageFolder); the head's classes; \
                 no crop"
            }
        }
    }

    /// How the class folders are labelled.
    pub fn folder_rule(self, sorted_labels: bool) -> FolderRule {
        match self {
            Benchmark::ImageNet | Benchmark::ImageNetSketch => {
                FolderRule::Wnids(WnidList::ImageNet)
            }
            Benchmark::ImageNetR => FolderRule::Wnids(WnidList::ImageNetR),
            Benchmark::ImageNetA => FolderRule::Wnids(WnidList::ImageNetA),
            Benchmark::ImageNetV2 => FolderRule::IntegerRange(1000),
            Benchmark::ObjectNet => FolderRule::ObjectNet,
            Benchmark::Folder => FolderRule::Plain { sorted_labels },
        }
    }

    /// The dataset-class → head-class mapping: the 200-class subsets of ImageNet-R and -A,
    /// ObjectNet's max-pooled groups; `None`: labels are head classes.
    pub fn class_mapping(self) -> Option<ClassMapping> {
        match self {
            Benchmark::ImageNetR => Some(ClassMapping::imagenet_r()),
            Benchmark::ImageNetA => Some(ClassMapping::imagenet_a()),
            Benchmark::ObjectNet => Some(ClassMapping::objectnet()),
            _ => None,
        }
    }

    /// The image crop before CLIP's resize ([`Crop::OBJECTNET`] for ObjectNet).
    pub fn crop(self) -> Crop {
        match self {
            Benchmark::ObjectNet => Crop::OBJECTNET,
            _ => Crop::None,
        }
    }

    /// The number of classes the head must have: 1000 (an ImageNet-1k head) for the six named
    /// conventions, `None` for a plain folder.
    pub fn head_classes(self) -> Option<usize> {
        (self != Benchmark::Folder).then_some(1000)
    }

    /// The number of dataset classes labels range over, when fixed (1000, 200, 113).
    pub fn dataset_classes(self) -> Option<usize> {
        match self {
            Benchmark::Folder => None,
            Benchmark::ImageNetR | Benchmark::ImageNetA => Some(200),
            Benchmark::ObjectNet => Some(113),
            _ => Some(1000),
        }
    }
}

/// Options of [`open`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpenOptions {
    /// Plain folders: label by torchvision `ImageFolder`'s sorted-name order even when every
    /// class folder name is an integer.
    pub sorted_labels: bool,
    /// WebDataset: skip (and count) samples missing their image or `.cls` instead of erroring.
    pub skip_incomplete: bool,
}

/// What a dataset was read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// An image-folder tree.
    Folder(PathBuf),
    /// WebDataset `.tar` shards, in order.
    Shards(Vec<PathBuf>),
    /// A safetensors file (`images`, `labels`).
    Safetensors(PathBuf),
}

/// A dataset opened under a convention: the samples ([`ImageDataset`], preprocessed on load),
/// the class mapping to apply to the head's logits, and what was applied.
#[derive(Debug)]
pub struct BenchmarkData {
    /// The convention.
    pub benchmark: Benchmark,
    /// What was read.
    pub input: Input,
    /// The samples and labels (in the dataset's label space), loaded by index.
    pub dataset: ImageDataset,
    /// Dataset class → head classes; `None`: labels are head classes.
    pub mapping: Option<ClassMapping>,
    /// The crop applied to every image before the resize.
    pub crop: Crop,
    /// The labelling rule applied, one line.
    pub labelling: String,
    /// Warnings: missing classes, folders or samples left out, files not read. One line each.
    pub notes: Vec<String>,
}

impl BenchmarkData {
    /// One line saying what was applied: convention, input, sample count, labelling, head
    /// mapping, crop (for the CLI to print and report.json to record; [`notes`](Self::notes)
    /// separately).
    pub fn describe(&self) -> String {
        let input = match &self.input {
            Input::Folder(p) => format!("image folder {}", p.display()),
            Input::Shards(s) => format!("{} WebDataset shard(s) {}…", s.len(), s[0].display()),
            Input::Safetensors(p) => format!("safetensors file {}", p.display()),
        };
        let mapping = match &self.mapping {
            None => "logits: the head's classes as they are".to_string(),
            Some(m) if m.subset().is_some() => format!(
                "logits: restricted to the {} head classes of the {} subset (class subset)",
                m.len(),
                self.benchmark.name()
            ),
            Some(m) => format!(
                "logits: pooled to {} classes, each the maximum over its mapped head classes ({} in \
                 all)",
                m.len(),
                m.groups().iter().map(Vec::len).sum::<usize>()
            ),
        };
        format!(
            "{}: {input}, {} samples; {}; {mapping}; crop: {}",
            self.benchmark.name(),
            self.dataset.len(),
            self.labelling,
            self.crop.describe()
        )
    }

    /// The class subset for the pipeline's `Dataset::class_subset` when the mapping is a plain
    /// restriction (ImageNet-R, -A); `None` for no mapping or a pooling one (check
    /// [`mapping`](Self::mapping)).
    pub fn class_subset(&self) -> Option<Vec<usize>> {
        self.mapping.as_ref().and_then(ClassMapping::subset)
    }

    /// A string that changes whenever the convention changes what a sample's input or logits
    /// are (convention, crop, mapping): to hash into the dataset's cache fingerprint along with
    /// the files, since the same folder read as `objectnet` and as a plain folder gives other
    /// pixels.
    pub fn fingerprint_tag(&self) -> String {
        format!(
            "dawin-benchmark-v1|{}|{:?}|{:?}",
            self.benchmark.name(),
            self.crop,
            self.mapping.as_ref().map(ClassMapping::groups)
        )
    }

    /// Checks the labels against a head of `num_classes` classes. Errors, naming the dataset:
    /// a named convention with a head that is not ImageNet's 1000 classes, a mapped head class
    /// `≥ num_classes`, a label `≥` the number of dataset classes (naming its sample).
    pub fn check_head(&self, num_classes: usize) -> Result<()> {
        let name = self.benchmark.name();
        let what = format!("{name} dataset {}", self.dataset.path().display());
        if let Some(need) = self.benchmark.head_classes() {
            if num_classes != need {
                return Err(Error::arg(
                    "head",
                    format!(
                        "{what}: the {name} convention needs an ImageNet-1k head of {need} classes, \
                         the head has {num_classes}"
                    ),
                ));
            }
        }
        let classes = match &self.mapping {
            Some(m) => {
                m.check_head(num_classes, &what)?;
                m.len()
            }
            None => num_classes,
        };
        if let Some(labels) = self.dataset.labels() {
            if let Some(i) = labels.iter().position(|&y| y < 0 || y >= classes as i64) {
                return Err(Error::arg(
                    "labels",
                    format!(
                        "{what}: label {} of sample {} is outside the {classes} classes {}",
                        labels[i],
                        self.dataset.sample_name(i),
                        if self.mapping.is_some() {
                            "of its class mapping"
                        } else {
                            "of the head"
                        }
                    ),
                ));
            }
        }
        Ok(())
    }
}

fn is_shard_spec(spec: &str) -> bool {
    expand_shard_spec(spec)
        .is_ok_and(|v| v.iter().all(|p| p.extension().is_some_and(|e| e == "tar")))
}

/// Opens the dataset `source` under `benchmark` for a model with input side `image_size`:
/// a directory is an image folder labelled by the convention ([`Benchmark::folder_rule`]), a
/// `.tar` path, list (`a.tar::b.tar`) or brace pattern (`shard-{000000..000009}.tar`) is a
/// WebDataset, any other file a safetensors dataset. Errors name the path and what is wrong
/// (see [`scan_class_folders`], [`label_folders`], [`WebDataset::open_with`]).
pub fn open(
    benchmark: Benchmark,
    source: &str,
    image_size: usize,
    opts: &OpenOptions,
) -> Result<BenchmarkData> {
    let path = Path::new(source);
    let crop = benchmark.crop();
    let mapping = benchmark.class_mapping();
    if path.is_dir() {
        let scan = scan_class_folders(path)?;
        let names: Vec<String> = scan.classes.iter().map(|c| c.name.clone()).collect();
        let fl = label_folders(path, &names, benchmark.folder_rule(opts.sorted_labels))?;
        let mut order: Vec<(i64, usize)> = fl
            .labels
            .iter()
            .enumerate()
            .filter_map(|(i, l)| l.map(|l| (l, i)))
            .collect();
        order.sort();
        let (mut files, mut labels) = (Vec::new(), Vec::new());
        for &(label, i) in &order {
            let f = &scan.classes[i].files;
            labels.extend(std::iter::repeat_n(label, f.len()));
            files.extend(f.iter().cloned());
        }
        let mut notes = fl.notes;
        let left_out: usize = fl
            .labels
            .iter()
            .zip(&scan.classes)
            .filter(|(l, _)| l.is_none())
            .map(|(_, c)| c.files.len())
            .sum();
        if left_out > 0 {
            notes.push(format!("{left_out} image(s) in folders left out"));
        }
        if scan.unsupported > 0 {
            notes.push(format!(
                "{} .bmp/.ppm/.pgm/.tif/.tiff/.webp files not read (only JPEG and PNG are), though \
                 torchvision's ImageFolder would read them",
                scan.unsupported
            ));
        }
        // Class names indexed by label where the labels are 0..K-1 over the folders.
        let class_names =
            (!fl.integer && order.len() == names.len() && benchmark == Benchmark::Folder)
                .then(|| names.clone());
        let dataset = ImageDataset::from_source(
            path,
            image_size,
            Box::new(FileSource::new(files, crop)),
            Some(labels),
            class_names,
        )?;
        return Ok(BenchmarkData {
            benchmark,
            input: Input::Folder(path.to_path_buf()),
            dataset,
            mapping,
            crop,
            labelling: fl.line,
            notes,
        });
    }
    if (!path.is_file() && is_shard_spec(source)) || path.extension().is_some_and(|e| e == "tar") {
        let wds = WebDataset::open_with(
            source,
            &WdsOptions {
                skip_incomplete: opts.skip_incomplete,
                crop,
            },
        )?;
        let mut notes = Vec::new();
        if !wds.skipped().is_empty() {
            notes.push(format!(
                "{} incomplete sample(s) skipped, first: {}",
                wds.skipped().len(),
                wds.skipped()[0]
            ));
        }
        let shards = wds.shards().to_vec();
        let labels = wds.labels().to_vec();
        let dataset =
            ImageDataset::from_source(source, image_size, Box::new(wds), Some(labels), None)?;
        return Ok(BenchmarkData {
            benchmark,
            input: Input::Shards(shards),
            dataset,
            mapping,
            crop,
            labelling: format!(
                "labels: each sample's .cls integer, taken in the {} label space",
                dataset_label_space(benchmark)
            ),
            notes,
        });
    }
    let dataset = ImageDataset::open(path, image_size)?;
    let mut notes = Vec::new();
    if crop != Crop::None {
        notes.push(format!(
            "{}: images used as stored in the safetensors file, the convention's crop ({}) is not \
             applied; store the original images in a folder to have it applied",
            path.display(),
            crop.describe()
        ));
    }
    Ok(BenchmarkData {
        benchmark,
        input: Input::Safetensors(path.to_path_buf()),
        dataset,
        mapping,
        crop: Crop::None,
        labelling: format!(
            "labels: the file's `labels` tensor, taken in the {} label space",
            dataset_label_space(benchmark)
        ),
        notes,
    })
}

fn dataset_label_space(b: Benchmark) -> String {
    match b {
        Benchmark::Folder => "head's".to_string(),
        Benchmark::ImageNetR | Benchmark::ImageNetA => {
            format!("{}'s (0 … 199, the sorted 200-wnid order)", b.name())
        }
        Benchmark::ObjectNet => "objectnet's (0 … 112, the sorted 113 folders)".to_string(),
        _ => "ImageNet-1k's (0 … 999)".to_string(),
    }
}
