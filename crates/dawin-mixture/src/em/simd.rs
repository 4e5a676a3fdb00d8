//! AVX2 + FMA twin of [`super::sample_step`], stage by stage over blocks of 16 vectors.

use std::arch::x86_64::*;

use super::{EmData, Workspace, EXP_ONE, LANES, MANTISSA};
use crate::fastmath::simd::log1pmx_ratio_v;
use crate::fastmath::{EXP_E, EXP_LN2_HI, EXP_LN2_LO, EXP_LOG2E, EXP_MIN_ARG, EXP_O, EXP_SHIFT};
use crate::logpdf::Centre;

/// Vector twin of [`crate::fastmath::exp_nonpos`] (same operations in the same order).
#[inline(always)]
unsafe fn exp_v(x: __m256d) -> __m256d {
    let min = _mm256_set1_pd(EXP_MIN_ARG);
    let xc = _mm256_max_pd(x, min);
    let shift = _mm256_set1_pd(EXP_SHIFT);
    let t = _mm256_fmadd_pd(xc, _mm256_set1_pd(EXP_LOG2E), shift);
    let n = _mm256_sub_pd(t, shift);
    let r = _mm256_fmadd_pd(n, _mm256_set1_pd(-EXP_LN2_HI), xc);
    let r = _mm256_fmadd_pd(n, _mm256_set1_pd(-EXP_LN2_LO), r);
    let r2 = _mm256_mul_pd(r, r);
    let c = _mm256_set1_pd;
    let e = _mm256_fmadd_pd(c(EXP_E[3]), r2, c(EXP_E[2]));
    let e = _mm256_fmadd_pd(e, r2, c(EXP_E[1]));
    let e = _mm256_fmadd_pd(e, r2, c(EXP_E[0]));
    let o = _mm256_fmadd_pd(c(EXP_O[2]), r2, c(EXP_O[1]));
    let o = _mm256_fmadd_pd(o, r2, c(EXP_O[0]));
    let ro = _mm256_mul_pd(r, o);
    let p = _mm256_add_pd(
        c(1.0),
        _mm256_div_pd(_mm256_add_pd(ro, ro), _mm256_sub_pd(e, ro)),
    );
    let ni = _mm256_sub_epi64(
        _mm256_castpd_si256(t),
        _mm256_set1_epi64x(EXP_SHIFT.to_bits() as i64),
    );
    let scale = _mm256_castsi256_pd(_mm256_slli_epi64(
        _mm256_add_epi64(ni, _mm256_set1_epi64x(1023)),
        52,
    ));
    let y = _mm256_mul_pd(p, scale);
    let below = _mm256_cmp_pd(x, min, _CMP_LT_OQ);
    _mm256_andnot_pd(below, y)
}

#[inline(always)]
unsafe fn ld(p: *const f64) -> __m256d {
    _mm256_loadu_pd(p)
}

#[inline(always)]
unsafe fn st(p: *mut f64, v: __m256d) {
    _mm256_storeu_pd(p, v)
}

/// f64 per vector.
const W: usize = 4;
/// Vectors per block: each stage below loops over the block's independent vectors, which
/// keeps enough independent work in flight to hide the latency of `exp`.
const VB: usize = 16;

/// Calls `f(g, v)` for the vectors `v < nv` in order, `g = v mod 2` the lane group, two at a
/// time so that the two groups' accumulators stay in registers.
#[inline(always)]
fn in_pairs(nv: usize, mut f: impl FnMut(usize, usize)) {
    let mut v = 0;
    while v + 1 < nv {
        f(0, v);
        f(1, v + 1);
        v += 2;
    }
    if v < nv {
        f(0, v);
    }
}

