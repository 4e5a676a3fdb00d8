//! CLIP preprocessing against PIL (expected values from `scripts/make_vit_fixture.py`, which runs
//! PIL 11.0's bicubic resize, centre crop and normalisation as OpenAI CLIP does).

mod common;

use common::{fixture, read_raw};
use dawin_vit::preprocess::{load_image, preprocess_rgb, RgbImage};

fn expected(name: &str) -> Vec<f32> {
    let (raw, _) = read_raw(&fixture("preprocess_expected.safetensors"));
    common::f32s(&raw, name).1
}

fn pil_decoded(stem: &str) -> RgbImage {
    let (raw, _) = read_raw(&fixture("preprocess_expected.safetensors"));
    let (_, shape, bytes) = raw[&format!("{stem}_decoded")].clone();
    RgbImage::new(shape[1], shape[0], bytes).unwrap()
}

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn run(img: &RgbImage, size: usize) -> Vec<f32> {
    let mut out = vec![0.0; 3 * size * size];
    preprocess_rgb(img, size, &mut out).unwrap();
    out
}

#[test]
fn png_rgb_and_gray_match_pil_exactly() {
    for (file, stem) in [
        ("img_rgb.png", "img_rgb_png"),
        ("img_gray.png", "img_gray_png"),
    ] {
        let img = load_image(fixture(file)).unwrap();
        assert_eq!(
            img,
            pil_decoded(stem),
            "{file}: decoded pixels differ from PIL's convert(\"RGB\")"
        );
        for size in [32, 64] {
            let got = run(&img, size);
            let want = expected(&format!("{stem}_{size}"));
            // Same u8 pixels after the resize, then the same f32 operations: equal to rounding.
            let err = max_abs(&got, &want);
            assert!(err <= 1e-6, "{file} at {size}: max abs error {err}");
        }
    }
}

#[test]
fn jpeg_resize_matches_pil_on_pil_decoded_pixels_and_decoders_agree_closely() {
    // The resize alone, on PIL's own decoded pixels: exact.
    let pil = pil_decoded("img_rgb_jpg");
    for size in [32, 64] {
        let err = max_abs(&run(&pil, size), &expected(&format!("img_rgb_jpg_{size}")));
        assert!(err <= 1e-6, "at {size}: {err}");
    }
    // The decoders (zune-jpeg vs libjpeg) may differ by a few levels after IDCT; a difference
    // of one level is 1/255/std ≈ 0.015 after normalisation.
    let ours = load_image(fixture("img_rgb.jpg")).unwrap();
    let pil = pil_decoded("img_rgb_jpg");
    let diffs: Vec<i32> = ours
        .pixels
        .iter()
        .zip(&pil.pixels)
        .map(|(a, b)| (*a as i32 - *b as i32).abs())
        .collect();
    let max = *diffs.iter().max().unwrap();
    let mean = diffs.iter().sum::<i32>() as f64 / diffs.len() as f64;
    eprintln!("RGB JPEG decode vs PIL: max {max} levels, mean {mean:.3}");
    assert!(max <= 3 && mean < 0.5, "max {max} mean {mean}");
    for size in [32, 64] {
        let err = max_abs(&run(&ours, size), &expected(&format!("img_rgb_jpg_{size}")));
        eprintln!("RGB JPEG full pipeline at {size}: max abs error {err:.4}");
        assert!(err <= 3.0 / 255.0 / 0.26, "{err}");
    }
}

#[test]
fn cmyk_jpeg_is_converted_like_pil() {
    let ours = load_image(fixture("img_cmyk.jpg")).unwrap();
    let pil = pil_decoded("img_cmyk_jpg");
    let diffs: Vec<i32> = ours
        .pixels
        .iter()
        .zip(&pil.pixels)
        .map(|(a, b)| (*a as i32 - *b as i32).abs())
        .collect();
    let max = *diffs.iter().max().unwrap();
    let mean = diffs.iter().sum::<i32>() as f64 / diffs.len() as f64;
    eprintln!("CMYK JPEG decode vs PIL convert(\"RGB\"): max {max} levels, mean {mean:.3}");
    assert!(max <= 4 && mean < 1.0, "max {max} mean {mean}");
    for size in [32, 64] {
        // PIL resizes in CMYK and converts afterwards; we convert first: a few levels apart.
        let err = max_abs(
            &run(&ours, size),
            &expected(&format!("img_cmyk_jpg_{size}")),
        );
        eprintln!("CMYK JPEG full pipeline at {size}: max abs error {err:.4}");
        assert!(err <= 6.0 / 255.0 / 0.26, "{err}");
    }
}
