//! The paper's dataset conventions on tiny fake folder trees: labels, class subsets, ObjectNet's
//! mapping and border crop, integer folders, bad layouts. Expected labels are written by hand from
//! the published lists (ImageNet-R's `CLASS_SUBLIST` in WiSE-FT, ObjectNet's metadata).

mod common;

use std::path::{Path, PathBuf};

use dawin_vit::benchmarks::{open, Benchmark, Input, OpenOptions};
use dawin_vit::preprocess::preprocess_rgb;
use dawin_vit::preprocess::RgbImage;

/// Writes a `w × h` PNG whose pixel (x, y) is `f(x, y)`.
fn png(path: &Path, w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 3]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    image::RgbImage::from_fn(w, h, |x, y| image::Rgb(f(x, y)))
        .save(path)
        .unwrap();
}

fn gray(v: u8) -> impl Fn(u32, u32) -> [u8; 3] {
    move |x, y| [v, (x * 40) as u8, (y * 40) as u8]
}

/// A tree `root/<class>/<file>` with one 4×4 PNG per listed file.
fn tree(root: &Path, files: &[(&str, &str)]) {
    for (i, (class, file)) in files.iter().enumerate() {
        png(&root.join(class).join(file), 4, 4, gray(i as u8 * 10));
    }
}

fn open_default(
    b: Benchmark,
    root: &Path,
) -> dawin_vit::Result<dawin_vit::benchmarks::BenchmarkData> {
    open(b, root.to_str().unwrap(), 8, &OpenOptions::default())
}

fn names(d: &dawin_vit::benchmarks::BenchmarkData) -> Vec<String> {
    (0..d.dataset.len())
        .map(|i| {
            let n = PathBuf::from(d.dataset.sample_name(i));
            let class = n.parent().unwrap().file_name().unwrap().to_string_lossy();
            format!("{class}/{}", n.file_name().unwrap().to_string_lossy())
        })
        .collect()
}

#[test]
fn names_select_conventions() {
    for (n, b) in [
        ("imagenet", Benchmark::ImageNet),
        ("imagenet-v2", Benchmark::ImageNetV2),
        ("ImageNet-R", Benchmark::ImageNetR),
        ("imagenet-a", Benchmark::ImageNetA),
        ("imagenet-sketch", Benchmark::ImageNetSketch),
        ("objectnet", Benchmark::ObjectNet),
        ("cifar10", Benchmark::Folder),
        ("imagenet_v2", Benchmark::Folder),
    ] {
        assert_eq!(Benchmark::parse(n), b, "{n}");
    }
    for b in Benchmark::NAMED {
        assert!(b.describe().starts_with(&format!("{}: ", b.name())));
        assert_eq!(Benchmark::parse(b.name()), b);
        assert_eq!(b.head_classes(), Some(1000));
    }
    assert!(Benchmark::ObjectNet.describe().contains("2-pixel border"));
}

#[test]
fn imagenet_r_labels_by_its_200_wnids_and_restricts_to_their_imagenet_classes() {
    let dir = tempfile::tempdir().unwrap();
    // ImageNet-R's 1st, 100th and 200th wnids: ImageNet classes 1, 353, 988 (WiSE-FT CLASS_SUBLIST).
    tree(
        dir.path(),
        &[
            ("n01443537", "a.png"),
            ("n01443537", "b.png"),
            ("n02423022", "c.png"),
            ("n12267677", "d.png"),
        ],
    );
    let d = open_default(Benchmark::ImageNetR, dir.path()).unwrap();
    assert_eq!(d.dataset.labels().unwrap(), [0, 0, 99, 199]);
    let sub = d.class_subset().unwrap();
    assert_eq!((sub.len(), sub[0], sub[99], sub[199]), (200, 1, 353, 988));
    assert_eq!(d.mapping.as_ref().unwrap().len(), 200);
    assert!(
        d.notes
            .iter()
            .any(|n| n.contains("197 of ImageNet-R's 200")),
        "{:?}",
        d.notes
    );
    let line = d.describe();
    assert!(
        line.starts_with("imagenet-r: image folder") && line.contains("4 samples"),
        "{line}"
    );
    assert!(line.contains("restricted to the 200"), "{line}");
    d.check_head(1000).unwrap();
    let e = d.check_head(10).unwrap_err().to_string();
    assert!(e.contains("imagenet-r dataset") && e.contains("10"), "{e}");

    // A folder outside the subset, or not a wnid at all: an error naming it.
    tree(dir.path(), &[("n01440764", "e.png"), ("cats", "f.png")]);
    let e = open_default(Benchmark::ImageNetR, dir.path())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`n01440764` (an ImageNet class outside the subset)"),
        "{e}"
    );
    assert!(e.contains("`cats` (not a WordNet id)"), "{e}");
}

