//! CLIP's image preprocessing, as OpenAI CLIP / open_clip users get it from PIL and torchvision:
//!
//! 1. resize so that the shorter side is `S` (long side `⌊S · long / short⌋`), bicubic;
//! 2. centre crop `S × S`, top-left at `round_half_even((H − S) / 2)`, `round_half_even((W − S) / 2)`;
//! 3. RGB in `[0, 1]` (`v / 255`), then `(x − mean) / std` per channel, laid out `[3, S, S]`.
//!
//! The resize reproduces PIL's `Image.resize(…, BICUBIC)` on 8-bit images exactly: a separable
//! convolution with the cubic kernel `a = −0.5` (support 2), widened by the scale factor when
//! downsampling (antialiasing), weights normalised per output pixel and rounded to 22-bit fixed
//! point, horizontal pass first with an 8-bit rounded intermediate. The tests compare it with PIL
//! (`scripts/make_vit_fixture.py`).
//!
//! Decoding (the `image` crate): grayscale images are converted to RGB by repeating the gray level
//! (as PIL's `convert("RGB")`), an alpha channel is dropped, 16-bit images are reduced to 8 bits,
//! palette images are expanded, CMYK JPEGs are converted to RGB by the decoder. PIL differs on two
//! rare inputs: it resizes palette images with nearest-neighbour and RGBA images with premultiplied
//! alpha before dropping it; this crate converts to RGB first.

use std::path::Path;

use crate::error::{Error, Result};

/// CLIP's per-channel normalisation mean (RGB), digits as OpenAI CLIP spells them.
#[allow(clippy::excessive_precision)]
pub const CLIP_MEAN: [f32; 3] = [0.48145466, 0.4578275, 0.40821073];
/// CLIP's per-channel normalisation standard deviation (RGB), digits as OpenAI CLIP spells them.
#[allow(clippy::excessive_precision)]
pub const CLIP_STD: [f32; 3] = [0.26862954, 0.26130258, 0.27577711];

/// An 8-bit RGB image, row-major `[height, width, 3]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RgbImage {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `height · width · 3` bytes, RGB interleaved.
    pub pixels: Vec<u8>,
}

impl RgbImage {
    /// Wraps raw RGB bytes; errors when `pixels.len() != height · width · 3` or a side is 0.
    pub fn new(width: usize, height: usize, pixels: Vec<u8>) -> Result<Self> {
        if width == 0 || height == 0 {
            return Err(Error::arg(
                "image",
                format!("empty image ({width}×{height})"),
            ));
        }
        if pixels.len() != width * height * 3 {
            return Err(Error::arg(
                "pixels",
                format!(
                    "{} bytes for a {width}×{height} RGB image ({} expected)",
                    pixels.len(),
                    width * height * 3
                ),
            ));
        }
        Ok(RgbImage {
            width,
            height,
            pixels,
        })
    }
}

/// Decodes a JPEG or PNG file to RGB (see the module doc for grayscale, alpha and CMYK).
/// Errors name the file.
pub fn load_image(path: impl AsRef<Path>) -> Result<RgbImage> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    decode_image(&bytes).map_err(|msg| Error::Image {
        path: path.to_path_buf(),
        msg,
    })
}

/// Decodes JPEG or PNG bytes to RGB; the error is a message (callers add the file name).
pub fn decode_image(bytes: &[u8]) -> std::result::Result<RgbImage, String> {
    let format =
        image::guess_format(bytes).map_err(|e| format!("unrecognised image format ({e})"))?;
    if !matches!(format, image::ImageFormat::Jpeg | image::ImageFormat::Png) {
        return Err(format!(
            "{format:?} images are not supported (JPEG and PNG are)"
        ));
    }
    let img = image::load_from_memory_with_format(bytes, format)
        .map_err(|e| format!("cannot decode {format:?}: {e}"))?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    if w == 0 || h == 0 {
        return Err(format!("empty image ({w}×{h})"));
    }
    let rgb = img.into_rgb8();
    Ok(RgbImage {
        width: w,
        height: h,
        pixels: rgb.into_raw(),
    })
}

