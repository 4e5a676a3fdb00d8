//! Pillow's bicubic resampling of 8-bit RGB, bit for bit (Pillow 13.0.0, `src/libImaging/Resample.c`).
//!
//! Per axis (`precompute_coeffs` + `normalize_coeffs_8bpc`), for an input of `n` pixels resized to
//! `m`: `scale = n / m`, `filterscale = max(scale, 1)`, `support = 2 · filterscale` (the cubic
//! kernel `a = −0.5` has support 2; widened when downsampling, i.e. antialiasing). Output pixel
//! `o` has `center = (o + 0.5) · scale`, taps `x ∈ [xmin, xmax)` with
//! `xmin = max(0, trunc(center − support + 0.5))`, `xmax = min(n, trunc(center + support + 0.5))`,
//! weights `w_x = cubic((x − center + 0.5) / filterscale)` (all in f64, in this order), divided by
//! their sum `Σ w` (accumulated in tap order, skipped when 0), then rounded to 22-bit fixed point
//! away from zero: `trunc(w · 2²² ± 0.5)`. A pass computes `clip8((2²¹ + Σ p_x · k_x) >> 22)`
//! in 32-bit integers per channel, so the intermediate image of a two-pass resize is 8-bit.
//!
//! Pass order (Pillow 13.0, pull request 9549 "If height is scaled down significantly more than
//! width, resize vertically first"): vertical first iff `out_h < in_h` and
//! `in_h − out_h > 2 · (in_w − out_w)`, horizontal first otherwise (Pillow ≤ 12 was always
//! horizontal first). The rule was read from the pull request and is confirmed against the
//! Pillow 13.0.0 wheel by `scripts/make_pixel_fixtures.py` on ~400 random resizes (Pillow's
//! result compared with its single-axis resizes composed in each order); the fixtures pin both
//! orders. A pass is skipped when that side keeps its size. For torchvision's
//! shorter-side resize the vertical-first order happens when a portrait image taller than about
//! twice its width is downscaled.
//!
//! Only the output pixels of a window are computed (the centre crop), which is exact: every
//! output pixel of a pass depends only on its own taps. Both passes are integer loops written
//! to vectorise (the horizontal one over blocks of 8 transposed rows) and are compiled a second
//! time for AVX2, chosen at run time; integer sums do not depend on the order, so every path
//! gives Pillow's bytes (the unit tests compare them with the plain loop).

use std::sync::Arc;

/// Fixed-point precision of the weights (Pillow's `PRECISION_BITS = 32 − 8 − 2`).
const PRECISION_BITS: u32 = 32 - 8 - 2;
const HALF: i32 = 1 << (PRECISION_BITS - 1);

