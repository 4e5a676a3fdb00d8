//! ID accuracy against mean OOD accuracy, one marker per method, WiSE-FT's grid as a curve.
use super::{
    decimals, finite, fit_px, palette, write_figure, Drawn, Figure, DESC, FONT, TICK, TITLE,
};
use crate::error::Result;
use crate::report::Report;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::Path;

/// Figure size; the legend takes the right `LEGEND` pixels.
const WIDTH: u32 = 780;
const HEIGHT: u32 = 540;
const LEGEND: u32 = 230;
/// Marker half-size.
const MARK: i32 = 7;
/// The WiSE-FT curve's grey.
pub(super) const CURVE: RGBColor = RGBColor(150, 150, 150);

struct IdVsOod {
    /// (method, (ID, mean OOD)) in table order.
    points: Vec<(String, (f64, f64))>,
    /// WiSE-FT over its λ grid, in λ order.
    curve: Vec<(f64, f64)>,
}

/// Draws ID accuracy (x, %) against mean OOD accuracy (y, %) to `path` and its SVG/PNG twin (see
/// the [module docs](super)): each method with a mean OOD accuracy is one marker (palette
/// colour and shape by row order: square, circle, triangle, diamond), named in a legend right
/// of the axes; WiSE-FT's grid (`report.wise_curve`, when it has at least two points) is a grey
/// line through small grey dots, last in the legend. The axes span the data ± 8 % of its range
/// (at least ± 0.5 points).
///
/// A report without any OOD dataset (every `ood_mean` is `None`) gives a figure that says so
/// instead of axes. Errors when an accuracy is not finite (naming the method or WiSE-FT λ), or
/// when a file cannot be written.
pub fn id_vs_ood(report: &Report, path: &Path) -> Result<()> {
    let mut points = Vec::new();
    for r in &report.methods {
        if let Some(o) = r.ood_mean {
            let what = || format!("id_vs_ood: accuracy of method {}", r.method);
            points.push((r.method.clone(), (finite(r.id, what)?, finite(o, what)?)));
        }
    }
    let mut curve = Vec::new();
    for p in &report.wise_curve {
        if let Some(o) = p.ood_mean {
            let what = || format!("id_vs_ood: accuracy of WiSE-FT at λ = {}", p.lambda);
            curve.push((finite(p.id, what)?, finite(o, what)?));
        }
    }
    if curve.len() < 2 {
        curve.clear();
    }
    write_figure(&IdVsOod { points, curve }, path)
}

/// Method `i`'s marker centred at `c`.
fn marker<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    i: usize,
    (x, y): (i32, i32),
) -> Drawn<DB> {
    let style = palette(i).filled();
    let m = MARK;
    match (i / 10 + i) % 4 {
        0 => area.draw(&Rectangle::new(
            [(x - m + 1, y - m + 1), (x + m - 1, y + m - 1)],
            style,
        )),
        1 => area.draw(&Circle::new((x, y), m, style)),
        2 => area.draw(&Polygon::new(
            vec![
                (x, y - m - 1),
                (x + m + 1, y + m - 1),
                (x - m - 1, y + m - 1),
            ],
            style,
        )),
        _ => area.draw(&Polygon::new(
            vec![
                (x, y - m - 1),
                (x + m + 1, y),
                (x, y + m + 1),
                (x - m - 1, y),
            ],
            style,
        )),
    }
}

impl Figure for IdVsOod {
    fn size(&self) -> (u32, u32) {
        (WIDTH, HEIGHT)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Drawn<DB> {
        let (plot, legend) = root.split_horizontally(WIDTH - LEGEND);
        let title = "ID vs. mean OOD accuracy";
        let centred = |size: f64| {
            TextStyle::from((FONT, size).into_font()).pos(Pos::new(HPos::Center, VPos::Center))
        };
        let all: Vec<(f64, f64)> = self
            .points
            .iter()
            .map(|p| p.1)
            .chain(self.curve.iter().copied())
            .collect();
        if all.is_empty() {
            let (w, h) = plot.dim_in_pixel();
            plot.draw(&Text::new(title, (w as i32 / 2, 24), centred(TITLE)))?;
            plot.draw(&Text::new(
                "no OOD dataset: nothing to plot",
                (w as i32 / 2, h as i32 / 2),
                centred(DESC),
            ))?;
            return Ok(());
        }
        let range = |sel: fn(&(f64, f64)) -> f64| {
            let lo = all.iter().map(sel).fold(f64::INFINITY, f64::min);
            let hi = all.iter().map(sel).fold(f64::NEG_INFINITY, f64::max);
            let pad = ((hi - lo) * 0.08).max(0.5);
            lo - pad..hi + pad
        };
        let (xr, yr) = (range(|p| p.0), range(|p| p.1));
        let (dx, dy) = (decimals(xr.end - xr.start), decimals(yr.end - yr.start));
        let mut chart = ChartBuilder::on(&plot)
            .caption(title, (FONT, TITLE))
            .margin(12)
            .x_label_area_size(60)
            .y_label_area_size(84)
            .build_cartesian_2d(xr, yr)?;
        chart
            .configure_mesh()
            .x_labels(8)
            .y_labels(8)
            .max_light_lines(0)
            .x_label_formatter(&|x| format!("{x:.dx$}"))
            .y_label_formatter(&|y| format!("{y:.dy$}"))
            .label_style((FONT, TICK))
            .axis_desc_style((FONT, DESC))
            .x_desc("ID accuracy (%)")
            .y_desc("mean OOD accuracy (%)")
            .bold_line_style(RGBColor(225, 225, 225))
            .draw()?;
        if !self.curve.is_empty() {
            chart.draw_series(LineSeries::new(
                self.curve.iter().copied(),
                CURVE.stroke_width(2),
            ))?;
            chart.draw_series(
                self.curve
                    .iter()
                    .map(|&p| Circle::new(p, 3, CURVE.filled())),
            )?;
        }
        // Markers in pixels on the root (whose origin is the backend's), at the mapped points.
        let area = chart.plotting_area();
        for (i, (_, p)) in self.points.iter().enumerate() {
            marker(root, i, area.map_coordinate(p))?;
        }
        // Legend: one row per method, then the curve.
        let text =
            TextStyle::from((FONT, TICK).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
        let (row, x0, mut y) = (30, 14, 70);
        for (i, (name, _)) in self.points.iter().enumerate() {
            marker(&legend, i, (x0 + MARK, y))?;
            legend.draw(&Text::new(
                fit_px(name, TICK, LEGEND - 48),
                (x0 + 2 * MARK + 10, y),
                text.clone(),
            ))?;
            y += row;
        }
        if !self.curve.is_empty() {
            legend.draw(&PathElement::new(
                vec![(x0 - 2, y), (x0 + 2 * MARK + 2, y)],
                CURVE.stroke_width(2),
            ))?;
            legend.draw(&Circle::new((x0 + MARK, y), 3, CURVE.filled()))?;
            legend.draw(&Text::new(
                "WiSE-FT, λ = 0…1",
                (x0 + 2 * MARK + 10, y),
                text.clone(),
            ))?;
        }
        Ok(())
    }
}