const PRECISION_BITS: u32 = 32 - 8 - 2;

fn bicubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// Per output pixel: first input index and fixed-point weights (PIL's `precompute_coeffs` and
/// `normalize_coeffs_8bpc`).
fn coefficients(in_size: usize, out_size: usize) -> Vec<(usize, Vec<i32>)> {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = 2.0 * filterscale;
    (0..out_size)
        .map(|xx| {
            let center = (xx as f64 + 0.5) * scale;
            let ss = 1.0 / filterscale;
            // C casts truncate toward zero.
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
            let w: Vec<f64> = (xmin..xmax)
                .map(|x| bicubic((x as f64 - center + 0.5) * ss))
                .collect();
            let sum: f64 = w.iter().sum();
            let k = w
                .iter()
                .map(|&v| {
                    let v = if sum != 0.0 { v / sum } else { v };
                    let f = v * (1u32 << PRECISION_BITS) as f64;
                    if f < 0.0 {
                        (f - 0.5) as i32
                    } else {
                        (f + 0.5) as i32
                    }
                })
                .collect();
            (xmin, k)
        })
        .collect()
}

fn clip8(v: i64) -> u8 {
    (v >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Bicubic resize of an 8-bit RGB image to `out_w × out_h`, bit-exact with PIL's
/// `Image.resize((out_w, out_h), Image.BICUBIC)` (see the module doc).
pub fn resize_bicubic(img: &RgbImage, out_w: usize, out_h: usize) -> Result<RgbImage> {
    if out_w == 0 || out_h == 0 {
        return Err(Error::arg(
            "size",
            format!("cannot resize to {out_w}×{out_h}"),
        ));
    }
    let mut cur = img.clone();
    if out_w != cur.width {
        let k = coefficients(cur.width, out_w);
        let mut out = vec![0u8; out_w * cur.height * 3];
        for y in 0..cur.height {
            let row = &cur.pixels[y * cur.width * 3..(y + 1) * cur.width * 3];
            for (xx, (xmin, w)) in k.iter().enumerate() {
                for c in 0..3 {
                    let mut s: i64 = 1 << (PRECISION_BITS - 1);
                    for (i, &wi) in w.iter().enumerate() {
                        s += row[(xmin + i) * 3 + c] as i64 * wi as i64;
                    }
                    out[(y * out_w + xx) * 3 + c] = clip8(s);
                }
            }
        }
        cur = RgbImage {
            width: out_w,
            height: cur.height,
            pixels: out,
        };
    }
    if out_h != cur.height {
        let k = coefficients(cur.height, out_h);
        let stride = cur.width * 3;
        let mut out = vec![0u8; out_h * stride];
        for (yy, (ymin, w)) in k.iter().enumerate() {
            for x in 0..stride {
                let mut s: i64 = 1 << (PRECISION_BITS - 1);
                for (i, &wi) in w.iter().enumerate() {
                    s += cur.pixels[(ymin + i) * stride + x] as i64 * wi as i64;
                }
                out[yy * stride + x] = clip8(s);
            }
        }
        cur = RgbImage {
            width: cur.width,
            height: out_h,
            pixels: out,
        };
    }
    Ok(cur)
}

/// The size torchvision's `Resize(size)` gives a `width × height` image: shorter side `size`,
/// longer side `⌊size · long / short⌋`. Returns `(width, height)`.
pub fn resized_dims(width: usize, height: usize, size: usize) -> (usize, usize) {
    let (short, long) = if width <= height {
        (width, height)
    } else {
        (height, width)
    };
    let new_long = ((size * long) as f64 / short as f64) as usize;
    if width <= height {
        (size, new_long)
    } else {
        (new_long, size)
    }
}

/// Offset of a centre crop of `crop` out of `size`, torchvision's `int(round((size − crop) / 2))`
/// (round half to even).
pub fn crop_offset(size: usize, crop: usize) -> usize {
    ((size - crop) as f64 / 2.0).round_ties_even() as usize
}

/// The full CLIP transform of an RGB image into `out` (`[3, size, size]`, normalised).
pub fn preprocess_rgb(img: &RgbImage, size: usize, out: &mut [f32]) -> Result<()> {
    if size == 0 {
        return Err(Error::arg("size", "must be > 0"));
    }
    if out.len() != 3 * size * size {
        return Err(Error::arg(
            "out",
            format!("{} values, expected 3 × {size} × {size}", out.len()),
        ));
    }
    let (w, h) = resized_dims(img.width, img.height, size);
    let resized;
    let img = if (w, h) != (img.width, img.height) {
        resized = resize_bicubic(img, w, h)?;
        &resized
    } else {
        img
    };
    let (top, left) = (crop_offset(img.height, size), crop_offset(img.width, size));
    for c in 0..3 {
        let plane = &mut out[c * size * size..(c + 1) * size * size];
        for y in 0..size {
            let row = &img.pixels[((top + y) * img.width + left) * 3..];
            for x in 0..size {
                let v = row[x * 3 + c] as f32 / 255.0;
                plane[y * size + x] = (v - CLIP_MEAN[c]) / CLIP_STD[c];
            }
        }
    }
    Ok(())
}

/// Loads and preprocesses one image file into a new `[3, size, size]` buffer.
pub fn preprocess_file(path: impl AsRef<Path>, size: usize) -> Result<Vec<f32>> {
    let img = load_image(path)?;
    let mut out = vec![0.0; 3 * size * size];
    preprocess_rgb(&img, size, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torchvision_sizes_and_offsets() {
        assert_eq!(resized_dims(45, 37, 32), (38, 32)); // int(32·45/37) = int(38.92)
        assert_eq!(resized_dims(29, 52, 32), (32, 57)); // int(57.38)
        assert_eq!(resized_dims(640, 480, 224), (298, 224));
        assert_eq!(crop_offset(33, 32), 0); // round(0.5) = 0
        assert_eq!(crop_offset(35, 32), 2); // round(1.5) = 2
        assert_eq!(crop_offset(298, 224), 37);
    }

    #[test]
    fn resize_keeps_a_constant_image_and_identity_sizes() {
        let img = RgbImage::new(7, 5, [10u8, 200, 77].repeat(35)).unwrap();
        let r = resize_bicubic(&img, 3, 11).unwrap();
        assert!(r.pixels.chunks(3).all(|p| p == [10, 200, 77]));
        let noisy = RgbImage::new(4, 3, (0..36).map(|i| (i * 37 % 256) as u8).collect()).unwrap();
        assert_eq!(resize_bicubic(&noisy, 4, 3).unwrap(), noisy);
    }

    #[test]
    fn bicubic_kernel_by_hand() {
        assert_eq!(bicubic(0.0), 1.0);
        assert_eq!(bicubic(1.0), 0.0);
        assert_eq!(bicubic(2.0), 0.0);
        // a = -0.5: at 0.5, (1.5·0.5 − 2.5)·0.25 + 1 = 0.5625; at 1.5, ((−3.5)·1.5 + 8)·1.5 − 4 = 0.125 → ·a
        assert!((bicubic(0.5) - 0.5625).abs() < 1e-12);
        assert!((bicubic(1.5) + 0.0625).abs() < 1e-12);
    }

    #[test]
    fn bad_sizes_are_errors() {
        assert!(RgbImage::new(0, 3, vec![]).is_err());
        assert!(RgbImage::new(2, 2, vec![0; 11])
            .unwrap_err()
            .to_string()
            .contains("11 bytes"));
        let img = RgbImage::new(2, 2, vec![0; 12]).unwrap();
        assert!(preprocess_rgb(&img, 4, &mut [0.0; 10]).is_err());
    }
}
