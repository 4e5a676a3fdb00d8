//! Figures drawn with [`plotters`], each written twice: as SVG (vector, real `<text>` elements,
//! for papers) and as PNG (for a quick look): a histogram of λ per dataset (the paper's Fig. 1),
//! ID accuracy against mean OOD accuracy with one marker per method and WiSE-FT's grid as a
//! curve, and the multi-task heat map of mean λ_j (Fig. 7). The JSON report carries the exact
//! numbers.
//!
//! **Two files per figure.** Each function takes one `path` ending in `.png` or `.svg` and writes
//! the figure there and in the other format beside it (`a/lambda_hist.png` →
//! `a/lambda_hist.svg` too); any other extension is an error. Both are drawn by the same code on
//! plotters' SVG and bitmap backends, so they show the same thing.
//!
//! **Font.** PNG text is rasterised by `ab_glyph` from DejaVu Sans, embedded in the binary by the
//! `dejavu` crate (Bitstream Vera licence with public-domain DejaVu changes): no system font is
//! looked up, so a machine without fonts draws the same PNG. (A small adapter around the bitmap
//! backend places the glyphs; plotters 0.3.7's own `ab_glyph` text drops side bearings: see
//! `glyphs.rs`.) The SVG names the family `DejaVu Sans, sans-serif`: the viewer's DejaVu Sans if
//! installed, else its sans-serif.
//!
//! **Bad input.** A non-finite value (λ, accuracy) or a λ outside [0, 1] is an error naming the
//! dataset or method, never a quietly misplaced mark. What cannot be drawn for lack of data is said in the figure: a
//! dataset without samples gets a panel reading "no samples", a report without OOD sets an
//! `id_vs_ood` reading "no OOD dataset".
use crate::error::{Error, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

mod glyphs;
mod heatmap;
mod hist;
mod scatter;

pub use heatmap::{heat_color, lambda_heatmap, HEATMAP_CELL, HEATMAP_ORIGIN};
pub use hist::lambda_histograms;
pub use scatter::id_vs_ood;

/// The font family every text element names: registered with plotters as the embedded DejaVu
/// Sans (for the PNG), written as is into the SVG (a CSS family list).
const FONT: &str = "DejaVu Sans, sans-serif";

/// Title, axis description and tick label sizes (plotters' font size, px).
const TITLE: f64 = 23.0;
const DESC: f64 = 20.0;
const TICK: f64 = 18.0;

/// Matplotlib's "tab10" colours, one per dataset or method in table order.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

fn palette(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// Registers the embedded DejaVu Sans (regular and bold) with plotters under [`FONT`] and
/// `sans-serif`, once per process. Errors (visibly, never silently drawing without text) if
/// the embedded font cannot be parsed.
fn font_ready() -> Result<()> {
    static READY: OnceLock<bool> = OnceLock::new();
    let ok = *READY.get_or_init(|| {
        [FONT, "sans-serif"].iter().all(|name| {
            plotters::style::register_font(name, FontStyle::Normal, dejavu::sans::regular()).is_ok()
                && plotters::style::register_font(name, FontStyle::Bold, dejavu::sans::bold())
                    .is_ok()
        })
    });
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "plot font",
            "the embedded DejaVu Sans could not be parsed: no text can be drawn",
        ))
    }
}

/// What a drawing step returns on backend `DB`.
type Drawn<DB> = std::result::Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// One figure: its size in pixels and how to draw it on any plotters backend.
trait Figure {
    /// (width, height) in pixels (SVG user units).
    fn size(&self) -> (u32, u32);
    /// Draws the figure on `root`, already filled white.
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Drawn<DB>;
}

/// The (PNG, SVG) pair for `path`: `path` itself and its twin with the other extension.
fn twin_paths(path: &Path) -> Result<(PathBuf, PathBuf)> {
    match path.extension().and_then(|e| e.to_str()) {
        Some(e) if e.eq_ignore_ascii_case("png") || e.eq_ignore_ascii_case("svg") => Ok((
            path.with_extension(if e.eq_ignore_ascii_case("png") {
                e
            } else {
                "png"
            }),
            path.with_extension(if e.eq_ignore_ascii_case("svg") {
                e
            } else {
                "svg"
            }),
        )),
        _ => Err(Error::invalid(
            path.display().to_string(),
            "a plot path must end in .png or .svg (the other format is written beside it)",
        )),
    }
}

fn draw_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::invalid(path.display().to_string(), format!("drawing the plot: {e}"))
}

/// Draws `fig` with both backends and writes the PNG and SVG of [`twin_paths`]`(path)`, each
/// to a temporary file renamed into place.
fn write_figure(fig: &impl Figure, path: &Path) -> Result<()> {
    font_ready()?;
    let (png, svg) = twin_paths(path)?;
    let (w, h) = fig.size();
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| draw_error(&svg, e))?;
        fig.draw(&root).map_err(|e| draw_error(&svg, e))?;
        root.present().map_err(|e| draw_error(&svg, e))?;
    }
    let mut rgb = vec![255u8; w as usize * h as usize * 3];
    {
        let root = glyphs::Glyphs(BitMapBackend::with_buffer(&mut rgb, (w, h))).into_drawing_area();
        fig.draw(&root).map_err(|e| draw_error(&png, e))?;
        root.present().map_err(|e| draw_error(&png, e))?;
    }
    let img = image::RgbImage::from_raw(w, h, rgb)
        .ok_or_else(|| draw_error(&png, "the bitmap has the wrong size"))?;
    dawin_core::atomic_write(&svg, |tmp| std::fs::write(tmp, text.as_bytes()))?;
    dawin_core::atomic_write(&png, |tmp| {
        img.save_with_format(tmp, image::ImageFormat::Png)
            .map_err(std::io::Error::other)
    })?;
    Ok(())
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

/// Width in pixels of `s` drawn in [`FONT`] at `size` (0 if it cannot be measured).
fn text_width(s: &str, size: f64) -> u32 {
    (FONT, size).into_font().box_size(s).map_or(0, |b| b.0)
}

/// `s` [`fit`] to the most characters whose drawn width at `size` is at most `px`.
fn fit_px(s: &str, size: f64, px: u32) -> String {
    let mut n = s.chars().count();
    let mut t = s.to_string();
    while n > 1 && text_width(&t, size) > px {
        n -= 1;
        t = fit(s, n);
    }
    t
}

/// Decimals that tell apart tick labels about `span / 8` apart.
fn decimals(span: f64) -> usize {
    if span >= 8.0 {
        0
    } else if span >= 0.8 {
        1
    } else {
        2
    }
}

/// A finite `v`, else an error naming `what`.
fn finite(v: f64, what: impl FnOnce() -> String) -> Result<f64> {
    if v.is_finite() {
        Ok(v)
    } else {
        Err(Error::invalid(what(), format!("{v} cannot be plotted")))
    }
}

#[cfg(test)]
mod tests;