#[test]
fn imagenet_and_sketch_label_by_the_1000_wnids() {
    let dir = tempfile::tempdir().unwrap();
    tree(
        dir.path(),
        &[
            ("n15075141", "z.png"),
            ("n01440764", "a.png"),
            ("n01443537", "b.png"),
        ],
    );
    for b in [Benchmark::ImageNet, Benchmark::ImageNetSketch] {
        let d = open_default(b, dir.path()).unwrap();
        assert_eq!(d.dataset.labels().unwrap(), [0, 1, 999]);
        assert!(d.mapping.is_none() && d.class_subset().is_none());
        assert!(
            d.notes[0].contains("997 of ImageNet-1k's 1000"),
            "{:?}",
            d.notes
        );
    }
    tree(dir.path(), &[("n99999999", "q.png")]);
    let e = open_default(Benchmark::ImageNet, dir.path())
        .unwrap_err()
        .to_string();
    assert!(e.contains("`n99999999` (not an ImageNet-1k class)"), "{e}");
}

#[test]
fn integer_folders_are_labelled_by_their_integer_not_their_string_order() {
    let dir = tempfile::tempdir().unwrap();
    tree(
        dir.path(),
        &[
            ("0", "a.png"),
            ("1", "b.png"),
            ("2", "c.png"),
            ("10", "d.png"),
            ("100", "e.png"),
        ],
    );
    let v2 = open_default(Benchmark::ImageNetV2, dir.path()).unwrap();
    assert_eq!(v2.dataset.labels().unwrap(), [0, 1, 2, 10, 100]);
    assert_eq!(
        names(&v2),
        ["0/a.png", "1/b.png", "2/c.png", "10/d.png", "100/e.png"]
    );
    assert!(
        v2.labelling.contains("label = the folder's integer"),
        "{}",
        v2.labelling
    );

    // Any folder whose class folders are all integers: the same, and it says so.
    let plain = open_default(Benchmark::parse("my-set"), dir.path()).unwrap();
    eprintln!("{}", plain.describe());
    assert_eq!(plain.dataset.labels().unwrap(), [0, 1, 2, 10, 100]);
    assert!(
        plain
            .labelling
            .contains("all 5 class folder names are integers"),
        "{}",
        plain.labelling
    );
    plain.check_head(101).unwrap();
    let e = plain.check_head(50).unwrap_err().to_string();
    assert!(
        e.contains("folder dataset") && e.contains("label 100") && e.contains("e.png"),
        "{e}"
    );

    // Forced sorted-name order: "0", "1", "10", "100", "2" → 0 … 4.
    let opts = OpenOptions {
        sorted_labels: true,
        ..Default::default()
    };
    let sorted = open(Benchmark::Folder, dir.path().to_str().unwrap(), 8, &opts).unwrap();
    assert_eq!(sorted.dataset.labels().unwrap(), [0, 1, 2, 3, 4]);
    assert_eq!(names(&sorted)[2], "10/d.png");

    // V2 needs integers 0 … 999.
    tree(dir.path(), &[("1000", "f.png")]);
    let e = open_default(Benchmark::ImageNetV2, dir.path())
        .unwrap_err()
        .to_string();
    assert!(e.contains("`1000`") && e.contains("0 … 999"), "{e}");
}