/// The bicubic convolution kernel, `a = −0.5` (Pillow's `bicubic_filter`).
pub(crate) fn bicubic(x: f64) -> f64 {
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

/// Taps of one axis: for output pixel `o`, the first input index `start[o]`, the tap count
/// `len[o]` and the fixed-point weights `k[o · ksize ..][.. len[o]]`.
#[derive(Debug)]
pub(crate) struct Coeffs {
    ksize: usize,
    start: Vec<usize>,
    len: Vec<usize>,
    k: Vec<i32>,
}

impl Coeffs {
    /// Pillow's coefficients for resizing `in_size` pixels to `out_size` (both > 0).
    pub(crate) fn new(in_size: usize, out_size: usize) -> Coeffs {
        let scale = in_size as f64 / out_size as f64;
        let filterscale = scale.max(1.0);
        let support = 2.0 * filterscale;
        let ksize = support.ceil() as usize * 2 + 1;
        let inv = 1.0 / filterscale;
        let mut c = Coeffs {
            ksize,
            start: Vec::with_capacity(out_size),
            len: Vec::with_capacity(out_size),
            k: vec![0; out_size * ksize],
        };
        let mut w = vec![0.0f64; ksize];
        for o in 0..out_size {
            let center = (o as f64 + 0.5) * scale;
            // C casts truncate toward zero.
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
            let n = xmax.saturating_sub(xmin);
            let mut sum = 0.0f64;
            for (i, wi) in w[..n].iter_mut().enumerate() {
                *wi = bicubic(((i + xmin) as f64 - center + 0.5) * inv);
                sum += *wi;
            }
            let k = &mut c.k[o * ksize..o * ksize + n];
            for (ki, &wi) in k.iter_mut().zip(&w[..n]) {
                let v = if sum != 0.0 { wi / sum } else { wi };
                let f = v * (1u32 << PRECISION_BITS) as f64;
                *ki = if v < 0.0 {
                    (f - 0.5) as i32
                } else {
                    (f + 0.5) as i32
                };
            }
            c.start.push(xmin);
            c.len.push(n);
        }
        c
    }

    /// Input range `[first, last)` used by the outputs `outs`.
    fn span(&self, outs: std::ops::Range<usize>) -> (usize, usize) {
        let first = outs.clone().map(|o| self.start[o]).min().unwrap_or(0);
        let last = outs.map(|o| self.start[o] + self.len[o]).max().unwrap_or(0);
        (first, last.max(first))
    }

    fn taps(&self, o: usize) -> (usize, &[i32]) {
        let base = o * self.ksize;
        (self.start[o], &self.k[base..base + self.len[o]])
    }
}

#[inline]
fn clip8(v: i32) -> u8 {
    (v >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Whether Pillow 13 runs the vertical pass first (see the module doc).
pub(crate) fn vertical_first(in_w: usize, in_h: usize, out_w: usize, out_h: usize) -> bool {
    out_h < in_h && (in_h - out_h) as i64 > 2 * (in_w as i64 - out_w as i64)
}

/// A small cache of coefficient tables keyed by `(in, out)`: datasets repeat a few sizes.
#[derive(Default)]
pub(crate) struct CoeffCache {
    entries: Vec<((usize, usize), Arc<Coeffs>)>,
}

impl CoeffCache {
    const CAPACITY: usize = 16;

    pub(crate) fn get(&mut self, in_size: usize, out_size: usize) -> Arc<Coeffs> {
        if let Some(i) = self
            .entries
            .iter()
            .position(|(key, _)| *key == (in_size, out_size))
        {
            let hit = self.entries.remove(i);
            let c = hit.1.clone();
            self.entries.push(hit);
            return c;
        }
        let c = Arc::new(Coeffs::new(in_size, out_size));
        if self.entries.len() == Self::CAPACITY {
            self.entries.remove(0);
        }
        self.entries.push(((in_size, out_size), c.clone()));
        c
    }
}

/// Reusable buffers of [`resample_window`].
#[derive(Default)]
pub(crate) struct Scratch {
    pub(crate) coeffs: CoeffCache,
    tmp: Vec<u8>,
    acc: Vec<i32>,
}

/// A rectangle of the output image: columns `x .. x + w`, rows `y .. y + h`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Window {
    pub(crate) x: usize,
    pub(crate) y: usize,
    pub(crate) w: usize,
    pub(crate) h: usize,
}

/// Horizontal pass: rows `rows` of `src` (`src_w` pixels wide, RGB; its column 0 is input
/// column `shift`) through output columns `cols` into `dst` (`rows.len() × cols.len()` pixels).
#[allow(clippy::too_many_arguments)]
fn horizontal(
    src: &[u8],
    src_w: usize,
    rows: std::ops::Range<usize>,
    c: &Coeffs,
    shift: usize,
    cols: std::ops::Range<usize>,
    dst: &mut [u8],
    block: &mut Vec<i32>,
) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked above).
        unsafe { horizontal_avx2(src, src_w, rows, c, shift, cols, dst, block) };
        return;
    }
    horizontal_blocked(src, src_w, rows, c, shift, cols, dst, block);
}

/// [`horizontal_blocked`] compiled for AVX2 (integer arithmetic: the same results).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
unsafe fn horizontal_avx2(
    src: &[u8],
    src_w: usize,
    rows: std::ops::Range<usize>,
    c: &Coeffs,
    shift: usize,
    cols: std::ops::Range<usize>,
    dst: &mut [u8],
    block: &mut Vec<i32>,
) {
    horizontal_blocked(src, src_w, rows, c, shift, cols, dst, block);
}

/// Rows processed together by [`horizontal_blocked`] (one vector lane each).
const LANES: usize = 8;

