//! CLIP preprocessing against the PyTorch pipeline.
//!
//! Main reference: `tests/fixtures/pixels/` from `scripts/make_pixel_fixtures.py`, pinned to
//! Pillow 13.0.0 (libjpeg-turbo 3.2.0), torchvision 0.29.2 and open_clip 3.3.0:
//! torchvision's `default_loader` (decoded pixels, compared bit for bit) then open_clip's eval
//! transform (tensors, compared to 1e-6), over JPEG and PNG variants (see the script).
//!
//! The older `preprocess_expected.safetensors` (`scripts/make_vit_fixture.py`, Pillow 11.0,
//! resize + crop + normalise written with PIL alone) is checked too.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;

use common::{fixture, read_raw, RawTensors};
use dawin_vit::preprocess::{
    decode_image, load_image, preprocess_file, preprocess_file_into, preprocess_rgb,
    resize_bicubic, Preprocessor, RgbImage,
};
use rayon::prelude::*;

fn pixels_dir() -> PathBuf {
    fixture("pixels")
}

struct Pixels {
    raw: RawTensors,
    meta: HashMap<String, String>,
}

impl Pixels {
    fn load() -> Pixels {
        let (raw, meta) = read_raw(&pixels_dir().join("expected.safetensors"));
        Pixels { raw, meta }
    }

    /// Image file names.
    fn images(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .raw
            .keys()
            .filter_map(|k| k.strip_suffix("/decoded").map(str::to_string))
            .collect();
        names.sort();
        names
    }

    fn decoded(&self, name: &str) -> RgbImage {
        let (dt, shape, bytes) = &self.raw[&format!("{name}/decoded")];
        assert_eq!(*dt, safetensors::Dtype::U8);
        assert_eq!(shape.len(), 3);
        assert_eq!(shape[2], 3);
        RgbImage::new(shape[1], shape[0], bytes.clone()).unwrap()
    }

