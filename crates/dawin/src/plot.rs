//! PNG plots drawn with the `image` crate, labelled with the public-domain 8×8 bitmap font of
//! `font8x8` (no font file needed): a histogram of λ per dataset (the paper's Fig. 1), ID
//! accuracy against mean OOD accuracy with one point per method and WiSE-FT's grid as a curve,
//! and the multi-task heat map of mean λ_j (Fig. 7). The JSON report carries the exact numbers.
use crate::error::Result;
use crate::eval::PerSample;
use crate::report::Report;
use font8x8::UnicodeFonts;
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

/// Draws `s` with the 8×8 font, each font pixel a `scale`×`scale` block, its top-left corner
/// at `(x, y)`; characters the font lacks are drawn as `?`. Returns the width drawn
/// (`8·scale` per character).
pub fn text(img: &mut RgbImage, x: i64, y: i64, s: &str, scale: i64, c: [u8; 3]) -> i64 {
    let mut cx = x;
    for ch in s.chars() {
        let glyph = font8x8::BASIC_FONTS
            .get(ch)
            .or_else(|| font8x8::GREEK_FONTS.get(ch))
            .or_else(|| font8x8::LATIN_FONTS.get(ch))
            .or_else(|| font8x8::BASIC_FONTS.get('?'))
            .unwrap_or([0; 8]);
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..8 {
                if bits & (1 << col) != 0 {
                    let (px, py) = (cx + col * scale, y + row as i64 * scale);
                    rect(img, px, py, px + scale, py + scale, c);
                }
            }
        }
        cx += 8 * scale;
    }
    cx - x
}

/// `s` cut to at most `n` characters (a trailing `.` marks a cut).
fn fit(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('.');
        t
    }
}

/// One panel per dataset, stacked vertically: a 20-bin histogram of λ ∈ [0, 1] (bins of 0.05),
/// bar heights relative to the panel's largest bin; a grey tick marks λ = 0.5. Each panel is
/// titled with the dataset's name, its size and mean λ, and its axis labelled 0, 0.5 and 1.
pub fn lambda_histograms(per_sample: &[PerSample], path: &Path) -> Result<()> {
    let (w, ph, bins) = (400i64, 130i64, 20usize);
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
        let mean = p.lambda.iter().map(|&l| l as f64).sum::<f64>() / p.lambda.len().max(1) as f64;
        let y_top = k as i64 * ph;
        text(
            &mut img,
            10,
            y_top + 4,
            &fit(
                &format!("{}  n={}  mean λ={mean:.3}", p.dataset, p.lambda.len()),
                47,
            ),
            1,
            [0, 0, 0],
        );
        let y_base = y_top + ph - 16;
        let bw = (w - 20) / bins as i64;
        for (b, &cnt) in h.iter().enumerate() {
            let bh = ((ph - 34) as f64 * cnt as f64 / top) as i64;
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
        let grey = [90, 90, 90];
        text(&mut img, 10, y_base + 5, "0", 1, grey);
        text(&mut img, w / 2 - 12, y_base + 5, "0.5", 1, grey);
        text(&mut img, w - 18, y_base + 5, "1", 1, grey);
        text(&mut img, w / 2 + 20, y_base + 5, "λ", 1, grey);
    }
    save(&img, path)
}

