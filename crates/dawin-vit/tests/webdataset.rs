//! WebDataset shards against webdataset 1.0.2 + PIL (fixtures of `scripts/make_wds_fixtures.py`),
//! and bad shards built here with the `tar` crate.

mod common;

use std::path::{Path, PathBuf};

use common::{fixture, read_raw};
use dawin_vit::preprocess::preprocess_rgb;
use dawin_vit::preprocess::RgbImage;
use dawin_vit::source::Crop;
use dawin_vit::source::ImageSource;
use dawin_vit::webdataset::{
    expand_braces, expand_shard_spec, for_each_sample, split_key, WdsOptions, WebDataset,
};
use dawin_vit::ImageDataset;
use sha2::{Digest, Sha256};

fn wds(name: &str) -> PathBuf {
    fixture(&format!("wds/{name}"))
}

fn pattern() -> String {
    wds("shard-{000000..000002}.tar").display().to_string()
}

struct Expected {
    shard: usize,
    key: String,
    label: i64,
    suffix: String,
    sha256: String,
    pixels: RgbImage,
}

fn expected() -> Vec<Expected> {
    let (raw, _) = read_raw(&wds("expected_pixels.safetensors"));
    std::fs::read_to_string(wds("expected.tsv"))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let (_, shape, bytes) = raw[&format!("pixels_{}", f[0])].clone();
            assert_eq!(shape, [f[7].parse().unwrap(), f[6].parse().unwrap(), 3]);
            Expected {
                shard: f[1].parse().unwrap(),
                key: f[2].to_string(),
                label: f[3].parse().unwrap(),
                suffix: f[4].to_string(),
                sha256: f[5].to_string(),
                pixels: RgbImage::new(shape[1], shape[0], bytes).unwrap(),
            }
        })
        .collect()
}

