//! PNG plots drawn with the `image` crate, without text (no font is needed offline; the JSON
//! report carries the numbers): a histogram of λ per dataset (the paper's Fig. 1) and ID
//! accuracy against mean OOD accuracy with one point per method and WiSE-FT's grid as a curve.
use crate::error::Result;
use crate::eval::PerSample;
use crate::report::Report;
use image::{Rgb, RgbImage};
use std::path::Path;

const PALETTE: [[u8; 3]; 10] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
    [188, 189, 34],
    [23, 190, 207],
];

fn save(img: &RgbImage, path: &Path) -> Result<()> {
    dawin_core::atomic_write(path, |tmp| {
        img.save_with_format(tmp, image::ImageFormat::Png)
            .map_err(std::io::Error::other)
    })?;
    Ok(())
}

fn rect(img: &mut RgbImage, x0: i64, y0: i64, x1: i64, y1: i64, c: [u8; 3]) {
    for y in y0.max(0)..y1.min(img.height() as i64) {
        for x in x0.max(0)..x1.min(img.width() as i64) {
            img.put_pixel(x as u32, y as u32, Rgb(c));
        }
    }
}

/// One panel per dataset, stacked vertically: a 20-bin histogram of λ ∈ [0, 1] (bins of 0.05),
/// bar heights relative to the panel's largest bin; a grey tick marks λ = 0.5.
pub fn lambda_histograms(per_sample: &[PerSample], path: &Path) -> Result<()> {
    let (w, ph, bins) = (400i64, 100i64, 20usize);
    let mut img = RgbImage::from_pixel(
        w as u32,
        (ph * per_sample.len().max(1) as i64) as u32,
        Rgb([255, 255, 255]),
    );
    for (k, p) in per_sample.iter().enumerate() {
        let mut h = vec![0usize; bins];
        for &l in &p.lambda {
            h[((l.clamp(0.0, 1.0) * bins as f32) as usize).min(bins - 1)] += 1;
        }
        let top = *h.iter().max().unwrap_or(&1).max(&1) as f64;
        let y_base = (k as i64 + 1) * ph - 5;
        let bw = (w - 20) / bins as i64;
        for (b, &cnt) in h.iter().enumerate() {
            let bh = ((ph - 15) as f64 * cnt as f64 / top) as i64;
            let x = 10 + b as i64 * bw;
            rect(
                &mut img,
                x + 1,
                y_base - bh,
                x + bw - 1,
                y_base,
                PALETTE[k % PALETTE.len()],
            );
        }
        rect(&mut img, 10, y_base, w - 10, y_base + 1, [0, 0, 0]);
        rect(
            &mut img,
            w / 2,
            y_base,
            w / 2 + 1,
            y_base + 4,
            [120, 120, 120],
        );
    }
    save(&img, path)
}

/// ID accuracy (x) against mean OOD accuracy (y): WiSE-FT's grid as a grey polyline of small
/// dots, each method a filled square in the palette colour of its row order. Axes span the
/// data's range ± 1 point.
pub fn id_vs_ood(report: &Report, path: &Path) -> Result<()> {
    let pts: Vec<(f64, f64)> = report
        .methods
        .iter()
        .filter_map(|r| r.ood_mean.map(|o| (r.id, o)))
        .collect();
    let curve: Vec<(f64, f64)> = report
        .wise_curve
        .iter()
        .filter_map(|p| p.ood_mean.map(|o| (p.id, o)))
        .collect();
    let all: Vec<(f64, f64)> = pts.iter().chain(&curve).copied().collect();
    let (w, h) = (400i64, 400i64);
    let mut img = RgbImage::from_pixel(w as u32, h as u32, Rgb([255, 255, 255]));
    if !all.is_empty() {
        let fold = |f: fn(f64, f64) -> f64, init: f64, sel: fn(&(f64, f64)) -> f64| {
            all.iter().map(sel).fold(init, f)
        };
        let (x0, x1) = (
            fold(f64::min, f64::INFINITY, |p| p.0) - 1.0,
            fold(f64::max, f64::NEG_INFINITY, |p| p.0) + 1.0,
        );
        let (y0, y1) = (
            fold(f64::min, f64::INFINITY, |p| p.1) - 1.0,
            fold(f64::max, f64::NEG_INFINITY, |p| p.1) + 1.0,
        );
        let px = |x: f64| 20 + ((x - x0) / (x1 - x0) * (w - 40) as f64) as i64;
        let py = |y: f64| h - 20 - ((y - y0) / (y1 - y0) * (h - 40) as f64) as i64;
        rect(&mut img, 20, h - 20, w - 20, h - 19, [0, 0, 0]);
        rect(&mut img, 19, 20, 20, h - 20, [0, 0, 0]);
        for pair in curve.windows(2) {
            for s in 0..=50 {
                let t = s as f64 / 50.0;
                let (x, y) = (
                    pair[0].0 + t * (pair[1].0 - pair[0].0),
                    pair[0].1 + t * (pair[1].1 - pair[0].1),
                );
                rect(
                    &mut img,
                    px(x) - 1,
                    py(y) - 1,
                    px(x) + 1,
                    py(y) + 1,
                    [160, 160, 160],
                );
            }
        }
        for (i, &(x, y)) in pts.iter().enumerate() {
            rect(
                &mut img,
                px(x) - 4,
                py(y) - 4,
                px(x) + 4,
                py(y) + 4,
                PALETTE[i % PALETTE.len()],
            );
        }
    }
    save(&img, path)
}

/// The multi-task heat map of mean λ_j per dataset (the paper's Fig. 7): one 48×48 cell per
/// (dataset row, model column), in the report's order, coloured from white (mean λ = 0) to dark
/// blue (1) as `c = 255 − v·(255 − [8, 48, 107])` per channel; a cell whose model has the
/// dataset's name (the dataset's own expert) gets a 2-pixel black frame.
pub fn lambda_heatmap(report: &crate::mtl::MtlReport, path: &Path) -> Result<()> {
    let cell = 48i64;
    let (rows, cols) = (report.datasets.len(), report.models.len());
    let mut img = RgbImage::from_pixel(
        (cell * cols.max(1) as i64 + 8) as u32,
        (cell * rows.max(1) as i64 + 8) as u32,
        Rgb([255, 255, 255]),
    );
    for (r, d) in report.datasets.iter().enumerate() {
        for (c, m) in report.models.iter().enumerate() {
            let v = report
                .mean_lambda
                .get(d)
                .and_then(|row| row.get(m))
                .copied()
                .unwrap_or(0.0)
                .clamp(0.0, 1.0);
            let (x0, y0) = (4 + c as i64 * cell, 4 + r as i64 * cell);
            if m == d {
                rect(&mut img, x0, y0, x0 + cell, y0 + cell, [0, 0, 0]);
            }
            let col = heat_color(v);
            rect(&mut img, x0 + 2, y0 + 2, x0 + cell - 2, y0 + cell - 2, col);
        }
    }
    save(&img, path)
}

/// White (0) to dark blue (1).
pub fn heat_color(v: f64) -> [u8; 3] {
    let end = [8.0, 48.0, 107.0];
    let ch = |e: f64| (255.0 - v.clamp(0.0, 1.0) * (255.0 - e)).round() as u8;
    [ch(end[0]), ch(end[1]), ch(end[2])]
}