#[test]
fn mixed_folder_names_get_sorted_labels_and_say_why() {
    let dir = tempfile::tempdir().unwrap();
    tree(
        dir.path(),
        &[("2", "a.png"), ("10", "b.png"), ("cat", "c.png")],
    );
    let d = open_default(Benchmark::Folder, dir.path()).unwrap();
    // Sorted names: "10", "2", "cat".
    assert_eq!(d.dataset.labels().unwrap(), [0, 1, 2]);
    assert_eq!(names(&d), ["10/b.png", "2/a.png", "cat/c.png"]);
    assert!(
        d.labelling.contains("`cat` is not an integer")
            && d.labelling.contains("no integer labelling"),
        "{}",
        d.labelling
    );
    assert_eq!(d.dataset.class_names().unwrap(), ["10", "2", "cat"]);
    let e = open_default(Benchmark::ImageNetV2, dir.path())
        .unwrap_err()
        .to_string();
    assert!(e.contains("`cat`"), "{e}");
    // Two folders naming one integer.
    let dir2 = tempfile::tempdir().unwrap();
    tree(dir2.path(), &[("1", "a.png"), ("01", "b.png")]);
    let e = open_default(Benchmark::Folder, dir2.path())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`01` and `1`") || e.contains("`1` and `01`"),
        "{e}"
    );
}

#[test]
fn files_follow_torchvision_walk_order_and_unsupported_files_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    // os.walk sorted: directory `x` (files bz.png, c.PNG) before `x/b` (a.png).
    tree(
        dir.path(),
        &[("x", "c.PNG"), ("x/b", "a.png"), ("x", "bz.png")],
    );
    std::fs::write(dir.path().join("x/skip.webp"), b"not read").unwrap();
    std::fs::write(dir.path().join("x/notes.txt"), b"ignored").unwrap();
    let d = open_default(Benchmark::Folder, dir.path()).unwrap();
    let files: Vec<String> = (0..3).map(|i| d.dataset.sample_name(i)).collect();
    assert!(
        files[0].ends_with("x/bz.png") && files[1].ends_with("x/c.PNG"),
        "{files:?}"
    );
    assert!(files[2].ends_with("x/b/a.png"), "{files:?}");
    assert!(
        d.notes.iter().any(|n| n.starts_with("1 .bmp/.ppm")),
        "{:?}",
        d.notes
    );
}

#[test]
fn an_empty_class_folder_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path(), &[("n01440764", "a.png")]);
    std::fs::create_dir(dir.path().join("n01443537")).unwrap();
    std::fs::write(dir.path().join("n01443537/x.webp"), b"").unwrap();
    let e = open_default(Benchmark::ImageNet, dir.path())
        .unwrap_err()
        .to_string();
    assert!(e.contains("`n01443537` (only formats"), "{e}");
    assert!(e.contains("hold no .jpg, .jpeg or .png"), "{e}");
}

