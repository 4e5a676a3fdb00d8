//! JPEG decoding with libjpeg-turbo's decoder (the `mozjpeg-sys` crate builds MozJPEG, a
//! libjpeg-turbo fork whose decoder is libjpeg-turbo's, from source with the `cc` crate), set up
//! as Pillow sets it up for `Image.open(f).convert("RGB")`:
//!
//! * libjpeg's defaults: `JDCT_ISLOW` integer IDCT, fancy (triangle-filter) chroma upsampling,
//!   no DCT scaling (Pillow's draft mode is off), the JPEG colour space guessed by libjpeg from
//!   the JFIF/Adobe markers and component ids (YCbCr, RGB, grayscale, CMYK, YCCK);
//! * output grayscale for 1 component (then replicated to RGB, as Pillow's `L → RGB`), RGB for
//!   3 components, CMYK for 4 (libjpeg converts YCCK to CMYK); other counts are errors;
//! * CMYK is taken as Adobe-inverted, always (Pillow's raw mode `CMYK;I`: `v' = 255 − v`), then
//!   converted as Pillow's `cmyk2rgb`: `nk = 255 − k'`,
//!   `rgb = clip8(nk − ((t >> 8) + t) >> 8)` with `t = c' · nk + 128` per channel;
//! * the EXIF orientation tag is ignored (torchvision's `default_loader` does not transpose);
//! * a truncated file (libjpeg's "Premature end of JPEG file" warning, `JWRN_JPEG_EOF`) is an
//!   error, as Pillow's "image file is truncated"; other libjpeg warnings (for example extraneous
//!   bytes before a marker) are ignored, as Pillow ignores them.
//!
//! libjpeg-turbo's SIMD code (x86-64: NASM assembly) is bit-exact with its C code for these
//! settings; `mozjpeg-sys` uses it when `nasm` is on the PATH at build time and otherwise builds
//! the C code only, printing a cargo warning. Both were checked against Pillow 13.0.0
//! (libjpeg-turbo 3.2.0) on the committed fixtures and ~160 generated JPEGs.
//!
//! libjpeg reports fatal errors through `error_exit`, which must not return: ours unwinds with
//! [`std::panic::resume_unwind`] (no panic message; the C code is built with `-fexceptions`) and
//! [`JpegDecoder::decode`] catches it, resets the decompressor and returns the message.

use std::os::raw::{c_int, c_ulong};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

use mozjpeg_sys as sys;

extern "C" {
    /// libjpeg-turbo's SIMD dispatcher (`jsimd.c`, or `jsimd_none.c` returning 0 when built
    /// without SIMD): whether the ISLOW IDCT runs SIMD code on this CPU.
    fn jsimd_can_idct_islow() -> c_int;
}

/// Whether libjpeg-turbo's SIMD code is compiled in and used on this CPU.
pub(crate) fn simd_in_use() -> bool {
    // SAFETY: no arguments; reads the CPU features once (thread-local cache in libjpeg-turbo).
    unsafe { jsimd_can_idct_islow() != 0 }
}

/// The message of a libjpeg error, carried by the unwind out of `error_exit`.
struct JpegError(String);

