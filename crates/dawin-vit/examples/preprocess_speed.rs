//! Single-thread speed of the CLIP preprocessing on a folder of images (issue 17's groundwork
//! for the data path): `cargo run --release -p dawin-vit --example preprocess_speed -- DIR
//! [SIZE] [ROUNDS]`. Prints images/s of the whole per-image work (read, decode, resize, crop,
//! normalise) and of the decode alone, best of ROUNDS. `scripts/bench_preprocess_single.py`
//! runs it next to PIL + torchvision on the same files.

use std::path::PathBuf;
use std::time::Instant;

use dawin_vit::preprocess::{decode_image, jpeg_simd, Preprocessor};

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(
        args.next()
            .expect("usage: preprocess_speed DIR [SIZE] [ROUNDS]"),
    );
    let size: usize = args.next().map_or(224, |s| s.parse().expect("SIZE"));
    let rounds: usize = args.next().map_or(3, |s| s.parse().expect("ROUNDS"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("DIR")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "jpg" || e == "png"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .jpg/.png in {}", dir.display());
    let mut pre = Preprocessor::new();
    let mut out = vec![0.0f32; 3 * size * size];
    let (mut best_all, mut best_decode, mut best_rgb) = (f64::MAX, f64::MAX, f64::MAX);
    let decoded: Vec<_> = files
        .iter()
        .map(|f| dawin_vit::preprocess::load_image(f).unwrap())
        .collect();
    for _ in 0..rounds {
        let t = Instant::now();
        for f in &files {
            pre.preprocess_file(f, size, &mut out).expect("preprocess");
        }
        best_all = best_all.min(t.elapsed().as_secs_f64());
        let bytes: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
        let t = Instant::now();
        for b in &bytes {
            std::hint::black_box(decode_image(b).expect("decode"));
        }
        best_decode = best_decode.min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        for img in &decoded {
            pre.preprocess_rgb(img, size, &mut out).expect("transform");
        }
        best_rgb = best_rgb.min(t.elapsed().as_secs_f64());
    }
    let n = files.len() as f64;
    println!("images {}", files.len());
    println!("jpeg_simd {}", jpeg_simd());
    println!("full_images_per_s {:.1}", n / best_all);
    println!("decode_images_per_s {:.1}", n / best_decode);
    println!("transform_images_per_s {:.1}", n / best_rgb);
}
