//! The Beta log-density in the form every Beta evaluation of this crate uses (E-step, the
//! closed-form `K = 1` fit, log-likelihoods, predictions, [`crate::special::ln_beta_pdf`]).
//!
//! A component's log-density is evaluated in one of two forms:
//!
//! * **linear** (`a + b < CENTRED_MIN`): `ln f(λ) = c0 + (a−1) ln λ + (b−1) ln(1−λ)` with
//!   `c0 = −ln B(a, b)`; the features `ln λ`, `ln(1−λ)` are computed once per fit and shared by
//!   all components (two multiply-adds per sample and component). Its rounding error is a few
//!   ulp of `(a+b)·|ln λ|`, i.e. about 10⁻¹³ for these shapes.
//! * **centred** (`a + b ≥ CENTRED_MIN`: the concentrated components that the method of
//!   moments produces for nearly equal coefficients, up to `a, b ~ 10⁹`, where the three terms
//!   above are ~10¹⁰ and their sum ~10): about the mean `m = a/(a+b)` rounded to `f64`, with
//!   `d = λ − m`, `u = d/m`, `v = −d/(1−m)` and `h(x) = ln(1+x) − x`,
//!
//!   ```text
//!   ln f(λ) = ln f(m) + (a−1) ln(1+u) + (b−1) ln(1+v)
//!           = ln f(m) + s·d + (a−1) h(u) + (b−1) h(v),    s = (a−1)/m − (b−1)/(1−m)
//!   ```
//!
//!   `ln f(m)` is [`ln_beta_pdf_at_mean`] at the true mean `μ = a/(a+b)` plus the exact change
//!   `(a−1) ln(1 + δ/μ) + (b−1) ln(1 − δ/(1−μ))` to the rounded one (`δ = m − μ`, from the
//!   division residual); the slope `s = −(m(a+b) − a)/(m(1−m)) − 1/m + 1/(1−m)` is of order
//!   `1/(m(1−m))`, not `a + b`; and `h` keeps its relative accuracy for every `x`
//!   ([`log1pmx_ratio`]). No term is much larger than the result unless the sample is many
//!   standard deviations away, where the result is large itself: the error is a few ulp of
//!   `|ln f(λ)| + ((λ−m)/σ)²`.

use crate::fastmath::{ln_pos, log1pmx_ratio};
use crate::special::{ln_beta, ln_beta_pdf_at_mean};

/// Components with `a + b` at least this are evaluated in the centred form. Below it the
/// linear form (shared features, two multiply-adds per sample) is accurate to about `a + b` ulp
/// and much cheaper.
pub(crate) const CENTRED_MIN: f64 = 1024.0;

/// The centre of a concentrated component: its mean `m = a/(a+b)` rounded to `f64`, `1/m`,
/// `1/(1−m)` and the slope `(a−1)/m − (b−1)/(1−m)` of the log-density at `m`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Centre {
    pub m: f64,
    pub inv_m: f64,
    pub inv_1m: f64,
    pub slope: f64,
}

impl Centre {
    /// `(d, h(u), h(v))` of the module docs for a clamped coefficient `x` (the AVX2 E-step
    /// performs the same operations).
    #[inline(always)]
    pub fn features(&self, x: f64) -> (f64, f64, f64) {
        (
            x - self.m,
            log1pmx_ratio(x, x - self.m, self.inv_m),
            log1pmx_ratio(1.0 - x, self.m - x, self.inv_1m),
        )
    }

    /// `c0 + slope·d + am1·g1 + bm1·g2` (three FMAs, in this order).
    #[inline(always)]
    pub fn combine(&self, c0: f64, am1: f64, bm1: f64, d: f64, g1: f64, g2: f64) -> f64 {
        bm1.mul_add(g2, am1.mul_add(g1, self.slope.mul_add(d, c0)))
    }
}

/// One Beta component's log-density (module docs).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct BetaLogPdf {
    /// `−ln B(a, b)` (linear form) or `ln f(m)` (centred form).
    pub c0: f64,
    /// `a − 1`.
    pub am1: f64,
    /// `b − 1`.
    pub bm1: f64,
    /// The centre, for the centred form.
    pub centre: Option<Centre>,
}

impl BetaLogPdf {
    /// The form and coefficients for shapes `a, b > 0` (finite).
    pub fn new(a: f64, b: f64) -> Self {
        let (am1, bm1) = (a - 1.0, b - 1.0);
        let s = a + b;
        if s < CENTRED_MIN {
            return Self {
                c0: -ln_beta(a, b),
                am1,
                bm1,
                centre: None,
            };
        }
        let m = a / s;
        let (inv_m, inv_1m) = (1.0 / m, 1.0 / (1.0 - m));
        // r = m·(a + b) − a: the division residual m·s − a is exact with an FMA, and
        // e = (a + b) − s is the rounding error of the sum (TwoSum).
        let bb = s - a;
        let e = (a - (s - bb)) + (b - bb);
        let r = m.mul_add(s, -a) + m * e;
        // ln f(m) − ln f(μ) = (a−1) ln(1 + δ/μ) + (b−1) ln(1 − δ/(1−μ)), δ = r/(a+b).
        let shift = am1 * (r / a).ln_1p() + bm1 * (-r / b).ln_1p();
        Self {
            c0: ln_beta_pdf_at_mean(a, b) + shift,
            am1,
            bm1,
            centre: Some(Centre {
                m,
                inv_m,
                inv_1m,
                slope: -r * inv_m * inv_1m - inv_m + inv_1m,
            }),
        }
    }

    /// `c0 + ln f(x) − self.c0` for a clamped coefficient `x` whose linear features are
    /// `lx = ln x`, `l1x = ln(1 − x)` (used only by the linear form); `c0` is [`Self::c0`]
    /// plus, in a mixture, the log-weight. The E-step's operations, in its order.
    #[inline(always)]
    pub fn log_joint(&self, c0: f64, x: f64, lx: f64, l1x: f64) -> f64 {
        match &self.centre {
            Some(c) => {
                let (d, g1, g2) = c.features(x);
                c.combine(c0, self.am1, self.bm1, d, g1, g2)
            }
            None => self.bm1.mul_add(l1x, self.am1.mul_add(lx, c0)),
        }
    }

    /// `ln f(x)` for `x ∈ (0, 1)`.
    pub fn eval(&self, x: f64) -> f64 {
        self.log_joint(self.c0, x, ln_pos(x), ln_pos(1.0 - x))
    }
}