/// The horizontal pass on blocks of [`LANES`] rows: the block's input columns are transposed
/// into `block` (`[column][channel][lane]`, i32) so that every tap is one vector multiply-add
/// over the block's rows; the remaining rows go through [`horizontal_scalar`]. Same sums, same
/// results.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn horizontal_blocked(
    src: &[u8],
    src_w: usize,
    rows: std::ops::Range<usize>,
    c: &Coeffs,
    shift: usize,
    cols: std::ops::Range<usize>,
    dst: &mut [u8],
    block: &mut Vec<i32>,
) {
    let dst_stride = cols.len() * 3;
    let full = rows.len() / LANES * LANES;
    let (x_first, x_last) = c.span(cols.clone());
    let (lx0, lx1) = (x_first - shift, x_last - shift);
    block.clear();
    block.resize((lx1 - lx0) * 3 * LANES, 0);
    for b in (0..full).step_by(LANES) {
        for lane in 0..LANES {
            let r = rows.start + b + lane;
            let row = &src[(r * src_w + lx0) * 3..(r * src_w + lx1) * 3];
            for (v, &p) in block.iter_mut().skip(lane).step_by(LANES).zip(row) {
                *v = p as i32;
            }
        }
        for (j, o) in cols.clone().enumerate() {
            let (start, k) = c.taps(o);
            let base = (start - shift - lx0) * 3;
            for ch in 0..3 {
                let mut acc = [HALF; LANES];
                for (t, &w) in k.iter().enumerate() {
                    let at = (base + t * 3 + ch) * LANES;
                    let v: &[i32; LANES] = block[at..at + LANES].try_into().expect("LANES");
                    for (a, &x) in acc.iter_mut().zip(v) {
                        *a += x * w;
                    }
                }
                for (l, &a) in acc.iter().enumerate() {
                    dst[(b + l) * dst_stride + j * 3 + ch] = clip8(a);
                }
            }
        }
    }
    horizontal_scalar(
        src,
        src_w,
        rows.start + full..rows.end,
        c,
        shift,
        cols,
        &mut dst[full * dst_stride..],
    );
}

/// The horizontal pass row by row, pixel by pixel (Pillow's loop).
fn horizontal_scalar(
    src: &[u8],
    src_w: usize,
    rows: std::ops::Range<usize>,
    c: &Coeffs,
    shift: usize,
    cols: std::ops::Range<usize>,
    dst: &mut [u8],
) {
    let dst_stride = cols.len() * 3;
    for (r, out_row) in rows.zip(dst.chunks_exact_mut(dst_stride)) {
        let row = &src[r * src_w * 3..(r + 1) * src_w * 3];
        for (o, px) in cols.clone().zip(out_row.chunks_exact_mut(3)) {
            let (start, k) = c.taps(o);
            let start = start - shift;
            let (mut s0, mut s1, mut s2) = (HALF, HALF, HALF);
            for (&w, p) in k.iter().zip(row[start * 3..].chunks_exact(3)) {
                s0 += p[0] as i32 * w;
                s1 += p[1] as i32 * w;
                s2 += p[2] as i32 * w;
            }
            px[0] = clip8(s0);
            px[1] = clip8(s1);
            px[2] = clip8(s2);
        }
    }
}

/// Vertical pass: output rows `rows` from `src` (rows indexed from `row0`, `src_w` pixels wide),
/// columns `x0 .. x0 + w`, into `dst` (`rows.len() × w` pixels).
#[allow(clippy::too_many_arguments)]
fn vertical(
    src: &[u8],
    src_w: usize,
    row0: usize,
    c: &Coeffs,
    rows: std::ops::Range<usize>,
    x0: usize,
    w: usize,
    acc: &mut Vec<i32>,
    dst: &mut [u8],
) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked above).
        unsafe { vertical_avx2(src, src_w, row0, c, rows, x0, w, acc, dst) };
        return;
    }
    vertical_impl(src, src_w, row0, c, rows, x0, w, acc, dst);
}

/// [`vertical_impl`] compiled for AVX2 (integer arithmetic: the same results).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
unsafe fn vertical_avx2(
    src: &[u8],
    src_w: usize,
    row0: usize,
    c: &Coeffs,
    rows: std::ops::Range<usize>,
    x0: usize,
    w: usize,
    acc: &mut Vec<i32>,
    dst: &mut [u8],
) {
    vertical_impl(src, src_w, row0, c, rows, x0, w, acc, dst);
}

/// The vertical pass: per output row, every tap adds one input row (a vector loop).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn vertical_impl(
    src: &[u8],
    src_w: usize,
    row0: usize,
    c: &Coeffs,
    rows: std::ops::Range<usize>,
    x0: usize,
    w: usize,
    acc: &mut Vec<i32>,
    dst: &mut [u8],
) {
    let n = w * 3;
    acc.clear();
    acc.resize(n, 0);
    for (o, out_row) in rows.zip(dst.chunks_exact_mut(n)) {
        let (start, k) = c.taps(o);
        acc.fill(HALF);
        for (t, &wt) in k.iter().enumerate() {
            let r = start + t - row0;
            let line = &src[(r * src_w + x0) * 3..(r * src_w + x0) * 3 + n];
            for (a, &p) in acc.iter_mut().zip(line) {
                *a += p as i32 * wt;
            }
        }
        for (d, &a) in out_row.iter_mut().zip(acc.iter()) {
            *d = clip8(a);
        }
    }
}