/// Processes the samples `0..4⌊N/4⌋`, returns how many it processed. Vector v of a block
/// (samples `i0 + 4v .. i0 + 4v + 4`, `i0` a multiple of 64) accumulates into lane group
/// `v mod 2`, i.e. sample i into lane `i mod 8`, in increasing order, exactly as the scalar
/// twin does.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn pass_avx2(
    data: &EmData,
    c0: &[f64],
    ca: &[f64],
    centres: &[Option<Centre>],
    ws: &mut Workspace,
    want_stats: bool,
) -> usize {
    const { assert!(LANES == 2 * W) };
    let (k_n, n_feat, n_mom, n_pad) = (ws.k, data.n_feat, data.n_mom, data.n_pad);
    let n4 = data.n / W * W;
    // Every pointer access below stays inside these bounds: a block reads samples
    // i0 .. i0 + 4·nv ≤ n4 ≤ N of columns of stride n_pad ≥ N, and uses `[K][VB]` scratch.
    assert!(ws.block.len() >= k_n * VB && c0.len() >= k_n && ca.len() >= k_n * n_feat);
    assert!(centres.len() >= k_n && (centres.iter().all(Option::is_none) || n_feat == 2));
    assert!(
        data.feat.len() >= n_feat * n_pad && data.mom.len() >= n_mom * n_pad && n_pad >= data.n
    );
    let feat = data.feat.as_ptr();
    let mom = data.mom.as_ptr();
    let lb = ws.block.as_mut_ptr() as *mut f64;
    let acc = &mut ws.acc;
    let mut mxb = [_mm256_setzero_pd(); VB];
    let mut sb = [_mm256_setzero_pd(); VB];
    let mut rb = [_mm256_setzero_pd(); VB];
    let mut ll_max = [ld(acc.ll_max.as_ptr()), ld(acc.ll_max.as_ptr().add(W))];
    let mut ll_prod = [ld(acc.ll_prod.as_ptr()), ld(acc.ll_prod.as_ptr().add(W))];
    let mut ll_expo = [
        _mm256_loadu_si256(acc.ll_expo.as_ptr() as *const __m256i),
        _mm256_loadu_si256(acc.ll_expo.as_ptr().add(W) as *const __m256i),
    ];
    let mant = _mm256_set1_epi64x(MANTISSA as i64);
    let one = _mm256_set1_epi64x(EXP_ONE as i64);
    let bias = _mm256_set1_epi64x(1023);
    let unit = _mm256_set1_pd(1.0);
    let mut i0 = 0;
    while i0 < n4 {
        let nv = ((n4 - i0) / W).min(VB);
        // 1. log-joints l[k][v] = c0[k] + Σ_f ca[k][f] · feat[f][v] (FMAs in f order)
        for k in 0..k_n {
            let lk = lb.add(k * VB * W);
            let c = _mm256_set1_pd(c0[k]);
            if let Some(centre) = &centres[k] {
                // Centred Beta features from λ (moment column 0), as `Centre::features`.
                let m = _mm256_set1_pd(centre.m);
                let (im, i1m) = (_mm256_set1_pd(centre.inv_m), _mm256_set1_pd(centre.inv_1m));
                let slope = _mm256_set1_pd(centre.slope);
                let (c1, c2) = (_mm256_set1_pd(ca[2 * k]), _mm256_set1_pd(ca[2 * k + 1]));
                let col = mom.add(i0);
                for v in 0..nv {
                    let x = ld(col.add(v * W));
                    let d = _mm256_sub_pd(x, m);
                    let g1 = log1pmx_ratio_v(x, d, im);
                    let g2 = log1pmx_ratio_v(_mm256_sub_pd(unit, x), _mm256_sub_pd(m, x), i1m);
                    let l = _mm256_fmadd_pd(c1, g1, _mm256_fmadd_pd(slope, d, c));
                    st(lk.add(v * W), _mm256_fmadd_pd(c2, g2, l));
                }
                continue;
            }
            for f in 0..n_feat {
                let cf = _mm256_set1_pd(ca[k * n_feat + f]);
                let col = feat.add(f * n_pad + i0);
                if f == 0 {
                    for v in 0..nv {
                        st(lk.add(v * W), _mm256_fmadd_pd(cf, ld(col.add(v * W)), c));
                    }
                } else {
                    for v in 0..nv {
                        st(
                            lk.add(v * W),
                            _mm256_fmadd_pd(cf, ld(col.add(v * W)), ld(lk.add(v * W))),
                        );
                    }
                }
            }
            if n_feat == 0 {
                for v in 0..nv {
                    st(lk.add(v * W), c);
                }
            }
        }
        // 2. maxima over components
        for v in 0..nv {
            mxb[v] = ld(lb.add(v * W));
            sb[v] = _mm256_setzero_pd();
        }
        for k in 1..k_n {
            let lk = lb.add(k * VB * W);
            for v in 0..nv {
                mxb[v] = _mm256_max_pd(ld(lk.add(v * W)), mxb[v]);
            }
        }
        // 3. exponentials and their sums
        for k in 0..k_n {
            for v in 0..nv {
                let slot = lb.add((k * VB + v) * W);
                let e = exp_v(_mm256_sub_pd(ld(slot), mxb[v]));
                st(slot, e);
                sb[v] = _mm256_add_pd(sb[v], e);
            }
        }
        // 4. reciprocals and log-likelihood lanes
        for v in 0..nv {
            rb[v] = _mm256_div_pd(unit, sb[v]);
        }
        in_pairs(nv, |g, v| {
            ll_max[g] = _mm256_add_pd(ll_max[g], mxb[v]);
            let bits = _mm256_castpd_si256(_mm256_mul_pd(ll_prod[g], sb[v]));
            ll_expo[g] = _mm256_add_epi64(
                ll_expo[g],
                _mm256_sub_epi64(_mm256_srli_epi64(bits, 52), bias),
            );
            ll_prod[g] = _mm256_castsi256_pd(_mm256_or_si256(_mm256_and_si256(bits, mant), one));
        });
        // 5. responsibilities and moments
        if want_stats {
            for k in 0..k_n {
                let pn = acc.n[k].as_mut_ptr();
                let mut an = [ld(pn), ld(pn.add(W))];
                in_pairs(nv, |g, v| {
                    an[g] =
                        _mm256_add_pd(an[g], _mm256_mul_pd(ld(lb.add((k * VB + v) * W)), rb[v]));
                });
                st(pn, an[0]);
                st(pn.add(W), an[1]);
                for q in 0..n_mom {
                    let kq = k * n_mom + q;
                    let (p1, p2) = (acc.s1[kq].as_mut_ptr(), acc.s2[kq].as_mut_ptr());
                    let mut a1 = [ld(p1), ld(p1.add(W))];
                    let mut a2 = [ld(p2), ld(p2.add(W))];
                    let col = mom.add(q * n_pad + i0);
                    in_pairs(nv, |g, v| {
                        let gam = _mm256_mul_pd(ld(lb.add((k * VB + v) * W)), rb[v]);
                        let x = ld(col.add(v * W));
                        let gx = _mm256_mul_pd(gam, x);
                        a1[g] = _mm256_add_pd(a1[g], gx);
                        a2[g] = _mm256_fmadd_pd(gx, x, a2[g]);
                    });
                    st(p1, a1[0]);
                    st(p1.add(W), a1[1]);
                    st(p2, a2[0]);
                    st(p2.add(W), a2[1]);
                }
            }
        }
        i0 += nv * W;
    }
    for g in 0..2 {
        st(acc.ll_max.as_mut_ptr().add(g * W), ll_max[g]);
        st(acc.ll_prod.as_mut_ptr().add(g * W), ll_prod[g]);
        _mm256_storeu_si256(
            acc.ll_expo.as_mut_ptr().add(g * W) as *mut __m256i,
            ll_expo[g],
        );
    }
    n4
}