#[test]
fn objectnet_maps_folders_pools_logits_and_crops_the_border() {
    let dir = tempfile::tempdir().unwrap();
    // An 8×7 image: a 2-pixel red border around a 4×3 pattern.
    let inner = |x: u32, y: u32| [(x * 50) as u8, (y * 70) as u8, 200];
    let framed = move |x: u32, y: u32| {
        if (2..6).contains(&x) && (2..5).contains(&y) {
            inner(x - 2, y - 2)
        } else {
            [255, 0, 0]
        }
    };
    png(&dir.path().join("alarm_clock/img.png"), 8, 7, framed);
    png(&dir.path().join("backpack/img.png"), 6, 6, gray(9));
    png(&dir.path().join("air_freshener/img.png"), 6, 6, gray(3)); // not mapped to ImageNet
    let d = open_default(Benchmark::ObjectNet, dir.path()).unwrap();
    eprintln!("{}\n  notes: {:?}", d.describe(), d.notes);
    assert_eq!(d.dataset.labels().unwrap(), [0, 1]);
    assert_eq!(names(&d), ["alarm_clock/img.png", "backpack/img.png"]);
    assert!(
        d.notes.iter().any(|n| n.contains("1 folder(s) not mapped")),
        "{:?}",
        d.notes
    );
    assert!(
        d.notes.iter().any(|n| n.contains("111 of ObjectNet's 113")),
        "{:?}",
        d.notes
    );
    assert!(
        d.describe().contains("pooled to 113 classes")
            && d.describe().contains("border crop left 2")
    );
    assert!(d.class_subset().is_none());

    // The crop happens before the resize: the sample equals CLIP's transform of the inner 4×3.
    let px: Vec<u8> = (0..3)
        .flat_map(|y| (0..4).flat_map(move |x| inner(x, y)))
        .collect();
    let mut want = vec![0.0; 3 * 8 * 8];
    preprocess_rgb(&RgbImage::new(4, 3, px).unwrap(), 8, &mut want).unwrap();
    let mut got = vec![0.0; 3 * 8 * 8];
    d.dataset.load(0, &mut got).unwrap();
    assert_eq!(got, want);
    // Read as a plain folder, the border stays in.
    let plain = open_default(Benchmark::Folder, dir.path()).unwrap();
    let mut uncropped = vec![0.0; 3 * 8 * 8];
    plain.dataset.load(1, &mut uncropped).unwrap(); // air_freshener, alarm_clock, backpack
    assert_ne!(uncropped, want);

    // Max pooling over the mapped ImageNet classes: alarm clock = max(z[409], z[530]).
    let m = d.mapping.as_ref().unwrap();
    let mut z = vec![0.0f32; 1000];
    z[409] = 1.0;
    z[530] = 3.0;
    z[414] = -2.0; // backpack
    let p = m.pool(&z).unwrap();
    assert_eq!((p.len(), p[0], p[1]), (113, 3.0, -2.0));
    d.check_head(1000).unwrap();
    assert!(d.check_head(1001).unwrap_err().to_string().contains("1000"));
}

#[test]
fn objectnet_without_mapped_folders_says_which_folder_to_pass() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path(), &[("images", "a.png")]);
    let e = open_default(Benchmark::ObjectNet, dir.path())
        .unwrap_err()
        .to_string();
    assert!(e.contains("objectnet-1.0/images"), "{e}");
}

#[test]
fn webdataset_shards_open_under_a_convention() {
    let spec = common::fixture("wds/shard-{000000..000002}.tar");
    let spec = spec.to_str().unwrap();
    let d = open(Benchmark::Folder, spec, 8, &OpenOptions::default()).unwrap();
    assert!(matches!(&d.input, Input::Shards(s) if s.len() == 3));
    assert_eq!(d.dataset.labels().unwrap(), [0, 7, 999, 12, 3, 5, 1]);
    assert!(
        d.describe().contains("3 WebDataset shard(s)"),
        "{}",
        d.describe()
    );
    d.check_head(1000).unwrap();
    let e = d.check_head(500).unwrap_err().to_string();
    assert!(e.contains("label 999") && e.contains("dir/s002"), "{e}");
    // Under imagenet-r, labels are ImageNet-R labels: 999 is outside its 200 classes.
    let r = open(Benchmark::ImageNetR, spec, 8, &OpenOptions::default()).unwrap();
    assert!(
        r.labelling.contains("imagenet-r's (0 … 199"),
        "{}",
        r.labelling
    );
    let e = r.check_head(1000).unwrap_err().to_string();
    assert!(
        e.contains("imagenet-r dataset")
            && e.contains("outside the 200 classes of its class mapping"),
        "{e}"
    );
}