    /// `(name, size, expected [3, size, size])` of every tensor.
    fn tensors(&self) -> Vec<(String, usize, Vec<f32>)> {
        let mut out: Vec<_> = self
            .raw
            .keys()
            .filter(|k| !k.starts_with("resize/"))
            .filter_map(|k| {
                let (name, s) = k.rsplit_once("/s")?;
                let size: usize = s.parse().ok()?;
                let (shape, v) = common::f32s(&self.raw, k);
                assert_eq!(shape, vec![3, size, size], "{k}");
                Some((name.to_string(), size, v))
            })
            .collect();
        out.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        out
    }
}

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn fixture_pins_pillow_13_and_covers_both_resize_pass_orders() {
    let px = Pixels::load();
    assert_eq!(px.meta["pillow"], "13.0.0");
    assert_eq!(px.meta["libjpeg_turbo"], "3.2.0");
    assert_eq!(px.meta["open_clip"], "3.3.0");
    assert!(px.meta["torchvision"].starts_with("0.29.2"));
    let orders = &px.meta["pass_orders"];
    // Pillow 13 resized the tall image vertically first (and the two orders differ on it).
    assert!(
        orders.contains(r#""tall_90x250.jpg/s32": "vertical-first""#),
        "{orders}"
    );
    assert!(
        orders.contains(r#""tall_90x250.jpg/s64": "vertical-first""#),
        "{orders}"
    );
    assert!(
        orders.contains(r#""portrait_40x70.jpg/s32": "horizontal-first""#),
        "{orders}"
    );
    assert!(px.images().len() >= 30, "{:?}", px.images());
}

#[test]
fn resize_matches_pillow_13_bit_for_bit_in_both_pass_orders() {
    let px = Pixels::load();
    let mut orders = HashMap::<String, usize>::new();
    let mut n = 0;
    for (key, (dt, shape, want)) in &px.raw {
        let Some(rest) = key.strip_prefix("resize/") else {
            continue;
        };
        let (name, dims) = rest.rsplit_once('/').unwrap();
        let (ow, oh) = dims.split_once('x').unwrap();
        let (ow, oh): (usize, usize) = (ow.parse().unwrap(), oh.parse().unwrap());
        assert_eq!(
            (*dt, shape.clone()),
            (safetensors::Dtype::U8, vec![oh, ow, 3])
        );
        let got = resize_bicubic(&px.decoded(name), ow, oh).unwrap();
        assert_eq!(&got.pixels, want, "{key}");
        let order = px.meta["pass_orders"]
            .split(&format!("\"{key}\": \""))
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap_or_else(|| panic!("no pass order for {key}"));
        *orders.entry(order.to_string()).or_default() += 1;
        n += 1;
    }
    assert!(n >= 28, "{n} resize cases");
    assert!(
        orders["vertical-first"] >= 3 && orders["horizontal-first"] >= 3,
        "{orders:?}"
    );
}

#[test]
fn every_image_decodes_to_pils_pixels_bit_for_bit() {
    let px = Pixels::load();
    let mut bad = Vec::new();
    for name in px.images() {
        let want = px.decoded(&name);
        let got = load_image(pixels_dir().join(&name)).unwrap();
        if got != want {
            let diff = if (got.width, got.height) == (want.width, want.height) {
                let n = got
                    .pixels
                    .iter()
                    .zip(&want.pixels)
                    .filter(|(a, b)| a != b)
                    .count();
                format!("{n} of {} values differ", want.pixels.len())
            } else {
                format!(
                    "{}×{} instead of {}×{}",
                    got.width, got.height, want.width, want.height
                )
            };
            bad.push(format!("{name}: {diff}"));
        }
    }
    assert!(
        bad.is_empty(),
        "decoded pixels differ from PIL's:\n{}",
        bad.join("\n")
    );
}

#[test]
fn every_image_preprocesses_like_torchvision_and_open_clip() {
    let px = Pixels::load();
    let mut pre = Preprocessor::new(); // one, reused across all images and sizes
    let mut worst = (0.0f32, String::new());
    for (name, size, want) in px.tensors() {
        let path = pixels_dir().join(&name);
        let mut got = vec![0.0f32; 3 * size * size];
        pre.preprocess_file(&path, size, &mut got).unwrap();
        let err = max_abs(&got, &want);
        assert!(err <= 1e-6, "{name} at {size}: max abs error {err}");
        if err >= worst.0 {
            worst = (err, format!("{name} at {size}"));
        }
        // The free functions and PIL's own decoded pixels give the same tensor.
        assert_eq!(preprocess_file(&path, size).unwrap(), got, "{name}");
        let mut from_rgb = vec![0.0f32; 3 * size * size];
        preprocess_rgb(&px.decoded(&name), size, &mut from_rgb).unwrap();
        assert_eq!(from_rgb, got, "{name} at {size}");
    }
    eprintln!(
        "largest error vs torchvision + open_clip: {} ({})",
        worst.0, worst.1
    );
}

#[test]
fn many_threads_give_the_same_tensors() {
    fn is_send<T: Send>() {}
    is_send::<Preprocessor>();
    let px = Pixels::load();
    let tensors = px.tensors();
    let work: Vec<_> = (0..4).flat_map(|_| tensors.iter()).collect();
    let errs: Vec<f32> = work
        .par_iter()
        .map(|(name, size, want)| {
            let mut got = vec![0.0f32; 3 * size * size];
            preprocess_file_into(pixels_dir().join(name), *size, &mut got).unwrap();
            max_abs(&got, want)
        })
        .collect();
    let worst = errs.iter().cloned().fold(0.0, f32::max);
    assert!(worst <= 1e-6, "{worst}");
}

#[test]
fn truncated_and_corrupt_files_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let jpg = std::fs::read(pixels_dir().join("base_420.jpg")).unwrap();
    // Without its EOI marker (PIL: "image file is truncated"), and cut in the middle.
    for (name, bytes) in [
        ("no_eoi.jpg", &jpg[..jpg.len() - 2]),
        ("half.jpg", &jpg[..jpg.len() / 2]),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let err = load_image(&path).unwrap_err().to_string();
        assert!(err.contains(name) && err.contains("truncated"), "{err}");
        let err = preprocess_file(&path, 32).unwrap_err().to_string();
        assert!(err.contains(name) && err.contains("truncated"), "{err}");
    }
    // Extra bytes before EOI: libjpeg warns, PIL and we decode.
    let mut junk = jpg[..jpg.len() - 2].to_vec();
    junk.extend_from_slice(&[0, 1, 2, 0xFF, 0xD9]);
    assert_eq!(
        decode_image(&junk).unwrap(),
        load_image(pixels_dir().join("base_420.jpg")).unwrap()
    );
    // A corrupt header, then the same decoder still works.
    let mut pre = Preprocessor::new();
    let mut out = vec![0.0f32; 3 * 32 * 32];
    let mut bad = jpg.clone();
    bad[3..40].fill(0x55);
    assert!(pre.preprocess_bytes(&bad, 32, &mut out).is_err());
    pre.preprocess_bytes(&jpg, 32, &mut out).unwrap();
    let png = std::fs::read(pixels_dir().join("rgb.png")).unwrap();
    let err = decode_image(&png[..png.len() / 2]).unwrap_err();
    assert!(err.contains("PNG"), "{err}");
    let path = dir.path().join("missing.png");
    let err = preprocess_file(&path, 32).unwrap_err().to_string();
    assert!(err.contains("missing.png"), "{err}");
}

// ---- the older fixture (scripts/make_vit_fixture.py, Pillow 11.0, PIL-only transform) ----

fn expected(name: &str) -> Vec<f32> {
    let (raw, _) = read_raw(&fixture("preprocess_expected.safetensors"));
    common::f32s(&raw, name).1
}

fn pil_decoded(stem: &str) -> RgbImage {
    let (raw, _) = read_raw(&fixture("preprocess_expected.safetensors"));
    let (_, shape, bytes) = raw[&format!("{stem}_decoded")].clone();
    RgbImage::new(shape[1], shape[0], bytes).unwrap()
}

fn run(img: &RgbImage, size: usize) -> Vec<f32> {
    let mut out = vec![0.0; 3 * size * size];
    preprocess_rgb(img, size, &mut out).unwrap();
    out
}

#[test]
fn older_fixture_png_rgb_and_gray_match_pil_exactly() {
    for (file, stem) in [
        ("img_rgb.png", "img_rgb_png"),
        ("img_gray.png", "img_gray_png"),
    ] {
        let img = load_image(fixture(file)).unwrap();
        assert_eq!(
            img,
            pil_decoded(stem),
            "{file}: decoded pixels differ from PIL's"
        );
        for size in [32, 64] {
            let err = max_abs(&run(&img, size), &expected(&format!("{stem}_{size}")));
            assert!(err <= 1e-6, "{file} at {size}: max abs error {err}");
        }
    }
}

#[test]
fn older_fixture_rgb_jpeg_matches_pil_exactly() {
    // Decoding is now libjpeg-turbo's: identical pixels, hence identical tensors.
    let ours = load_image(fixture("img_rgb.jpg")).unwrap();
    assert_eq!(ours, pil_decoded("img_rgb_jpg"));
    for size in [32, 64] {
        let err = max_abs(&run(&ours, size), &expected(&format!("img_rgb_jpg_{size}")));
        assert!(err <= 1e-6, "at {size}: {err}");
    }
}

#[test]
fn older_fixture_cmyk_jpeg_decodes_like_pil() {
    let ours = load_image(fixture("img_cmyk.jpg")).unwrap();
    assert_eq!(ours, pil_decoded("img_cmyk_jpg"));
    for size in [32, 64] {
        // That script resized in CMYK and converted afterwards; torchvision's loader (and this
        // crate) convert first, so the two transforms differ by a few levels on this image.
        let err = max_abs(
            &run(&ours, size),
            &expected(&format!("img_cmyk_jpg_{size}")),
        );
        assert!(err <= 6.0 / 255.0 / 0.26, "{err}");
    }
}