fn sha(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

#[test]
fn keys_labels_bytes_and_pixels_match_webdataset_and_pil() {
    let want = expected();
    assert_eq!(want.len(), 7);
    let ds = WebDataset::open(&pattern()).unwrap();
    assert_eq!(ds.shards().len(), 3);
    assert_eq!(ds.len(), want.len());
    assert!(ds.skipped().is_empty());
    for (i, (e, w)) in ds.entries().iter().zip(&want).enumerate() {
        assert_eq!(
            (e.shard, e.key.as_str(), e.label, e.image_suffix.as_str()),
            (w.shard, w.key.as_str(), w.label, w.suffix.as_str()),
            "sample {i}"
        );
        // The image member's bytes, bit for bit.
        assert_eq!(sha(&ds.read_image(i).unwrap()), w.sha256, "sample {i}");
        let img = ds.load_rgb(i).unwrap();
        assert_eq!((img.width, img.height), (w.pixels.width, w.pixels.height));
        let max = img
            .pixels
            .iter()
            .zip(&w.pixels.pixels)
            .map(|(a, b)| (*a as i32 - *b as i32).abs())
            .max()
            .unwrap();
        // PNG and JPEG alike: the decoders reproduce Pillow's pixels exactly (JPEG through
        // libjpeg-turbo's decoder with Pillow's settings, issue #17 item 1).
        assert_eq!(
            max, 0,
            "sample {i} ({}.{}): pixels differ from PIL's by up to {max} levels",
            w.key, w.suffix
        );
    }
    assert_eq!(
        ds.labels(),
        want.iter().map(|w| w.label).collect::<Vec<_>>()
    );
    assert!(ds.sample_name(2).ends_with("shard-000000.tar:dir/s002.png"));
}

#[test]
fn iterator_and_streaming_reader_agree_with_the_index() {
    let ds = WebDataset::open(&pattern()).unwrap();
    let it: Vec<_> = ds.iter().map(|s| s.unwrap()).collect();
    assert_eq!(it.len(), ds.len());
    let mut streamed = Vec::new();
    for shard in ds.shards() {
        let f = std::fs::File::open(shard).unwrap();
        let (n, skipped) = for_each_sample(f, shard, false, |s| {
            streamed.push(s);
            Ok(())
        })
        .unwrap();
        assert!(n > 0 && skipped.is_empty());
    }
    assert_eq!(it, streamed);
    for (i, s) in it.iter().enumerate() {
        assert_eq!(s.image, ds.read_image(i).unwrap());
        assert_eq!(s.label, ds.labels()[i]);
    }
}

#[test]
fn shards_load_as_an_image_dataset_in_batches() {
    let ds = WebDataset::open(&pattern()).unwrap();
    let decoded: Vec<RgbImage> = (0..ds.len()).map(|i| ds.load_rgb(i).unwrap()).collect();
    let labels = ds.labels().to_vec();
    let set =
        ImageDataset::from_source(pattern(), 8, Box::new(ds), Some(labels.clone()), None).unwrap();
    let batch = set.load_batch(0..7, false).unwrap();
    assert_eq!(batch.indices, (0..7).collect::<Vec<_>>());
    assert_eq!(batch.labels.as_deref(), Some(&labels[..]));
    for (i, img) in decoded.iter().enumerate() {
        let mut want = vec![0.0; 3 * 8 * 8];
        preprocess_rgb(img, 8, &mut want).unwrap();
        assert_eq!(
            &batch.images[i * 192..(i + 1) * 192],
            &want[..],
            "sample {i}"
        );
    }
}

#[test]
fn a_crop_applies_to_shard_images() {
    let opts = WdsOptions {
        crop: Crop::Border {
            left: 1,
            top: 1,
            right: 1,
            bottom: 1,
        },
        ..Default::default()
    };
    let plain = WebDataset::open(&pattern()).unwrap();
    let cropped = WebDataset::open_with(&pattern(), &opts).unwrap();
    let (a, b) = (plain.load_rgb(0).unwrap(), cropped.load_rgb(0).unwrap());
    assert_eq!((b.width, b.height), (a.width - 2, a.height - 2));
    assert_eq!(
        b.pixels[..3],
        a.pixels[(a.width + 1) * 3..(a.width + 2) * 3]
    );
}

#[test]
fn bad_cls_and_missing_labels_are_errors_naming_shard_and_key() {
    let e = WebDataset::open(&wds("bad_cls.tar").display().to_string())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("bad_cls.tar") && e.contains("`bad1`") && e.contains("`cat`"),
        "{e}"
    );
    let spec = wds("missing_cls.tar").display().to_string();
    let e = WebDataset::open(&spec).unwrap_err().to_string();
    assert!(
        e.contains("missing_cls.tar") && e.contains("`nolabel1`") && e.contains("no .cls"),
        "{e}"
    );
    let opts = WdsOptions {
        skip_incomplete: true,
        ..Default::default()
    };
    let ds = WebDataset::open_with(&spec, &opts).unwrap();
    assert_eq!(ds.len(), 1);
    assert_eq!(ds.skipped().len(), 1);
    assert_eq!(ds.skipped()[0].key, "nolabel1");
    let e = WebDataset::open(&wds("nope-{0..1}.tar").display().to_string())
        .unwrap_err()
        .to_string();
    assert!(e.contains("nope-0.tar"), "{e}");
}

