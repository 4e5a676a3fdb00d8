//! The multi-task heat map of mean λ_j per dataset (the paper's Fig. 7).
use super::{finite, fit_px, text_width, write_figure, Drawn, Figure, DESC, FONT, TICK, TITLE};
use crate::error::{Error, Result};
use crate::mtl::MtlReport;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::Path;

/// Side of one heat-map cell, in pixels (PNG) or user units (SVG).
pub const HEATMAP_CELL: u32 = 80;

/// Top-left corner of the heat map's first cell: above it the title, the columns' description
/// and the model names; left of it the rows' description and the dataset names (cut with a `.`
/// to fit).
pub const HEATMAP_ORIGIN: (u32, u32) = (150, 96);

/// The heat map: the values, row-major `[dataset][model]`, already checked finite.
struct Heatmap<'a> {
    report: &'a MtlReport,
    values: Vec<Vec<f64>>,
}

/// Draws the multi-task heat map of mean λ_j per dataset (the paper's Fig. 7) to `path` and its
/// SVG/PNG twin (see the [module docs](super)): one [`HEATMAP_CELL`]-sized cell per (dataset row,
/// model column), in the report's order, from [`HEATMAP_ORIGIN`], so the image is
/// `ORIGIN.0 + CELL·models + 4` wide and `ORIGIN.1 + CELL·datasets + 4` high. A cell is filled
/// (2 px inside its border) with [`heat_color`] of `report.mean_lambda[dataset][model]`, and the
/// value is printed in its lower third (white on dark cells, black on light ones); a cell whose
/// model has the dataset's name (the dataset's own expert) gets a 3-px black frame. Dataset
/// names label the rows, model names the columns.
///
/// Errors when the report has no dataset or no model, when a (dataset, model) value is missing
/// from `mean_lambda` or is not finite (naming them), or when a file cannot be written.
pub fn lambda_heatmap(report: &MtlReport, path: &Path) -> Result<()> {
    if report.datasets.is_empty() || report.models.is_empty() {
        return Err(Error::invalid(
            "lambda_heatmap",
            format!(
                "the report has {} dataset(s) and {} model(s): nothing to plot",
                report.datasets.len(),
                report.models.len()
            ),
        ));
    }
    let values = report
        .datasets
        .iter()
        .map(|d| {
            report
                .models
                .iter()
                .map(|m| {
                    let what = || format!("lambda_heatmap: mean λ of model {m} on dataset {d}");
                    let v = report.mean_lambda.get(d).and_then(|row| row.get(m));
                    finite(*v.ok_or_else(|| Error::invalid(what(), "missing"))?, what)
                })
                .collect::<Result<Vec<f64>>>()
        })
        .collect::<Result<_>>()?;
    write_figure(&Heatmap { report, values }, path)
}

/// White (0) to dark blue (1): `c = round(255 − v·(255 − [8, 48, 107]))` per channel, `v`
/// clamped to [0, 1] (a NaN gives black).
pub fn heat_color(v: f64) -> [u8; 3] {
    let end = [8.0, 48.0, 107.0];
    let ch = |e: f64| (255.0 - v.clamp(0.0, 1.0) * (255.0 - e)).round() as u8;
    [ch(end[0]), ch(end[1]), ch(end[2])]
}

impl Figure for Heatmap<'_> {
    fn size(&self) -> (u32, u32) {
        let (ox, oy) = HEATMAP_ORIGIN;
        (
            ox + HEATMAP_CELL * self.report.models.len() as u32 + 4,
            oy + HEATMAP_CELL * self.report.datasets.len() as u32 + 4,
        )
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Drawn<DB> {
        let cell = HEATMAP_CELL as i32;
        let (ox, oy) = (HEATMAP_ORIGIN.0 as i32, HEATMAP_ORIGIN.1 as i32);
        let style = |size: f64, h: HPos, v: VPos| {
            TextStyle::from((FONT, size).into_font()).pos(Pos::new(h, v))
        };
        let grey = RGBColor(80, 80, 80);
        // The title and the columns' description centred over the cells, moved left as far as
        // needed to stay inside the image.
        let cols = self.report.models.len() as i32;
        let right = self.size().0 as i32 - 4;
        let centre =
            |s: &str, size: f64| (ox + cols * cell / 2).min(right - text_width(s, size) as i32 / 2);
        for (s, y, size, colour) in [
            ("Mean λⱼ per dataset", 6, TITLE, BLACK),
            ("fine-tuned model θⱼ", 38, DESC, grey),
        ] {
            root.draw(&Text::new(
                s,
                (centre(s, size), y),
                style(size, HPos::Center, VPos::Top).color(&colour),
            ))?;
        }
        for (c, m) in self.report.models.iter().enumerate() {
            root.draw(&Text::new(
                fit_px(m, TICK, HEATMAP_CELL - 6),
                (ox + c as i32 * cell + cell / 2, oy - 6),
                style(TICK, HPos::Center, VPos::Bottom),
            ))?;
        }
        // The rows' description, vertical, left of the names.
        let rows = self.report.datasets.len() as i32;
        root.draw(&Text::new(
            "dataset",
            (6, oy + rows * cell / 2),
            style(DESC, HPos::Center, VPos::Top)
                .color(&grey)
                .transform(FontTransform::Rotate270),
        ))?;
        for (r, d) in self.report.datasets.iter().enumerate() {
            let y0 = oy + r as i32 * cell;
            root.draw(&Text::new(
                fit_px(d, TICK, ox as u32 - 36),
                (ox - 8, y0 + cell / 2),
                style(TICK, HPos::Right, VPos::Center),
            ))?;
            for (c, m) in self.report.models.iter().enumerate() {
                let v = self.values[r][c];
                let x0 = ox + c as i32 * cell;
                let inset = if m == d {
                    root.draw(&Rectangle::new(
                        [(x0, y0), (x0 + cell, y0 + cell)],
                        BLACK.filled(),
                    ))?;
                    3
                } else {
                    2
                };
                let [cr, cg, cb] = heat_color(v);
                root.draw(&Rectangle::new(
                    [
                        (x0 + inset, y0 + inset),
                        (x0 + cell - inset, y0 + cell - inset),
                    ],
                    RGBColor(cr, cg, cb).filled(),
                ))?;
                let ink = if v > 0.5 { WHITE } else { BLACK };
                root.draw(&Text::new(
                    format!("{v:.2}"),
                    (x0 + cell / 2, y0 + cell - 10),
                    style(TICK, HPos::Center, VPos::Bottom).color(&ink),
                ))?;
            }
        }
        Ok(())
    }
}
