//! Branch-free `exp` for the EM inner loop.
//!
//! The E-step needs `exp(lᵢₖ − maxₖ lᵢₖ)` for every sample and component. `f64::exp` is a libm
//! call that stops the compiler from vectorising the loop; [`exp_nonpos`] is plain arithmetic.
//! It uses fused multiply-adds through `f64::mul_add`, which is correctly rounded on every
//! target (one FMA instruction where the CPU has it, libm's exact software `fma` elsewhere), so
//! every build rounds identically and results stay bit-identical across machines; only the
//! speed differs.

/// log₂ e.
pub(crate) const EXP_LOG2E: f64 = std::f64::consts::LOG2_E;
/// ln 2 split in a high part with trailing zero bits (so `n · LN2_HI` is exact for |n| < 2²⁰)
/// and the remainder (fdlibm's constants).
pub(crate) const EXP_LN2_HI: f64 = 0.693_147_180_369_123_8; // 0x3fe62e42fee00000
pub(crate) const EXP_LN2_LO: f64 = 1.908_214_929_270_587_7e-10; // 0x3dea39ef35793c76
/// 1.5 · 2⁵²: adding it rounds to the nearest integer and leaves that integer in the low bits.
pub(crate) const EXP_SHIFT: f64 = 6_755_399_441_055_744.0;
/// Below this the result is flushed to 0 (exp(−708) ≈ 3.3·10⁻³⁰⁸ is the last normal power).
pub(crate) const EXP_MIN_ARG: f64 = -708.0;

/// Taylor coefficients 1/k! for k = 0..=12; the k = 13 term is below 2·10⁻¹⁶ on |r| ≤ ln2/2.
pub(crate) const EXP_C: [f64; 13] = [
    1.0,
    1.0,
    1.0 / 2.0,
    1.0 / 6.0,
    1.0 / 24.0,
    1.0 / 120.0,
    1.0 / 720.0,
    1.0 / 5040.0,
    1.0 / 40_320.0,
    1.0 / 362_880.0,
    1.0 / 3_628_800.0,
    1.0 / 39_916_800.0,
    1.0 / 479_001_600.0,
];

/// `exp(x)` for `x ≤ 0` (finite), within a few ulp of the correctly rounded value; arguments
/// below −708 give exactly 0.
///
/// `exp(x) = 2ⁿ · exp(r)`, `n = round(x / ln 2)`, `r = x − n ln 2` (Cody–Waite), `exp(r)` by its
/// degree-12 Taylor polynomial (Estrin's scheme).
#[inline(always)]
pub(crate) fn exp_nonpos(x: f64) -> f64 {
    let xc = if x < EXP_MIN_ARG { EXP_MIN_ARG } else { x };
    let t = xc.mul_add(EXP_LOG2E, EXP_SHIFT);
    let n = t - EXP_SHIFT;
    let r = n.mul_add(-EXP_LN2_LO, n.mul_add(-EXP_LN2_HI, xc));
    // Estrin's scheme: a dependency depth of 5 instead of Horner's 12, so that the vectorised
    // loop is not latency-bound.
    let r2 = r * r;
    let r4 = r2 * r2;
    let r8 = r4 * r4;
    let p01 = EXP_C[1].mul_add(r, EXP_C[0]);
    let p23 = EXP_C[3].mul_add(r, EXP_C[2]);
    let p45 = EXP_C[5].mul_add(r, EXP_C[4]);
    let p67 = EXP_C[7].mul_add(r, EXP_C[6]);
    let p89 = EXP_C[9].mul_add(r, EXP_C[8]);
    let pab = EXP_C[11].mul_add(r, EXP_C[10]);
    let q0 = p23.mul_add(r2, p01);
    let q1 = p67.mul_add(r2, p45);
    let q2 = pab.mul_add(r2, p89);
    let s0 = q1.mul_add(r4, q0);
    let s1 = EXP_C[12].mul_add(r4, q2);
    let p = s1.mul_add(r8, s0);
    // n is in [-1022, 0]: 2^n is a normal number built from its exponent bits.
    let ni = (t.to_bits() as i64).wrapping_sub(EXP_SHIFT.to_bits() as i64);
    let scale = f64::from_bits(((ni + 1023) as u64) << 52);
    let y = p * scale;
    if x < EXP_MIN_ARG {
        0.0
    } else {
        y
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cody_waite_constants_are_fdlibms() {
        assert_eq!(EXP_LN2_HI.to_bits(), 0x3fe6_2e42_fee0_0000);
        assert_eq!(EXP_LN2_LO.to_bits(), 0x3dea_39ef_3579_3c76);
    }

    #[test]
    fn matches_libm_to_a_few_ulp() {
        let mut worst = 0.0f64;
        let mut x = 0.0f64;
        while x > -707.0 {
            let want = x.exp();
            let got = exp_nonpos(x);
            let rel = ((got - want) / want).abs();
            worst = worst.max(rel);
            x -= 0.000_731_3;
        }
        assert!(worst < 5e-16, "worst relative error {worst:e}");
        for &x in &[
            -0.0,
            -1e-300,
            -1e-17,
            -0.5 * std::f64::consts::LN_2,
            -1.0,
            -745.0,
            -1e300,
        ] {
            let want = if x < EXP_MIN_ARG { 0.0 } else { x.exp() };
            let got = exp_nonpos(x);
            assert!(
                (got - want).abs() <= 5e-16 * want,
                "x = {x}: {got} vs {want}"
            );
        }
        assert_eq!(exp_nonpos(0.0), 1.0);
        assert_eq!(exp_nonpos(-709.0), 0.0);
    }
}