/// The pixels of `win` of Pillow's `resize((out_w, out_h), BICUBIC)` of the RGB image `src`
/// (`in_w × in_h`), written to `dst` (`win.h × win.w × 3` bytes, row-major). Bit-exact with
/// Pillow 13.0 (see the module doc). The window must lie inside the output.
#[allow(clippy::too_many_arguments)]
pub(crate) fn resample_window(
    src: &[u8],
    in_w: usize,
    in_h: usize,
    out_w: usize,
    out_h: usize,
    win: Window,
    scratch: &mut Scratch,
    dst: &mut [u8],
) {
    debug_assert_eq!(src.len(), in_w * in_h * 3);
    debug_assert!(win.x + win.w <= out_w && win.y + win.h <= out_h);
    debug_assert_eq!(dst.len(), win.w * win.h * 3);
    let cols = win.x..win.x + win.w;
    let rows = win.y..win.y + win.h;
    let need_h = out_w != in_w;
    let need_v = out_h != in_h;
    let Scratch { coeffs, tmp, acc } = scratch;
    match (need_h, need_v) {
        (false, false) => {
            for (r, d) in rows.zip(dst.chunks_exact_mut(win.w * 3)) {
                let s = (r * in_w + win.x) * 3;
                d.copy_from_slice(&src[s..s + win.w * 3]);
            }
        }
        (true, false) => {
            let ch = coeffs.get(in_w, out_w);
            horizontal(src, in_w, rows, &ch, 0, cols, dst, acc);
        }
        (false, true) => {
            let cv = coeffs.get(in_h, out_h);
            vertical(src, in_w, 0, &cv, rows, win.x, win.w, acc, dst);
        }
        (true, true) => {
            let ch = coeffs.get(in_w, out_w);
            let cv = coeffs.get(in_h, out_h);
            if vertical_first(in_w, in_h, out_w, out_h) {
                // Vertical pass over the input columns the window's horizontal taps read.
                let (x_first, x_last) = ch.span(cols.clone());
                let tw = x_last - x_first;
                tmp.clear();
                tmp.resize(win.h * tw * 3, 0);
                vertical(src, in_w, 0, &cv, rows, x_first, tw, acc, tmp);
                // Horizontal pass on that strip; its column 0 is input column x_first.
                horizontal(tmp, tw, 0..win.h, &ch, x_first, cols, dst, acc);
            } else {
                // Horizontal pass over the input rows the window's vertical taps read.
                let (y_first, y_last) = cv.span(rows.clone());
                let th = y_last - y_first;
                tmp.clear();
                tmp.resize(th * win.w * 3, 0);
                horizontal(src, in_w, y_first..y_last, &ch, 0, cols, tmp, acc);
                vertical(tmp, win.w, y_first, &cv, rows, 0, win.w, acc, dst);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bicubic_kernel_by_hand() {
        assert_eq!(bicubic(0.0), 1.0);
        assert_eq!(bicubic(1.0), 0.0);
        assert_eq!(bicubic(2.0), 0.0);
        // a = −0.5: at 0.5, (1.5·0.5 − 2.5)·0.25 + 1 = 0.5625; at 1.5, ((1.5 − 5)·1.5 + 8)·1.5 − 4
        // = 0.125, times a: −0.0625.
        assert!((bicubic(0.5) - 0.5625).abs() < 1e-12);
        assert!((bicubic(1.5) + 0.0625).abs() < 1e-12);
        assert_eq!(bicubic(-0.5), bicubic(0.5));
    }

    #[test]
    fn weights_sum_to_one_in_fixed_point_and_upscaling_taps_by_hand() {
        // 2 → 4 (scale 0.5, support 2): output 0 has center 0.25, taps x ∈ [0, 2) (xmin =
        // trunc(−1.25) → 0, xmax = trunc(2.75) = 2) at (x − 0.25 + 0.5): w0 = cubic(0.25) =
        // (1.5·0.25 − 2.5)·0.0625 + 1 = 0.8671875, w1 = cubic(1.25) = −0.5·(3.3125·1.25 − 4)
        // = −0.0703125, normalised by their sum.
        let c = Coeffs::new(2, 4);
        let (start, k) = c.taps(0);
        assert_eq!((start, k.len()), (0, 2));
        let (w0, w1) = (bicubic(0.25), bicubic(1.25));
        assert_eq!(w0, 0.8671875);
        assert_eq!(w1, -0.0703125);
        assert_eq!(k[1], (w1 / (w0 + w1) * 4194304.0 - 0.5) as i32);
        let want0 = (w0 / (w0 + w1) * 4194304.0 + 0.5) as i32;
        assert_eq!(k[0], want0);
        for (n, m) in [(500, 224), (37, 64), (1, 32), (375, 224), (7, 3)] {
            let c = Coeffs::new(n, m);
            for o in 0..m {
                let s: i32 = c.taps(o).1.iter().sum();
                assert!((s - (1 << 22)).abs() <= 8, "{n}→{m} output {o}: {s}");
            }
        }
    }

    #[test]
    fn pass_order_rule_of_pillow_13() {
        // Probed on the Pillow 13.0.0 wheel (see the module doc).
        assert!(vertical_first(40, 30, 39, 10)); // 20 > 2
        assert!(!vertical_first(40, 30, 30, 10)); // 20 > 20 is false
        assert!(vertical_first(20, 40, 10, 19)); // 21 > 20
        assert!(!vertical_first(30, 40, 15, 20)); // 20 > 30 is false
        assert!(vertical_first(40, 30, 45, 29)); // width grows, height shrinks
        assert!(!vertical_first(40, 30, 45, 31)); // height grows
    }

    fn full(src: &[u8], w: usize, h: usize, ow: usize, oh: usize) -> Vec<u8> {
        let mut out = vec![0; ow * oh * 3];
        let win = Window {
            x: 0,
            y: 0,
            w: ow,
            h: oh,
        };
        resample_window(src, w, h, ow, oh, win, &mut Scratch::default(), &mut out);
        out
    }

    #[test]
    fn a_window_equals_the_same_pixels_of_the_full_resize() {
        let (w, h) = (23, 61);
        let src: Vec<u8> = (0..w * h * 3).map(|i| (i * 7919 % 251) as u8).collect();
        for (ow, oh) in [(9, 20), (9, 40), (30, 20), (23, 30), (11, 61), (40, 90)] {
            let all = full(&src, w, h, ow, oh);
            let win = Window {
                x: ow / 3,
                y: oh / 4,
                w: ow - ow / 3 - 1,
                h: oh / 2,
            };
            let mut part = vec![0; win.w * win.h * 3];
            let mut scratch = Scratch::default();
            resample_window(&src, w, h, ow, oh, win, &mut scratch, &mut part);
            for r in 0..win.h {
                let a =
                    &all[((win.y + r) * ow + win.x) * 3..((win.y + r) * ow + win.x + win.w) * 3];
                assert_eq!(
                    a,
                    &part[r * win.w * 3..(r + 1) * win.w * 3],
                    "{ow}×{oh} row {r}"
                );
            }
        }
    }

    #[test]
    fn blocked_and_avx2_horizontal_passes_equal_the_scalar_loop() {
        let (w, h) = (37, 21); // 21 rows: two blocks of 8 and a tail of 5
        let src: Vec<u8> = (0..w * h * 3)
            .map(|i| ((i * 2654435761usize) >> 7) as u8)
            .collect();
        for out_w in [5, 20, 36, 80] {
            let c = Coeffs::new(w, out_w);
            for (rows, cols) in [(0..h, 0..out_w), (3..20, out_w / 4..out_w - 1)] {
                let n = rows.len() * cols.len() * 3;
                let mut want = vec![0u8; n];
                horizontal_scalar(&src, w, rows.clone(), &c, 0, cols.clone(), &mut want);
                let mut got = vec![0u8; n];
                let mut block = Vec::new();
                horizontal_blocked(
                    &src,
                    w,
                    rows.clone(),
                    &c,
                    0,
                    cols.clone(),
                    &mut got,
                    &mut block,
                );
                assert_eq!(got, want, "{w}→{out_w}");
                got.fill(0);
                horizontal(
                    &src,
                    w,
                    rows.clone(),
                    &c,
                    0,
                    cols.clone(),
                    &mut got,
                    &mut block,
                );
                assert_eq!(got, want, "{w}→{out_w} (dispatched)");
            }
        }
    }

    #[test]
    fn constant_images_stay_constant() {
        let src = [10u8, 200, 77].repeat(7 * 5);
        for (ow, oh) in [(3, 11), (3, 2), (20, 1), (7, 2)] {
            assert!(full(&src, 7, 5, ow, oh)
                .chunks(3)
                .all(|p| p == [10, 200, 77]));
        }
    }
}
