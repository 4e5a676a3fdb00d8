//! CLIP's image preprocessing, exactly as the PyTorch pipeline computes it: torchvision 0.29.2's
//! `datasets.folder.default_loader` (`Image.open(f).convert("RGB")`, Pillow 13.0.0) followed by
//! open_clip 3.3.0's eval transform `image_transform(S, is_train=False)` with its defaults
//! (`resize_mode="shortest"`, `interpolation="bicubic"`, OpenAI mean/std), i.e.
//! `Resize(S, BICUBIC)`, `CenterCrop(S)`, `convert("RGB")`, `ToTensor()`, `Normalize(mean, std)`:
//!
//! 1. **decode** to 8-bit RGB like Pillow: JPEG through libjpeg-turbo's decoder with Pillow's
//!    settings (`jpeg` submodule: ISLOW IDCT, fancy upsampling, Adobe CMYK rule, EXIF
//!    orientation not applied), PNG with Pillow's mode conversions (`png` submodule);
//! 2. **resize** so that the shorter side is `S` and the longer `⌊S · long / short⌋` (torchvision's
//!    `_compute_resized_output_size`, the division in f64), skipped when the size already is
//!    that, with Pillow's bicubic `resize` bit for bit, including Pillow 13's pass order
//!    (`resize` submodule);
//! 3. **centre crop** `S × S` at top `round((H − S) / 2)`, left `round((W − S) / 2)` (Python's
//!    `round`, half to even);
//! 4. **to tensor**: `x = v / 255` then `(x − mean) / std` per channel, each step in f32 as torch
//!    does, laid out `[3, S, S]`.
//!
//! The tests compare decoded pixels (bit for bit) and tensors (to 1e-6) with what
//! `scripts/make_pixel_fixtures.py` computes with the pinned Pillow, torchvision and open_clip.
//!
//! [`Preprocessor`] keeps its buffers, coefficient tables and JPEG decoder between images: use
//! one per thread. [`preprocess_file_into`] does that with a thread-local one.
//!
//! ```
//! use dawin_vit::preprocess::{Preprocessor, RgbImage};
//!
//! let img = RgbImage::new(40, 30, vec![128; 40 * 30 * 3])?;
//! let mut pre = Preprocessor::new();
//! let mut out = vec![0.0f32; 3 * 16 * 16];
//! pre.preprocess_rgb(&img, 16, &mut out)?;
//! assert!((out[0] - (128.0f32 / 255.0 - 0.48145466) / 0.26862954).abs() < 1e-6);
//! # Ok::<(), dawin_vit::Error>(())
//! ```

mod jpeg;
mod png;
mod resize;

use std::cell::RefCell;
use std::io::Read;
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
        check_rgb(width, height, pixels.len())?;
        Ok(RgbImage {
            width,
            height,
            pixels,
        })
    }
}

fn check_rgb(width: usize, height: usize, len: usize) -> Result<()> {
    if width == 0 || height == 0 {
        return Err(Error::arg(
            "image",
            format!("empty image ({width}×{height})"),
        ));
    }
    if len != width * height * 3 {
        return Err(Error::arg(
            "pixels",
            format!(
                "{len} bytes for a {width}×{height} RGB image ({} expected)",
                width * height * 3
            ),
        ));
    }
    Ok(())
}

/// The file formats recognised by their first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Jpeg,
    Png,
}

/// JPEG (`FF D8 FF`, as Pillow checks) or PNG by the signature; other formats are named.
fn sniff(bytes: &[u8]) -> std::result::Result<Format, String> {
    if bytes.is_empty() {
        return Err("empty file".into());
    }
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Ok(Format::Jpeg);
    }
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Ok(Format::Png);
    }
    let other = if bytes.starts_with(b"GIF8") {
        "a GIF image"
    } else if bytes.starts_with(b"BM") {
        "a BMP image"
    } else if bytes.starts_with(b"RIFF") && bytes.get(8..12) == Some(b"WEBP") {
        "a WebP image"
    } else if bytes.starts_with(b"II*\0") || bytes.starts_with(b"MM\0*") {
        "a TIFF image"
    } else {
        "not a recognised image"
    };
    Err(format!(
        "{other} (JPEG and PNG are supported; convert it to one of them)"
    ))
}

/// Whether JPEG decoding runs libjpeg-turbo's SIMD code: on x86-64 only when `nasm` was on the
/// PATH when `mozjpeg-sys` was built (`apt-get install nasm` before the first build; otherwise
/// the C code is built: same pixels, JPEG decoding about 1.5× slower) and the CPU has
/// SSE2/AVX2.
/// DCT scaling is never used (Pillow does not use it here).
pub fn jpeg_simd() -> bool {
    jpeg::simd_in_use()
}

/// Decodes JPEG or PNG bytes to RGB exactly as Pillow's `Image.open(f).convert("RGB")` (see the
/// module doc); the error is a message (callers add the file name).
pub fn decode_image(bytes: &[u8]) -> std::result::Result<RgbImage, String> {
    let mut pre = Preprocessor::new();
    let (w, h) = pre.decode(bytes)?;
    Ok(RgbImage {
        width: w,
        height: h,
        pixels: std::mem::take(&mut pre.rgb),
    })
}