fn message(cinfo: &mut sys::jpeg_common_struct) -> String {
    let mut buf = [0u8; 80];
    // SAFETY: `err` was set by `JpegDecoder::new` and outlives the decompressor. libjpeg's
    // `format_message(cinfo, char *buffer)` writes a NUL-terminated string of at most
    // JMSG_LENGTH_MAX = 80 bytes; the binding types the buffer as `&[u8; 80]`, so it is called
    // through a pointer-typed signature of the same ABI to let it write.
    unsafe {
        let err = &*cinfo.err;
        if let Some(f) = err.format_message {
            type Fmt = unsafe extern "C-unwind" fn(&mut sys::jpeg_common_struct, *mut u8);
            let f: Fmt = std::mem::transmute(f);
            f(cinfo, buf.as_mut_ptr());
        }
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

unsafe extern "C-unwind" fn error_exit(cinfo: &mut sys::jpeg_common_struct) {
    let msg = message(cinfo);
    resume_unwind(Box::new(JpegError(msg)));
}

unsafe extern "C-unwind" fn emit_message(cinfo: &mut sys::jpeg_common_struct, level: c_int) {
    // Level −1 is a warning; ≥ 0 are trace messages. Only a premature end of data is fatal.
    if level == -1 && (*cinfo.err).msg_code == sys::JWRN_JPEG_EOF as c_int {
        resume_unwind(Box::new(JpegError(
            "truncated JPEG: premature end of the data (PIL: image file is truncated)".into(),
        )));
    }
}

unsafe extern "C-unwind" fn output_message(_cinfo: &mut sys::jpeg_common_struct) {}

struct Inner {
    cinfo: sys::jpeg_decompress_struct,
    err: sys::jpeg_error_mgr,
}

/// A reusable libjpeg decompressor (one per thread; see the module doc).
pub(crate) struct JpegDecoder {
    inner: Box<Inner>,
}

// SAFETY: the decompressor and its error manager are owned by `inner` (the box keeps their
// addresses stable) and libjpeg keeps no per-object state outside them; it is used by one thread
// at a time through `&mut self`.
unsafe impl Send for JpegDecoder {}

impl Drop for JpegDecoder {
    fn drop(&mut self) {
        // SAFETY: created by `jpeg_CreateDecompress` in `new`.
        unsafe { sys::jpeg_destroy_decompress(&mut self.inner.cinfo) };
    }
}

/// The largest image Pillow opens: twice `Image.MAX_IMAGE_PIXELS` (above it, Pillow raises
/// `DecompressionBombError`).
pub(crate) const MAX_PIXELS: usize = 2 * (1024 * 1024 * 1024 / 4 / 3);

impl JpegDecoder {
    pub(crate) fn new() -> Result<Self, String> {
        // SAFETY: both structs are plain C data for which all-zero is the state libjpeg expects
        // before `jpeg_std_error` / `jpeg_CreateDecompress` fill them in.
        let mut inner: Box<Inner> = Box::new(unsafe { std::mem::zeroed() });
        let created = catch_unwind(AssertUnwindSafe(|| unsafe {
            sys::jpeg_std_error(&mut inner.err);
            inner.err.error_exit = Some(error_exit);
            inner.err.emit_message = Some(emit_message);
            inner.err.output_message = Some(output_message);
            inner.cinfo.common.err = &mut inner.err;
            sys::jpeg_CreateDecompress(
                &mut inner.cinfo,
                sys::JPEG_LIB_VERSION,
                std::mem::size_of::<sys::jpeg_decompress_struct>(),
            );
        }));
        match created {
            Ok(()) => Ok(JpegDecoder { inner }),
            Err(p) => match p.downcast::<JpegError>() {
                Ok(e) => Err(format!("cannot create a JPEG decoder: {}", e.0)),
                Err(p) => resume_unwind(p),
            },
        }
    }

    /// Decodes `bytes` into RGB `out` (`h · w · 3` bytes; `raw` is scratch for grayscale and
    /// CMYK). Returns `(width, height)`.
    pub(crate) fn decode(
        &mut self,
        bytes: &[u8],
        out: &mut Vec<u8>,
        raw: &mut Vec<u8>,
    ) -> Result<(usize, usize), String> {
        let result = catch_unwind(AssertUnwindSafe(|| self.decode_inner(bytes, out, raw)));
        let result = match result {
            Ok(r) => r,
            Err(p) => match p.downcast::<JpegError>() {
                Ok(e) => Err(e.0),
                Err(p) => resume_unwind(p),
            },
        };
        if result.is_err() {
            // SAFETY: valid after an error exit; returns the object to its idle state.
            unsafe { sys::jpeg_abort_decompress(&mut self.inner.cinfo) };
        }
        result
    }

    fn decode_inner(
        &mut self,
        bytes: &[u8],
        out: &mut Vec<u8>,
        raw: &mut Vec<u8>,
    ) -> Result<(usize, usize), String> {
        let cinfo = &mut self.inner.cinfo;
        // SAFETY: `cinfo` is a created decompressor; `bytes` outlives this call, which reads the
        // whole image (or aborts) before returning. Errors unwind to `decode`.
        unsafe {
            sys::jpeg_mem_src(cinfo, bytes.as_ptr(), bytes.len() as c_ulong);
            sys::jpeg_read_header(cinfo, 1);
            let (w, h) = (cinfo.image_width as usize, cinfo.image_height as usize);
            if w * h > MAX_PIXELS {
                return Err(format!(
                    "{w}×{h} pixels is over PIL's decompression-bomb limit ({MAX_PIXELS} pixels)"
                ));
            }
            let comps = cinfo.num_components;
            cinfo.out_color_space = match comps {
                1 => sys::J_COLOR_SPACE::JCS_GRAYSCALE,
                3 => sys::J_COLOR_SPACE::JCS_RGB,
                4 => sys::J_COLOR_SPACE::JCS_CMYK,
                n => {
                    return Err(format!(
                        "{n}-component JPEG (PIL reads 1, 3 or 4 components)"
                    ))
                }
            };
            // Pillow's settings (libjpeg's defaults, stated explicitly).
            cinfo.dct_method = sys::J_DCT_METHOD::JDCT_ISLOW;
            cinfo.do_fancy_upsampling = 1;
            cinfo.scale_num = 1;
            cinfo.scale_denom = 1;
            sys::jpeg_start_decompress(cinfo);
            let (ow, oh) = (cinfo.output_width as usize, cinfo.output_height as usize);
            let oc = cinfo.output_components as usize;
            if (ow, oh) != (w, h) || oc != comps as usize {
                return Err(format!(
                    "unexpected decoder output {ow}×{oh}×{oc} for a {w}×{h}×{comps} JPEG"
                ));
            }
            if w == 0 || h == 0 {
                return Err(format!("empty image ({w}×{h})"));
            }
            let target: &mut Vec<u8> = if oc == 3 { out } else { raw };
            target.clear();
            target.resize(w * h * oc, 0);
            let stride = w * oc;
            let mut rows = [std::ptr::null_mut::<u8>(); 16];
            while (cinfo.output_scanline as usize) < h {
                let first = cinfo.output_scanline as usize;
                let n = (h - first).min(rows.len());
                for (i, r) in rows[..n].iter_mut().enumerate() {
                    *r = target.as_mut_ptr().add((first + i) * stride);
                }
                let got = sys::jpeg_read_scanlines(cinfo, rows.as_mut_ptr(), n as _);
                if got == 0 {
                    return Err("the JPEG decoder returned no rows".into());
                }
            }
            sys::jpeg_finish_decompress(cinfo);
            match oc {
                1 => {
                    out.clear();
                    out.extend(raw.iter().flat_map(|&v| [v, v, v]));
                }
                4 => {
                    out.clear();
                    out.resize(w * h * 3, 0);
                    cmyk_to_rgb(raw, out);
                }
                _ => {}
            }
            Ok((w, h))
        }
    }
}

/// Pillow's conversion of a decoded Adobe CMYK JPEG to RGB: raw mode `CMYK;I` (`v' = 255 − v`)
/// then `cmyk2rgb` (see the module doc).
pub(crate) fn cmyk_to_rgb(cmyk: &[u8], rgb: &mut [u8]) {
    for (o, p) in rgb.chunks_exact_mut(3).zip(cmyk.chunks_exact(4)) {
        let k = 255 - p[3] as i32; // CMYK;I
        let nk = 255 - k;
        for c in 0..3 {
            let t = (255 - p[c] as i32) * nk + 128;
            let m = ((t >> 8) + t) >> 8;
            o[c] = (nk - m).clamp(0, 255) as u8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmyk_conversion_by_hand() {
        // Stored (inverted) 255 = no ink: white. K stored 0 = full black ink.
        let mut rgb = [0u8; 6];
        cmyk_to_rgb(&[255, 255, 255, 255, 10, 20, 30, 0], &mut rgb);
        assert_eq!(&rgb[..3], &[255, 255, 255]);
        assert_eq!(&rgb[3..], &[0, 0, 0]);
        // c' = 255 − 55 = 200, nk = 100: t = 200·100 + 128 = 20128, ((20128 >> 8) + 20128) >> 8
        // = (78 + 20128) >> 8 = 78; 100 − 78 = 22.
        cmyk_to_rgb(&[55, 255, 0, 100], &mut rgb[..3]);
        assert_eq!(rgb[0], 22);
        assert_eq!(rgb[1], 100); // no cyan ink: nk
        assert_eq!(rgb[2], 0); // full ink: t = 255·100 + 128 = 25628 → 100; 100 − 100
    }

    #[test]
    fn errors_are_messages_and_the_decoder_stays_usable() {
        let mut d = JpegDecoder::new().unwrap();
        let (mut out, mut raw) = (Vec::new(), Vec::new());
        let e = d
            .decode(b"\xff\xd8\xff\xe0garbage", &mut out, &mut raw)
            .unwrap_err();
        assert!(!e.is_empty(), "{e}");
        let e = d.decode(b"\xff\xd8", &mut out, &mut raw).unwrap_err();
        assert!(e.contains("truncated"), "{e}");
    }
}
