//! One histogram of λ per dataset (the paper's Fig. 1), stacked top to bottom.
use super::{
    finite, fit_px, palette, text_width, write_figure, Drawn, Figure, DESC, FONT, TICK, TITLE,
};
use crate::error::{Error, Result};
use crate::eval::PerSample;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::Path;

/// Bins of width 0.05 over [0, 1].
const BINS: usize = 20;
/// Figure width and height of one dataset's panel.
const WIDTH: u32 = 720;
const PANEL: u32 = 200;
/// Extra height of the last panel, which carries the λ axis' description.
const FOOT: u32 = 28;

/// One dataset's panel.
struct Panel {
    name: String,
    counts: [usize; BINS],
    n: usize,
    mean: f64,
}

struct Histograms(Vec<Panel>);

/// Draws one histogram of λ per dataset to `path` and its SVG/PNG twin (see the
/// [module docs](super)): panels stacked top to bottom in `per_sample`'s order (the table's),
/// each titled `name (n = N, mean λ = m)` with `m = Σλ/N`; 20 bins of width 0.05 over [0, 1]
/// (λ = 1 falls in the last), bar heights in samples, the y axis from 0 to the panel's largest
/// bin; a dashed black line marks the mean. A dataset without samples gets a panel reading "no
/// samples".
///
/// Errors when `per_sample` is empty, when a λ is not finite or outside [0, 1] (naming the
/// dataset and sample index), or when a file cannot be written.
pub fn lambda_histograms(per_sample: &[PerSample], path: &Path) -> Result<()> {
    if per_sample.is_empty() {
        return Err(Error::invalid("lambda_histograms", "no dataset to plot"));
    }
    let mut panels = Vec::with_capacity(per_sample.len());
    for p in per_sample {
        let mut counts = [0usize; BINS];
        let mut sum = 0.0;
        for (i, &l) in p.lambda.iter().enumerate() {
            let what = || {
                format!(
                    "lambda_histograms: λ of sample {i} of dataset {}",
                    p.dataset
                )
            };
            let l = finite(l as f64, what)?;
            if !(0.0..=1.0).contains(&l) {
                return Err(Error::invalid(what(), format!("{l} is outside [0, 1]")));
            }
            counts[((l * BINS as f64) as usize).min(BINS - 1)] += 1;
            sum += l;
        }
        panels.push(Panel {
            name: p.dataset.clone(),
            counts,
            n: p.lambda.len(),
            mean: sum / p.lambda.len().max(1) as f64,
        });
    }
    write_figure(&Histograms(panels), path)
}

impl Figure for Histograms {
    fn size(&self) -> (u32, u32) {
        (WIDTH, PANEL * self.0.len() as u32 + FOOT)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Drawn<DB> {
        let last = self.0.len() - 1;
        for (k, p) in self.0.iter().enumerate() {
            let top = k as u32 * PANEL;
            let bottom = top + PANEL + if k == last { FOOT } else { 0 };
            let area = root.clone().shrink((0, top), (WIDTH, bottom - top));
            let stats = if p.n == 0 {
                "  (n = 0)".to_string()
            } else {
                format!("  (n = {}, mean λ = {:.3})", p.n, p.mean)
            };
            let room = (WIDTH - 24).saturating_sub(text_width(&stats, TITLE));
            let title = fit_px(&p.name, TITLE, room) + &stats;
            let ymax = p.counts.iter().copied().max().unwrap_or(0).max(1);
            let mut chart = ChartBuilder::on(&area)
                .caption(title, (FONT, TITLE))
                .margin_left(8)
                .margin_right(24)
                .margin_top(4)
                .margin_bottom(if k == last { 6 } else { 10 })
                .x_label_area_size(if k == last { 58 } else { 30 })
                .y_label_area_size(80)
                .build_cartesian_2d(0f64..1f64, 0f64..ymax as f64 * 1.08)?;
            let mut mesh = chart.configure_mesh();
            mesh.disable_x_mesh()
                .y_labels(4)
                .x_labels(11)
                .x_label_formatter(&|x| format!("{x:.1}"))
                .y_label_formatter(&|y| {
                    if y.fract() == 0.0 {
                        format!("{y:.0}")
                    } else {
                        String::new()
                    }
                })
                .max_light_lines(0)
                .label_style((FONT, TICK))
                .axis_desc_style((FONT, DESC))
                .y_desc("samples")
                .bold_line_style(RGBColor(225, 225, 225));
            if k == last {
                mesh.x_desc("λ (weight of the fine-tuned model θ₁)");
            }
            mesh.draw()?;
            if p.n == 0 {
                let (w, h) = area.dim_in_pixel();
                area.draw(&Text::new(
                    "no samples",
                    (w as i32 / 2, h as i32 / 2),
                    TextStyle::from((FONT, DESC).into_font())
                        .pos(Pos::new(HPos::Center, VPos::Center)),
                ))?;
                continue;
            }
            let colour = palette(k);
            let width = 1.0 / BINS as f64;
            chart.draw_series(p.counts.iter().enumerate().filter(|c| *c.1 > 0).map(
                |(b, &c)| {
                    let x0 = b as f64 * width;
                    Rectangle::new(
                        [(x0 + 0.002, 0.0), (x0 + width - 0.002, c as f64)],
                        colour.filled(),
                    )
                },
            ))?;
            chart.draw_series(DashedLineSeries::new(
                [(p.mean, 0.0), (p.mean, ymax as f64 * 1.08)],
                6,
                4,
                BLACK.stroke_width(2),
            ))?;
        }
        Ok(())
    }
}
