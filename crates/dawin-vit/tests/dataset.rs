//! Datasets: image-folder trees and safetensors files, bad files, and evaluation over them.

mod common;

use std::collections::HashMap;
use std::path::Path;

use common::{fixture, tensor_map};
use dawin_vit::preprocess::{load_image, preprocess_rgb, RgbImage};
use dawin_vit::{ClipClassifier, ImageDataset, LoadOptions};
use safetensors::tensor::TensorView;
use safetensors::Dtype;

fn copy(name: &str, to: &Path) {
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::copy(fixture(name), to).unwrap();
}

/// Classes `b_cat` (2 images) and `a_dog` (3, one grayscale, one CMYK), a text file to ignore.
fn folder(dir: &Path) {
    copy("img_rgb.png", &dir.join("b_cat/1.png"));
    copy("img_rgb.jpg", &dir.join("b_cat/0.JPG"));
    copy("img_gray.png", &dir.join("a_dog/x.png"));
    copy("img_cmyk.jpg", &dir.join("a_dog/y.jpeg"));
    copy("img_rgb.png", &dir.join("a_dog/z/deeper.png"));
    std::fs::write(dir.join("b_cat/readme.txt"), "not an image").unwrap();
}

fn model() -> ClipClassifier {
    ClipClassifier::from_source(
        &tensor_map(&fixture("tiny_hf.safetensors")),
        None,
        &LoadOptions::default(),
    )
    .unwrap()
}

#[test]
fn image_folder_sorts_classes_and_files() {
    let dir = tempfile::tempdir().unwrap();
    folder(dir.path());
    let ds = ImageDataset::open(dir.path(), 32).unwrap();
    assert_eq!(ds.len(), 5);
    assert_eq!(ds.class_names().unwrap(), ["a_dog", "b_cat"]);
    assert_eq!(ds.labels().unwrap(), [0, 0, 0, 1, 1]);
    assert!(ds.sample_name(0).ends_with("a_dog/x.png"));
    assert!(ds.sample_name(3).ends_with("b_cat/0.JPG"));
    let batch = ds.load_batch(0..5, false).unwrap();
    assert_eq!(batch.indices, [0, 1, 2, 3, 4]);
    assert_eq!(batch.images.len(), 5 * 3 * 32 * 32);
    // The grayscale sample: three equal channels up to the per-channel normalisation.
    let g = &batch.images[..3 * 32 * 32];
    let px = |c: usize| {
        g[c * 32 * 32 + 100] * dawin_vit::preprocess::CLIP_STD[c]
            + dawin_vit::preprocess::CLIP_MEAN[c]
    };
    assert!((px(0) - px(1)).abs() < 1e-6 && (px(1) - px(2)).abs() < 1e-6);
    // Same values as preprocessing the file directly.
    let direct =
        dawin_vit::preprocess::preprocess_file(dir.path().join("b_cat/1.png"), 32).unwrap();
    assert_eq!(&batch.images[4 * 3 * 32 * 32..], &direct[..]);
}

#[test]
fn a_corrupt_file_is_named_or_skipped() {
    let dir = tempfile::tempdir().unwrap();
    folder(dir.path());
    let bad = dir.path().join("b_cat/broken.jpg");
    let mut bytes = std::fs::read(fixture("img_rgb.jpg")).unwrap();
    bytes.truncate(200);
    std::fs::write(&bad, &bytes).unwrap();
    std::fs::write(dir.path().join("a_dog/empty.png"), b"").unwrap();
    let ds = ImageDataset::open(dir.path(), 32).unwrap();
    assert_eq!(ds.len(), 7);
    let err = ds.load_batch(0..7, false).unwrap_err().to_string();
    assert!(
        err.contains("empty.png") || err.contains("broken.jpg"),
        "{err}"
    );
    let err = ds
        .load(6, &mut vec![0.0; 3 * 32 * 32])
        .unwrap_err()
        .to_string();
    assert!(err.contains("broken.jpg"), "{err}");

    let batch = ds.load_batch(0..7, true).unwrap();
    assert_eq!(batch.len(), 5);
    let names: Vec<_> = batch.skipped.iter().map(|s| s.name.clone()).collect();
    assert!(
        names[0].ends_with("a_dog/empty.png") && names[1].ends_with("b_cat/broken.jpg"),
        "{names:?}"
    );
    assert_eq!(batch.labels.as_ref().unwrap(), &[0, 0, 0, 1, 1]);

    // The evaluation goes on without them and reports them.
    let m = model();
    let err = m
        .predict_dataset(&ds, 3, false, false)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("empty.png") || err.contains("broken.jpg"),
        "{err}"
    );
    let p = m.predict_dataset(&ds, 3, true, true).unwrap();
    assert_eq!(p.indices.len(), 5);
    assert_eq!(p.skipped.len(), 2);
    assert_eq!(p.logits.len(), 5 * 10);
    assert_eq!(p.features.as_ref().unwrap().len(), 5 * 32);
    // Accuracy by hand from the logits.
    let labels = p.labels.clone().unwrap();
    let mut correct = 0;
    for (i, row) in p.logits.chunks(10).enumerate() {
        let best = (0..10).fold(0, |b, c| if row[c] > row[b] { c } else { b });
        correct += (best as i64 == labels[i]) as usize;
    }
    assert_eq!(p.accuracy().unwrap(), correct as f64 / 5.0);
}