/// ID accuracy (x) against mean OOD accuracy (y): WiSE-FT's grid as a grey polyline of small
/// dots, each method a filled square in the palette colour of its row order, named in a legend
/// on the right. Axes span the data's range ± 1 point, their ends labelled in percent.
pub fn id_vs_ood(report: &Report, path: &Path) -> Result<()> {
    let named: Vec<(&str, (f64, f64))> = report
        .methods
        .iter()
        .filter_map(|r| r.ood_mean.map(|o| (r.method.as_str(), (r.id, o))))
        .collect();
    let pts: Vec<(f64, f64)> = named.iter().map(|p| p.1).collect();
    let curve: Vec<(f64, f64)> = report
        .wise_curve
        .iter()
        .filter_map(|p| p.ood_mean.map(|o| (p.id, o)))
        .collect();
    let all: Vec<(f64, f64)> = pts.iter().chain(&curve).copied().collect();
    // Plot area [l, r] × [t, b] inside a 560×420 image; the legend right of it.
    let (w, h) = (560i64, 420i64);
    let (l, r, t, b) = (48i64, 400i64, 24i64, h - 40);
    let mut img = RgbImage::from_pixel(w as u32, h as u32, Rgb([255, 255, 255]));
    let black = [0, 0, 0];
    text(&mut img, l, 6, "mean OOD accuracy (%)", 1, black);
    text(
        &mut img,
        (l + r) / 2 - 60,
        h - 14,
        "ID accuracy (%)",
        1,
        black,
    );
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
        let px = |x: f64| l + ((x - x0) / (x1 - x0) * (r - l) as f64) as i64;
        let py = |y: f64| b - ((y - y0) / (y1 - y0) * (b - t) as f64) as i64;
        rect(&mut img, l, b, r, b + 1, black);
        rect(&mut img, l - 1, t, l, b, black);
        let grey = [90, 90, 90];
        text(&mut img, l - 4, b + 6, &format!("{x0:.1}"), 1, grey);
        text(&mut img, r - 36, b + 6, &format!("{x1:.1}"), 1, grey);
        text(&mut img, 2, b - 8, &fit(&format!("{y0:.1}"), 5), 1, grey);
        text(&mut img, 2, t, &fit(&format!("{y1:.1}"), 5), 1, grey);
        for pair in curve.windows(2) {
            for s in 0..=50 {
                let u = s as f64 / 50.0;
                let (x, y) = (
                    pair[0].0 + u * (pair[1].0 - pair[0].0),
                    pair[0].1 + u * (pair[1].1 - pair[0].1),
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
    // Legend: a square and the method's name per row; the grey curve last.
    let mut y = t;
    for (i, (name, _)) in named.iter().enumerate() {
        rect(
            &mut img,
            r + 16,
            y,
            r + 24,
            y + 8,
            PALETTE[i % PALETTE.len()],
        );
        text(&mut img, r + 30, y, &fit(name, 15), 1, black);
        y += 14;
    }
    if curve.len() > 1 {
        rect(&mut img, r + 16, y + 3, r + 24, y + 5, [160, 160, 160]);
        text(&mut img, r + 30, y, "wise-ft curve", 1, black);
    }
    save(&img, path)
}

/// Side of one heat-map cell, in pixels.
pub const HEATMAP_CELL: u32 = 56;

/// Top-left pixel of the heat map's first cell: room for the dataset names on the left (up to
/// 10 characters) and the model names above (up to 6).
pub const HEATMAP_ORIGIN: (u32, u32) = (88, 24);

/// The multi-task heat map of mean λ_j per dataset (the paper's Fig. 7): one
/// [`HEATMAP_CELL`]-pixel cell per (dataset row, model column), in the report's order, from
/// [`HEATMAP_ORIGIN`], coloured from white (mean λ = 0) to dark blue (1) as
/// `c = 255 − v·(255 − [8, 48, 107])` per channel, its value printed at the cell's bottom; a
/// cell whose model has the dataset's name (the dataset's own expert) gets a 2-pixel black
/// frame. Dataset names label the rows, model names the columns.
pub fn lambda_heatmap(report: &crate::mtl::MtlReport, path: &Path) -> Result<()> {
    let cell = HEATMAP_CELL as i64;
    let (ox, oy) = (HEATMAP_ORIGIN.0 as i64, HEATMAP_ORIGIN.1 as i64);
    let (rows, cols) = (report.datasets.len(), report.models.len());
    let mut img = RgbImage::from_pixel(
        (ox + cell * cols.max(1) as i64 + 4) as u32,
        (oy + cell * rows.max(1) as i64 + 4) as u32,
        Rgb([255, 255, 255]),
    );
    for (c, m) in report.models.iter().enumerate() {
        text(
            &mut img,
            ox + c as i64 * cell + 4,
            oy - 12,
            &fit(m, 6),
            1,
            [0, 0, 0],
        );
    }
    for (r, d) in report.datasets.iter().enumerate() {
        text(
            &mut img,
            4,
            oy + r as i64 * cell + cell / 2 - 4,
            &fit(d, 10),
            1,
            [0, 0, 0],
        );
        for (c, m) in report.models.iter().enumerate() {
            let v = report
                .mean_lambda
                .get(d)
                .and_then(|row| row.get(m))
                .copied()
                .unwrap_or(0.0)
                .clamp(0.0, 1.0);
            let (x0, y0) = (ox + c as i64 * cell, oy + r as i64 * cell);
            if m == d {
                rect(&mut img, x0, y0, x0 + cell, y0 + cell, [0, 0, 0]);
            }
            let col = heat_color(v);
            rect(&mut img, x0 + 2, y0 + 2, x0 + cell - 2, y0 + cell - 2, col);
            let ink = if v > 0.5 { [255, 255, 255] } else { [0, 0, 0] };
            text(
                &mut img,
                x0 + 12,
                y0 + cell - 13,
                &format!("{v:.2}"),
                1,
                ink,
            );
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_draws_the_font_glyphs_scaled() {
        let mut img = RgbImage::from_pixel(64, 32, Rgb([255, 255, 255]));
        let w = text(&mut img, 2, 3, "1λ", 2, [0, 0, 0]);
        assert_eq!(w, 32);
        // Every set bit of the two glyphs is a 2×2 black block, nothing else is black.
        let mut want = 0;
        for (k, g) in [
            font8x8::BASIC_FONTS.get('1').unwrap(),
            font8x8::GREEK_FONTS.get('λ').unwrap(),
        ]
        .iter()
        .enumerate()
        {
            for (row, bits) in g.iter().enumerate() {
                for col in 0..8u32 {
                    if bits & (1 << col) != 0 {
                        want += 4;
                        let (x, y) = (2 + 16 * k as u32 + 2 * col, 3 + 2 * row as u32);
                        assert_eq!(img.get_pixel(x + 1, y + 1).0, [0, 0, 0]);
                    }
                }
            }
        }
        let black = img.pixels().filter(|p| p.0 == [0, 0, 0]).count();
        assert_eq!(black, want);
        assert_eq!(fit("abcdefgh", 5), "abcd.");
        assert_eq!(fit("abc", 5), "abc");
    }
}
