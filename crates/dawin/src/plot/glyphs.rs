//! PNG text: a plotters backend adapter that lays text out with `ab_glyph` itself.
//!
//! plotters 0.3.7 draws `ab_glyph` text without each glyph's side bearing and with its baseline
//! half a font size below the text's top, so PNG labels come out unevenly spaced and a few pixels
//! above their anchor (its SVG backend is unaffected: the viewer lays the text out). [`Glyphs`]
//! wraps the bitmap backend, passes every drawing call through, and draws text by placing
//! each glyph at its pen position (advance + kerning, bearings kept by `ab_glyph`'s outline
//! bounds) on a baseline from the font's metrics, so PNG text sits where the SVG's does.
use ab_glyph::{Font, FontRef, PxScale, ScaleFont};
use plotters_backend::text_anchor::{HPos, VPos};
use plotters_backend::{
    BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingBackend, DrawingErrorKind,
    FontStyle,
};
use std::sync::OnceLock;

/// Coverage gain: a pixel's ink is `min(1, DARKEN · coverage)`, a light stem darkening (as
/// FreeType and macOS apply) so that 1–2 px stems at 15–20 px sizes read black, not grey.
const DARKEN: f32 = 1.25;

/// The embedded DejaVu Sans, regular or bold.
fn font(style: FontStyle) -> &'static FontRef<'static> {
    static REGULAR: OnceLock<FontRef<'static>> = OnceLock::new();
    static BOLD: OnceLock<FontRef<'static>> = OnceLock::new();
    // `font_ready` parsed both faces before any drawing, so these cannot fail.
    let (cell, bytes): (_, fn() -> &'static [u8]) = match style {
        FontStyle::Bold => (&BOLD, dejavu::sans::bold),
        _ => (&REGULAR, dejavu::sans::regular),
    };
    cell.get_or_init(|| FontRef::try_from_slice(bytes()).expect("the embedded DejaVu Sans parses"))
}

/// A bitmap backend whose text is laid out here (see the module docs).
pub(super) struct Glyphs<B>(pub B);

impl<B: DrawingBackend> DrawingBackend for Glyphs<B> {
    type ErrorType = B::ErrorType;

    fn get_size(&self) -> (u32, u32) {
        self.0.get_size()
    }
    fn ensure_prepared(&mut self) -> Result<(), DrawingErrorKind<B::ErrorType>> {
        self.0.ensure_prepared()
    }
    fn present(&mut self) -> Result<(), DrawingErrorKind<B::ErrorType>> {
        self.0.present()
    }
    fn draw_pixel(
        &mut self,
        p: BackendCoord,
        c: BackendColor,
    ) -> Result<(), DrawingErrorKind<B::ErrorType>> {
        self.0.draw_pixel(p, c)
    }
    fn draw_line<S: BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        s: &S,
    ) -> Result<(), DrawingErrorKind<B::ErrorType>> {
        self.0.draw_line(from, to, s)
    }
    fn draw_rect<S: BackendStyle>(
        &mut self,
        a: BackendCoord,
        b: BackendCoord,
        s: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<B::ErrorType>> {
        self.0.draw_rect(a, b, s, fill)
    }
    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        s: &S,
    ) -> Result<(), DrawingErrorKind<B::ErrorType>> {
        self.0.draw_path(path, s)
    }
    fn draw_circle<S: BackendStyle>(
        &mut self,
        c: BackendCoord,
        r: u32,
        s: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<B::ErrorType>> {
        self.0.draw_circle(c, r, s, fill)
    }
    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        s: &S,
    ) -> Result<(), DrawingErrorKind<B::ErrorType>> {
        self.0.fill_polygon(vert, s)
    }
    fn blit_bitmap(
        &mut self,
        pos: BackendCoord,
        size: (u32, u32),
        src: &[u8],
    ) -> Result<(), DrawingErrorKind<B::ErrorType>> {
        self.0.blit_bitmap(pos, size, src)
    }

    /// Text at the SVG backend's size (`font-size = size / 1.24` px per em), anchored like it:
    /// horizontally by the advance width; vertically with the baseline at the anchor plus the
    /// ascent (top), plus half of ascent + descent (centre) or plus the descent (bottom), then
    /// turned by the style's rotation about the anchor.
    fn draw_text<S: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &S,
        pos: BackendCoord,
    ) -> Result<(), DrawingErrorKind<B::ErrorType>> {
        let color = style.color();
        if color.alpha == 0.0 {
            return Ok(());
        }
        let f = font(style.style());
        let em = (style.size() / 1.24) as f32;
        let scale = PxScale::from(em * f.height_unscaled() / f.units_per_em().unwrap_or(2048.0));
        let sf = f.as_scaled(scale);
        let mut pen = 0.0f32;
        let mut prev = None;
        let mut glyphs = Vec::with_capacity(text.len());
        for ch in text.chars() {
            let id = sf.glyph_id(ch);
            if let Some(p) = prev {
                pen += sf.kern(p, id);
            }
            glyphs.push(id.with_scale_and_position(scale, ab_glyph::point(pen, 0.0)));
            pen += sf.h_advance(id);
            prev = Some(id);
        }
        let anchor = style.anchor();
        let dx = match anchor.h_pos {
            HPos::Left => 0.0,
            HPos::Center => -pen / 2.0,
            HPos::Right => -pen,
        };
        let dy = match anchor.v_pos {
            VPos::Top => sf.ascent(),
            VPos::Center => (sf.ascent() + sf.descent()) / 2.0,
            VPos::Bottom => sf.descent(),
        };
        let turn = style.transform();
        for g in glyphs {
            let Some(outline) = f.outline_glyph(g) else {
                continue; // a space
            };
            let b = outline.px_bounds();
            let mut pixels = Vec::new();
            outline.draw(|x, y, c| pixels.push((x, y, c)));
            for (x, y, c) in pixels.into_iter().filter(|p| p.2 > 0.0) {
                let tx = (b.min.x + x as f32 + dx).round() as i32;
                let ty = (b.min.y + y as f32 + dy).round() as i32;
                let (rx, ry) = turn.transform(tx, ty);
                let ink = BackendColor {
                    alpha: color.alpha * (DARKEN * c).min(1.0) as f64,
                    rgb: color.rgb,
                };
                self.0.draw_pixel((pos.0 + rx, pos.1 + ry), ink)?;
            }
        }
        Ok(())
    }
}