/// Builds a tar of `(name, bytes)` regular files (a `/`-ending name is a directory).
fn tar_of(path: &Path, members: &[(&str, &[u8])]) {
    let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
    for (name, data) in members {
        let mut h = tar::Header::new_gnu();
        if name.ends_with('/') {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_size(0);
        } else {
            h.set_size(data.len() as u64);
        }
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.finish().unwrap();
}

fn png_bytes() -> Vec<u8> {
    std::fs::read(fixture("img_rgb.png")).unwrap()
}

#[test]
fn grouping_rules_of_webdataset() {
    let dir = tempfile::tempdir().unwrap();
    let png = png_bytes();
    let p = dir.path().join("a.tar");
    tar_of(
        &p,
        &[
            ("__meta__", b"x"),
            ("__info__/x.json", b"{}"),
            ("sub/", b""),
            ("k0.PNG", &png),
            ("k0.cls", b"3"),
            ("k0.txt", b"hello"),
            ("README", b"no dot: skipped"),
            ("k1.png", &png),
            ("k1.cls", b"+4\r\n"),
        ],
    );
    let ds = WebDataset::open(&p.display().to_string()).unwrap();
    let keys: Vec<_> = ds.entries().iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["k0", "k1"]);
    assert_eq!(ds.labels(), [3, 4]);
    assert_eq!(ds.entries()[0].image_suffix, "png"); // lower-cased, as webdataset does

    let bad = |members: &[(&str, &[u8])], want: &[&str]| {
        let p = dir.path().join("bad.tar");
        tar_of(&p, members);
        let e = WebDataset::open(&p.display().to_string())
            .unwrap_err()
            .to_string();
        for w in want {
            assert!(e.contains(w), "`{w}` not in: {e}");
        }
    };
    bad(
        &[("k.png", &png), ("k.jpg", &png), ("k.cls", b"1")],
        &["bad.tar", "`k`", "two images"],
    );
    bad(
        &[("k.cls", b"1"), ("k.cls", b"2")],
        &["`k`", "two `.cls` members"],
    );
    bad(&[("k.png", &png), ("k.cls", b"-2")], &["`k`", "negative"]);
    bad(&[("k.png", &png), ("k.cls", b"1.5")], &["`k`", "`1.5`"]);
    bad(&[("k.cls", b"1")], &["`k`", "no image"]);
    // A key split by another key is two samples, as webdataset groups consecutive members only.
    bad(
        &[
            ("k.png", &png),
            ("j.png", &png),
            ("j.cls", b"0"),
            ("k.cls", b"1"),
        ],
        &["`k`", "no .cls label"],
    );
    bad(&[("x.json", b"{}")], &["`x`", "neither"]);
    let empty = dir.path().join("empty.tar");
    tar_of(&empty, &[]);
    let e = WebDataset::open(&empty.display().to_string())
        .unwrap_err()
        .to_string();
    assert!(e.contains("empty.tar") && e.contains("no sample"), "{e}");
}

#[test]
fn a_truncated_shard_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(wds("shard-000000.tar")).unwrap();
    let p = dir.path().join("cut.tar");
    // Into the data of the first image (header 512 bytes): no complete sample.
    std::fs::write(&p, &bytes[..700]).unwrap();
    let e = WebDataset::open(&p.display().to_string())
        .unwrap_err()
        .to_string();
    assert!(e.contains("cut.tar"), "{e}");
    // Indexed, then truncated under the reader: the read fails naming shard and key.
    let full = dir.path().join("full.tar");
    std::fs::write(&full, &bytes).unwrap();
    let ds = WebDataset::open(&full.display().to_string()).unwrap();
    std::fs::write(&full, &bytes[..1024]).unwrap();
    let e = ds.read_image(2).unwrap_err().to_string();
    assert!(e.contains("full.tar") && e.contains("`dir/s002`"), "{e}");
}

#[test]
fn samples_never_span_shards() {
    let dir = tempfile::tempdir().unwrap();
    let png = png_bytes();
    tar_of(&dir.path().join("s0.tar"), &[("k.png", &png)]);
    tar_of(&dir.path().join("s1.tar"), &[("k.cls", b"1")]);
    let spec = dir.path().join("s{0..1}.tar").display().to_string();
    let e = WebDataset::open(&spec).unwrap_err().to_string();
    assert!(e.contains("s0.tar") && e.contains("no .cls"), "{e}");
}

#[test]
fn brace_expansion_and_key_split_match_python() {
    let text = std::fs::read_to_string(wds("python_reference.tsv")).unwrap();
    let (mut braces, mut splits) = (0, 0);
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let f: Vec<&str> = line.split('\t').collect();
        match f[0] {
            "brace" => {
                braces += 1;
                assert_eq!(expand_braces(f[1]).unwrap(), f[2..], "pattern {}", f[1]);
            }
            "split" => {
                splits += 1;
                let want = (f[2] != "-").then(|| (f[2], f[3]));
                assert_eq!(split_key(f[1]), want, "name {}", f[1]);
            }
            other => panic!("bad row kind {other}"),
        }
    }
    assert!(braces >= 10 && splits >= 10);
    let v = expand_shard_spec("a-{0..1}.tar::b.tar").unwrap();
    assert_eq!(
        v,
        ["a-0.tar", "a-1.tar", "b.tar"].map(PathBuf::from).to_vec()
    );
    assert!(expand_shard_spec("a.tar::").is_err());
}
