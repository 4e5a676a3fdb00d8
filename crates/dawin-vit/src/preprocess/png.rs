//! PNG decoding (the `png` crate) to RGB as Pillow 13's `Image.open(f).convert("RGB")` does.
//!
//! Pillow opens a PNG in a mode set by its colour type and bit depth, and `convert("RGB")` then:
//! * grayscale of 1, 2, 4 bits (modes `1`, `L;2`, `L;4`): levels scaled to 8 bits (`× 255`,
//!   `× 85`, `× 17`) and replicated; 8 bits: replicated;
//! * grayscale of 16 bits (mode `I;16`): **clipped**, `min(v, 255)`, then replicated (Pillow's
//!   `I;16 → RGB` does not scale);
//! * RGB, RGBA, gray + alpha of 16 bits (raw modes `RGB;16B`, `RGBA;16B`, `LA;16B`): the high
//!   byte of each sample;
//! * alpha and `tRNS` transparency are dropped without compositing; palette images are looked up.
//!
//! Gamma, ICC profiles and the other ancillary chunks are ignored, as Pillow ignores them here.
//! An APNG decodes to its first frame.

use std::io::Cursor;

use png::{BitDepth, ColorType, Transformations};

use super::jpeg::MAX_PIXELS;

/// Decodes PNG `bytes` into RGB `out` (`raw` is scratch). Returns `(width, height)`.
pub(crate) fn decode(
    bytes: &[u8],
    out: &mut Vec<u8>,
    raw: &mut Vec<u8>,
) -> Result<(usize, usize), String> {
    let mut dec = png::Decoder::new(Cursor::new(bytes));
    // Our own pixel limit (Pillow's) replaces the crate's 64 MiB default.
    dec.set_limits(png::Limits { bytes: usize::MAX });
    // Palette → RGB(A), low bit depths → 8 bits (scaled), tRNS → an alpha channel (dropped).
    dec.set_transformations(Transformations::EXPAND);
    let mut reader = dec
        .read_info()
        .map_err(|e| format!("cannot decode PNG: {e}"))?;
    let info = reader.info();
    let (w, h) = (info.width as usize, info.height as usize);
    let (src_type, src_depth) = (info.color_type, info.bit_depth);
    if w == 0 || h == 0 {
        return Err(format!("empty image ({w}×{h})"));
    }
    if w * h > MAX_PIXELS {
        return Err(format!(
            "{w}×{h} pixels is over PIL's decompression-bomb limit ({MAX_PIXELS} pixels)"
        ));
    }
    let (out_type, out_depth) = reader.output_color_type();
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| format!("{w}×{h} PNG is too large"))?;
    raw.clear();
    raw.resize(size, 0);
    let frame = reader
        .next_frame(raw)
        .map_err(|e| format!("cannot decode PNG: {e}"))?;
    let channels = out_type.samples();
    let bytes_per_sample = match out_depth {
        BitDepth::Eight => 1,
        BitDepth::Sixteen => 2,
        d => return Err(format!("unexpected PNG output bit depth {d:?}")),
    };
    let gray = matches!(out_type, ColorType::Grayscale | ColorType::GrayscaleAlpha);
    // Pillow's `I;16 → RGB` clips; every other 16-bit mode keeps the high byte.
    let clip16 = src_type == ColorType::Grayscale && src_depth == BitDepth::Sixteen;
    let sample = |px: &[u8], c: usize| -> u8 {
        if bytes_per_sample == 1 {
            px[c]
        } else {
            let v = u16::from_be_bytes([px[2 * c], px[2 * c + 1]]);
            if clip16 {
                v.min(255) as u8
            } else {
                (v >> 8) as u8
            }
        }
    };
    out.clear();
    out.reserve(w * h * 3);
    let pixel_bytes = channels * bytes_per_sample;
    for row in raw.chunks_exact(frame.line_size).take(h) {
        for px in row[..w * pixel_bytes].chunks_exact(pixel_bytes) {
            if gray {
                let v = sample(px, 0);
                out.extend_from_slice(&[v, v, v]);
            } else {
                out.extend_from_slice(&[sample(px, 0), sample(px, 1), sample(px, 2)]);
            }
        }
    }
    if out.len() != w * h * 3 {
        return Err(format!(
            "PNG decoder returned {} bytes for {w}×{h} RGB",
            out.len()
        ));
    }
    Ok((w, h))
}