/// Reads and decodes an image file (see [`decode_image`]). Errors name the file.
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

/// Bicubic resize of an 8-bit RGB image to `out_w × out_h`, bit-exact with Pillow 13.0's
/// `Image.resize((out_w, out_h), Image.BICUBIC)` (separable fixed-point passes; the vertical
/// pass first iff `out_h < H` and `H − out_h > 2 · (W − out_w)`; see the `resize` submodule).
pub fn resize_bicubic(img: &RgbImage, out_w: usize, out_h: usize) -> Result<RgbImage> {
    check_rgb(img.width, img.height, img.pixels.len())?;
    if out_w == 0 || out_h == 0 {
        return Err(Error::arg(
            "size",
            format!("cannot resize to {out_w}×{out_h}"),
        ));
    }
    let mut pixels = vec![0u8; out_w * out_h * 3];
    let win = resize::Window {
        x: 0,
        y: 0,
        w: out_w,
        h: out_h,
    };
    resize::resample_window(
        &img.pixels,
        img.width,
        img.height,
        out_w,
        out_h,
        win,
        &mut resize::Scratch::default(),
        &mut pixels,
    );
    Ok(RgbImage {
        width: out_w,
        height: out_h,
        pixels,
    })
}

/// The size torchvision's `Resize(size)` gives a `width × height` image: shorter side `size`,
/// longer side `⌊size · long / short⌋` (`int(size * long / short)`, the division in f64).
/// Returns `(width, height)`.
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

/// Decoding, resizing and normalising with reusable buffers: one per thread (it is `Send`).
/// Every method gives the same values as the free functions of this module.
pub struct Preprocessor {
    file: Vec<u8>,
    rgb: Vec<u8>,
    raw: Vec<u8>,
    crop: Vec<u8>,
    jpeg: Option<jpeg::JpegDecoder>,
    resize: resize::Scratch,
    /// `lut[c][v] = (v / 255 − mean[c]) / std[c]`, each operation in f32.
    lut: Box<[[f32; 256]; 3]>,
}

impl Default for Preprocessor {
    fn default() -> Self {
        Self::new()
    }
}

impl Preprocessor {
    /// A preprocessor with empty buffers.
    pub fn new() -> Self {
        let mut lut = Box::new([[0.0f32; 256]; 3]);
        for (c, table) in lut.iter_mut().enumerate() {
            for (v, t) in table.iter_mut().enumerate() {
                // torchvision: `img.to(float32).div(255)`, then `Normalize`: `sub_(mean).div_(std)`.
                *t = (v as f32 / 255.0 - CLIP_MEAN[c]) / CLIP_STD[c];
            }
        }
        Preprocessor {
            file: Vec::new(),
            rgb: Vec::new(),
            raw: Vec::new(),
            crop: Vec::new(),
            jpeg: None,
            resize: resize::Scratch::default(),
            lut,
        }
    }

    /// Decodes into the internal RGB buffer; returns `(width, height)`.
    fn decode(&mut self, bytes: &[u8]) -> std::result::Result<(usize, usize), String> {
        match sniff(bytes)? {
            Format::Jpeg => {
                if self.jpeg.is_none() {
                    self.jpeg = Some(jpeg::JpegDecoder::new()?);
                }
                let dec = self.jpeg.as_mut().expect("created above");
                dec.decode(bytes, &mut self.rgb, &mut self.raw)
            }
            Format::Png => png::decode(bytes, &mut self.rgb, &mut self.raw),
        }
    }

    /// Decodes JPEG or PNG `bytes` and writes the CLIP transform at side `size` into `out`
    /// (`[3, size, size]`); the error is a message (callers add the file name).
    pub fn preprocess_bytes(
        &mut self,
        bytes: &[u8],
        size: usize,
        out: &mut [f32],
    ) -> std::result::Result<(), String> {
        check_out(size, out).map_err(|e| e.to_string())?;
        let (w, h) = self.decode(bytes)?;
        let rgb = std::mem::take(&mut self.rgb);
        self.transform(&rgb, w, h, size, out);
        self.rgb = rgb;
        Ok(())
    }

    /// Reads, decodes and preprocesses an image file into `out` (`[3, size, size]`). Errors
    /// name the file.
    pub fn preprocess_file(
        &mut self,
        path: impl AsRef<Path>,
        size: usize,
        out: &mut [f32],
    ) -> Result<()> {
        let path = path.as_ref();
        check_out(size, out)?;
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = std::mem::take(&mut self.file);
        file.clear();
        let read = std::fs::File::open(path).and_then(|mut f| f.read_to_end(&mut file));
        let result = match read {
            Ok(_) => self
                .preprocess_bytes(&file, size, out)
                .map_err(|msg| Error::Image {
                    path: path.to_path_buf(),
                    msg,
                }),
            Err(e) => Err(io(e)),
        };
        self.file = file;
        result
    }