#[test]
fn empty_folders_and_wrong_paths_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let err = ImageDataset::open(dir.path(), 32).unwrap_err().to_string();
    assert!(err.contains("no class sub-folder"), "{err}");
    std::fs::create_dir(dir.path().join("cls")).unwrap();
    std::fs::write(dir.path().join("cls/a.txt"), "x").unwrap();
    let err = ImageDataset::open(dir.path(), 32).unwrap_err().to_string();
    assert!(err.contains("no .jpg"), "{err}");
    let err = ImageDataset::open(dir.path().join("nope.safetensors"), 32)
        .unwrap_err()
        .to_string();
    assert!(err.contains("nope.safetensors"), "{err}");
}

fn write_st(path: &Path, tensors: Vec<(&str, Dtype, Vec<usize>, Vec<u8>)>) {
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(n, d, s, b)| (n.to_string(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    safetensors::serialize_to_file(views, None::<HashMap<String, String>>, path).unwrap();
}

#[test]
fn safetensors_u8_images_are_preprocessed_like_files() {
    let dir = tempfile::tempdir().unwrap();
    let img = load_image(fixture("img_rgb.png")).unwrap(); // 45 × 37
    let mut flipped = img.pixels.clone();
    flipped.reverse();
    let pixels = [img.pixels.clone(), flipped.clone()].concat();
    let labels: Vec<u8> = [3i64, 7].iter().flat_map(|l| l.to_le_bytes()).collect();
    let path = dir.path().join("ds.safetensors");
    write_st(
        &path,
        vec![
            ("images", Dtype::U8, vec![2, 37, 45, 3], pixels),
            ("labels", Dtype::I64, vec![2], labels),
        ],
    );
    let ds = ImageDataset::open(&path, 32).unwrap();
    assert_eq!((ds.len(), ds.labels().unwrap()), (2, &[3i64, 7][..]));
    let b = ds.load_batch(0..2, false).unwrap();
    let mut want = vec![0.0; 3 * 32 * 32];
    preprocess_rgb(&RgbImage::new(45, 37, flipped).unwrap(), 32, &mut want).unwrap();
    assert_eq!(&b.images[3 * 32 * 32..], &want[..]);
    assert_eq!(
        &b.images[..3 * 32 * 32],
        &dawin_vit::preprocess::preprocess_file(fixture("img_rgb.png"), 32).unwrap()[..]
    );
    assert!(ds.sample_name(1).ends_with("ds.safetensors:images[1]"));
}

#[test]
fn safetensors_f32_images_are_used_as_is_and_match_the_model_fixture() {
    // The parity inputs as an f32 dataset without labels: predictions equal the fixture logits.
    let (raw, _) = common::read_raw(&fixture("tiny_io.safetensors"));
    let (dt, shape, bytes) = raw["inputs"].clone();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pre.safetensors");
    write_st(&path, vec![("images", dt, shape, bytes)]);
    let ds = ImageDataset::open(&path, 32).unwrap();
    assert!(ds.labels().is_none());
    let p = model().predict_dataset(&ds, 3, false, false).unwrap();
    assert!(p.accuracy().is_none());
    let want = common::f32s(&raw, "logits").1;
    assert!(common::rel_err(&p.logits, &want) < 1e-4);
}

#[test]
fn bad_safetensors_datasets_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.safetensors");
    // Preprocessed at the wrong size.
    write_st(
        &p,
        vec![(
            "images",
            Dtype::F32,
            vec![1, 3, 64, 64],
            vec![0; 3 * 64 * 64 * 4],
        )],
    );
    let err = ImageDataset::open(&p, 32).unwrap_err().to_string();
    assert!(
        err.contains("a.safetensors") && err.contains("3×32×32") && err.contains("64, 64"),
        "{err}"
    );
    // Channels-first u8 (not [N, H, W, 3]).
    write_st(
        &p,
        vec![("images", Dtype::U8, vec![1, 3, 8, 8], vec![0; 192])],
    );
    assert!(ImageDataset::open(&p, 32)
        .unwrap_err()
        .to_string()
        .contains("u8 [N, H, W, 3]"));
    // Labels of the wrong length or type.
    write_st(
        &p,
        vec![
            ("images", Dtype::U8, vec![2, 4, 4, 3], vec![0; 96]),
            ("labels", Dtype::I64, vec![3], vec![0; 24]),
        ],
    );
    assert!(ImageDataset::open(&p, 32)
        .unwrap_err()
        .to_string()
        .contains("`labels` has shape [3]"));
    write_st(
        &p,
        vec![
            ("images", Dtype::U8, vec![2, 4, 4, 3], vec![0; 96]),
            ("labels", Dtype::F32, vec![2], vec![0; 8]),
        ],
    );
    assert!(ImageDataset::open(&p, 32)
        .unwrap_err()
        .to_string()
        .contains("expected i64"));
    // Empty, and no `images` at all.
    write_st(&p, vec![("images", Dtype::U8, vec![0, 4, 4, 3], vec![])]);
    assert!(ImageDataset::open(&p, 32)
        .unwrap_err()
        .to_string()
        .contains("N = 0"));
    write_st(
        &p,
        vec![("pixels", Dtype::U8, vec![1, 4, 4, 3], vec![0; 48])],
    );
    assert!(ImageDataset::open(&p, 32)
        .unwrap_err()
        .to_string()
        .contains("`images` is missing"));
    std::fs::write(&p, b"garbage").unwrap();
    let err = ImageDataset::open(&p, 32).unwrap_err().to_string();
    assert!(
        err.contains("a.safetensors") && err.contains("not a valid safetensors file"),
        "{err}"
    );
    // Labels that are not classes of the model.
    write_st(
        &p,
        vec![
            ("images", Dtype::U8, vec![1, 4, 4, 3], vec![9; 48]),
            ("labels", Dtype::I64, vec![1], 10i64.to_le_bytes().to_vec()),
        ],
    );
    let ds = ImageDataset::open(&p, 32).unwrap();
    let err = model()
        .predict_dataset(&ds, 4, false, false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("label 10"), "{err}");
    // A dataset opened for another input size.
    let ds = ImageDataset::open(&p, 64).unwrap();
    assert!(model()
        .predict_dataset(&ds, 4, false, false)
        .unwrap_err()
        .to_string()
        .contains("64×64"));
}

#[test]
fn load_into_on_a_pool_equals_load_and_reports_bad_samples_in_order() {
    let dir = tempfile::tempdir().unwrap();
    folder(dir.path());
    std::fs::write(dir.path().join("a_dog/y.jpeg"), b"\xFF\xD8\xFF broken").unwrap();
    let ds = ImageDataset::open(dir.path(), 24).unwrap();
    let per = 3 * 24 * 24;
    let idx = [4usize, 0, 3, 2];
    let mut want = vec![0f32; idx.len() * per];
    for (o, &i) in want.chunks_mut(per).zip(&idx[..]) {
        if i != 1 {
            ds.load(i, o).unwrap();
        }
    }
    for workers in [1, 3] {
        let pool = dawin_vit::DecodePool::new(workers).unwrap();
        assert_eq!(pool.workers(), workers);
        let mut out = vec![0f32; idx.len() * per];
        assert!(ds
            .load_into(&idx, &mut out, &pool, false)
            .unwrap()
            .is_empty());
        assert_eq!(out, want, "{workers} workers");
        // The bad sample (index 1, y.jpeg): an error naming it, or listed when skipping.
        let with_bad = [3usize, 1, 0];
        let mut out = vec![0f32; with_bad.len() * per];
        let e = ds.load_into(&with_bad, &mut out, &pool, false).unwrap_err();
        assert!(e.to_string().contains("y.jpeg"), "{e}");
        let skipped = ds.load_into(&with_bad, &mut out, &pool, true).unwrap();
        assert_eq!(skipped.len(), 1);
        assert_eq!(skipped[0].index, 1);
        assert!(skipped[0].name.ends_with("y.jpeg"));
        assert_eq!(&out[2 * per..], &want[per..2 * per]);
        assert!(ds
            .load_into(&with_bad, &mut out[..per], &pool, true)
            .is_err());
    }
}