    /// The CLIP transform of an RGB image into `out` (`[3, size, size]`).
    pub fn preprocess_rgb(&mut self, img: &RgbImage, size: usize, out: &mut [f32]) -> Result<()> {
        check_rgb(img.width, img.height, img.pixels.len())?;
        check_out(size, out)?;
        self.transform(&img.pixels, img.width, img.height, size, out);
        Ok(())
    }

    /// Resize (only the crop window is computed), centre crop and normalisation.
    fn transform(&mut self, rgb: &[u8], w: usize, h: usize, size: usize, out: &mut [f32]) {
        let (rw, rh) = resized_dims(w, h, size);
        let win = resize::Window {
            x: crop_offset(rw, size),
            y: crop_offset(rh, size),
            w: size,
            h: size,
        };
        self.crop.clear();
        self.crop.resize(size * size * 3, 0);
        resize::resample_window(rgb, w, h, rw, rh, win, &mut self.resize, &mut self.crop);
        let plane = size * size;
        let (r, rest) = out.split_at_mut(plane);
        let (g, b) = rest.split_at_mut(plane);
        let [lr, lg, lb] = &*self.lut;
        for (i, px) in self.crop.chunks_exact(3).enumerate() {
            r[i] = lr[px[0] as usize];
            g[i] = lg[px[1] as usize];
            b[i] = lb[px[2] as usize];
        }
    }
}

fn check_out(size: usize, out: &[f32]) -> Result<()> {
    if size == 0 {
        return Err(Error::arg("size", "must be > 0"));
    }
    if out.len() != 3 * size * size {
        return Err(Error::arg(
            "out",
            format!("{} values, expected 3 × {size} × {size}", out.len()),
        ));
    }
    Ok(())
}

/// The full CLIP transform of an RGB image into `out` (`[3, size, size]`, normalised).
pub fn preprocess_rgb(img: &RgbImage, size: usize, out: &mut [f32]) -> Result<()> {
    Preprocessor::new().preprocess_rgb(img, size, out)
}

/// Loads and preprocesses one image file into a new `[3, size, size]` buffer.
pub fn preprocess_file(path: impl AsRef<Path>, size: usize) -> Result<Vec<f32>> {
    let mut out = vec![0.0; 3 * size * size];
    preprocess_file_into(path, size, &mut out)?;
    Ok(out)
}

thread_local! {
    static THREAD_PREPROCESSOR: RefCell<Preprocessor> = RefCell::new(Preprocessor::new());
}

/// Loads and preprocesses one image file into `out` (`[3, size, size]`) with this thread's
/// [`Preprocessor`], so that a pool of threads reuses buffers across images. Errors name the file.
pub fn preprocess_file_into(path: impl AsRef<Path>, size: usize, out: &mut [f32]) -> Result<()> {
    THREAD_PREPROCESSOR.with(|p| match p.try_borrow_mut() {
        Ok(mut p) => p.preprocess_file(path, size, out),
        // Re-entered on this thread (not possible today): use a fresh one.
        Err(_) => Preprocessor::new().preprocess_file(path, size, out),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torchvision_sizes_and_offsets() {
        assert_eq!(resized_dims(45, 37, 32), (38, 32)); // int(32·45/37) = int(38.92)
        assert_eq!(resized_dims(29, 52, 32), (32, 57)); // int(57.38)
        assert_eq!(resized_dims(640, 480, 224), (298, 224));
        assert_eq!(resized_dims(1, 50, 32), (32, 1600));
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
    fn normalisation_and_layout_by_hand() {
        // A 2×1 image already at size 1 on its short side: resized to (2, 1), crop x = round(0.5)
        // = 0 → the first pixel.
        let img = RgbImage::new(2, 1, vec![0, 255, 51, 9, 9, 9]).unwrap();
        let mut out = [0.0f32; 3];
        preprocess_rgb(&img, 1, &mut out).unwrap();
        let want = [
            (0.0f32 - CLIP_MEAN[0]) / CLIP_STD[0],
            (1.0f32 - CLIP_MEAN[1]) / CLIP_STD[1],
            (51.0f32 / 255.0 - CLIP_MEAN[2]) / CLIP_STD[2],
        ];
        assert_eq!(out, want);
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert!(RgbImage::new(0, 3, vec![]).is_err());
        assert!(RgbImage::new(2, 2, vec![0; 11])
            .unwrap_err()
            .to_string()
            .contains("11 bytes"));
        let img = RgbImage::new(2, 2, vec![0; 12]).unwrap();
        assert!(preprocess_rgb(&img, 4, &mut [0.0; 10]).is_err());
        assert!(decode_image(b"").unwrap_err().contains("empty"));
        assert!(decode_image(b"GIF89a....").unwrap_err().contains("GIF"));
        assert!(decode_image(b"hello")
            .unwrap_err()
            .contains("not a recognised"));
    }
}
