// Beta mixture of DaWin coefficients, fitted by EM with a method-of-moments M-step. (The algorithm
// is documented on `BetaMixture`, the type users see.)

use crate::em::{
    available_threads, best_of, EmData, EmModel, EmOutcome, EmScratch, Stats, Threads, EPS10,
    VAR_FLOOR,
};
use crate::error::{invalid, MixtureError, Result};
use crate::fastmath::{fill_ln, fill_log1pmx_ratio, ln_pos};
use crate::input::{
    argmax, check_clamp, check_common, check_shape, check_weights, clamp_unit, softmax_in_place,
    sort_positive,
};
use crate::kmeans::{kmeans_1d, Sorted1d};
use crate::logpdf::{BetaLogPdf, Centre};

/// Default clamp: coefficients are moved into `[1e-6, 1 − 1e-6]` before taking logarithms.
pub const DEFAULT_CLAMP_EPS: f64 = 1e-6;
/// Lloyd iterations allowed to the k-means initialisation.
const KMEANS_MAX_ITER: usize = 300;

/// Configuration of [`BetaMixture::fit`]. The defaults are the paper's settings for ViT-B/32.
#[derive(Clone, Debug, PartialEq)]
pub struct BetaMixtureConfig {
    /// Number of components K (≥ 1). Default 3.
    pub k: usize,
    /// Maximum number of EM iterations (E-steps) per initialisation (≥ 1). Default 1000.
    pub max_iter: usize,
    /// Stop when the mean log-likelihood changes by less than this. Default 1e-4.
    pub tol: f64,
    /// Number of k-means initialisations; the best mean log-likelihood wins. Default 3.
    pub n_init: usize,
    /// Seed of initialisation 0; initialisation r uses `seed + r`. Default 0.
    pub seed: u64,
    /// Coefficients are clamped to `[clamp_eps, 1 − clamp_eps]`; must lie in `[1e-9, 1e-2]`.
    /// Default [`DEFAULT_CLAMP_EPS`].
    pub clamp_eps: f64,
}

impl Default for BetaMixtureConfig {
    fn default() -> Self {
        Self {
            k: 3,
            max_iter: 1000,
            tol: 1e-4,
            n_init: 3,
            seed: 0,
            clamp_eps: DEFAULT_CLAMP_EPS,
        }
    }
}

impl BetaMixtureConfig {
    /// The default configuration with `k` components.
    pub fn new(k: usize) -> Self {
        Self {
            k,
            ..Self::default()
        }
    }

    /// Checks every field; [`BetaMixture::fit`] calls it.
    pub fn validate(&self) -> Result<()> {
        check_common(self.k, self.max_iter, self.tol, self.n_init, self.clamp_eps)
    }
}

/// Beta mixture of DaWin coefficients, fitted by EM with a method-of-moments M-step.
///
/// The model (paper, Eq. 3–4) for coefficients λᵢ ∈ (0, 1):
///
/// ```text
/// p(λ) = Σₖ πₖ Beta(λ; aₖ, bₖ),  Beta(λ; a, b) = λ^(a−1) (1−λ)^(b−1) / B(a, b)
/// ```
///
/// Fitting follows the reference procedure (`shared/DAWIN.md`, "Mixture modelling"):
///
/// 1. **Initialisation** `r = 0 … n_init−1`: seeded k-means (seed `seed + r`, see
///    [`KMeans`](crate::KMeans)) gives hard labels; responsibilities are the one-hot labels plus `10ε`
///    (ε = `f64::EPSILON`), followed by one M-step.
/// 2. **E-step**: `ln γᵢₖ = ln πₖ + (aₖ−1) ln λᵢ + (bₖ−1) ln(1−λᵢ) − ln B(aₖ, bₖ) − ln Σⱼ (…)ⱼ`
///    (log-sum-exp); the mean log-likelihood is `ℓ = (1/N) Σᵢ ln Σₖ πₖ Beta(λᵢ; aₖ, bₖ)`.
///    Every Beta log-density (E-step, log-likelihoods, predictions, the K = 1 closed form) is
///    that of [`crate::special::ln_beta_pdf`]: this formula while `aₖ + bₖ < 1024`, and an
///    equivalent form about the component mean without cancellation for the concentrated
///    components (`aₖ, bₖ` up to ~10⁹ for nearly equal coefficients), where this one would lose
///    seven digits.
/// 3. **M-step** (weighted method of moments): `Nₖ = Σᵢ γᵢₖ + 10ε`, `πₖ = Nₖ / Σⱼ Nⱼ`,
///    `m = Σᵢ γᵢₖ λᵢ / Nₖ`, `v = Σᵢ γᵢₖ λᵢ² / Nₖ − m²`, `v ← min(v, m(1−m)/4) + 10ε`,
///    `c = m(1−m)/(v + 10⁻¹⁰) − 1`, `aₖ = c m`, `bₖ = c (1−m)`.
///    The cap keeps `c ≥ 3` (no U-shaped components), as in the reference.
/// 4. Stop when `|ℓ − ℓ_prev| < tol` or after `max_iter` E-steps; keep the initialisation with
///    the highest mean log-likelihood.
///
/// Where this implementation differs from the reference, and why:
///
/// * Inputs are **clamped** to `[ε_c, 1 − ε_c]` (`clamp_eps`, default 10⁻⁶) before any logarithm:
///   the reference takes `ln 0` on an exact 0 or 1 (f32 underflow of the expertise ratio).
/// * A component whose total responsibility `Σᵢ γᵢₖ` falls below `10ε` (it explains no sample
///   to double precision) keeps its previous `(a, b)`; the reference's formula would give
///   `c < 0` and NaN. Its weight is still updated (to about 10⁻¹⁵).
/// * The best initialisation is chosen, as in the reference, by the mean log-likelihood of its
///   last E-step; but the reported [`BetaMixtureFit::mean_log_likelihood`] is that of the
///   returned parameters (one extra E-step), where the reference reports the last E-step's value
///   (the two differ by less than `tol` after convergence).
/// * When two initialisations reach the same k-means partition, their EM runs would be identical
///   bit for bit, so the run is not repeated.
/// * `K = 1` is solved in closed form: every responsibility is exactly 1, so EM reduces to one
///   M-step on the plain moments `m = Σλ/N`, `v = Σλ²/N − m²`; `n_iter() = 0`. The
///   log-density is linear in its features, so `ℓ` comes from their means (one blocked pass,
///   a second one for a concentrated component's centred features).
/// * The EM runs on the sorted coefficients, so the fit does not depend on the input order.
/// * k-means comes from this crate: scikit-learn's algorithm, but with a different random
///   stream and Lloyd run to its fixed point (scikit-learn stops on a centre-shift tolerance,
///   which can leave a partition one or two samples short of it). From the same partition, the
///   EM reproduces the reference to rounding (tested against scikit-learn's own partitions).
#[derive(Clone, Copy, Debug)]
pub struct BetaMixture;

/// A fitted Beta mixture. Components are sorted by increasing mean.
#[derive(Clone, Debug, PartialEq)]
pub struct BetaMixtureFit {
    weights: Vec<f64>,
    a: Vec<f64>,
    b: Vec<f64>,
    means: Vec<f64>,
    mean_log_likelihood: f64,
    n_iter: usize,
    converged: bool,
    clamp_eps: f64,
}

/// Parameters being fitted, in EM order.
#[derive(Clone, Debug)]
pub(crate) struct BetaParams {
    pub(crate) w: Vec<f64>,
    pub(crate) a: Vec<f64>,
    pub(crate) b: Vec<f64>,
    m: Vec<f64>,
}

impl BetaParams {
    fn zeros(k: usize) -> Self {
        Self {
            w: vec![0.0; k],
            a: vec![1.0; k],
            b: vec![1.0; k],
            m: vec![0.5; k],
        }
    }

    /// Initial M-step from hard labels: responsibilities `onehot + 10ε`, i.e.
    /// `Σγ = nₖ + 10εN`, `Σγλ = Sₖ + 10ε S`, `Σγλ² = Qₖ + 10ε Q`.
    pub(crate) fn from_hard(n: usize, per_cluster: &[(f64, f64, f64)]) -> Self {
        let k = per_cluster.len();
        let (mut t1, mut t2) = (0.0, 0.0);
        for &(_, s1, s2) in per_cluster {
            t1 += s1;
            t2 += s2;
        }
        let mut st = Stats::zeros(k, 1);
        for (c, &(cnt, s1, s2)) in per_cluster.iter().enumerate() {
            st.nk[c] = cnt + EPS10 * n as f64;
            st.s1[c] = s1 + EPS10 * t1;
            st.s2[c] = s2 + EPS10 * t2;
        }
        let mut p = Self::zeros(k);
        p.m_step(&st);
        p
    }
}

/// `(a, b)` from a weighted mean and variance by the reference's capped method of moments.
#[inline]
fn beta_moments(m: f64, v: f64) -> (f64, f64) {
    let mm = m * (1.0 - m);
    let v = v.min(mm / 4.0) + EPS10;
    let c = mm / (v + VAR_FLOOR) - 1.0;
    (c * m, c * (1.0 - m))
}

impl EmModel for BetaParams {
    fn coefficients(&self, c0: &mut [f64], ca: &mut [f64], centres: &mut [Option<Centre>]) {
        for k in 0..self.w.len() {
            let pdf = BetaLogPdf::new(self.a[k], self.b[k]);
            c0[k] = self.w[k].ln() + pdf.c0;
            ca[2 * k] = pdf.am1;
            ca[2 * k + 1] = pdf.bm1;
            centres[k] = pdf.centre;
        }
    }

    fn m_step(&mut self, st: &Stats) {
        let total: f64 = st.nk.iter().map(|&n| n + EPS10).sum();
        for k in 0..self.w.len() {
            let count = st.nk[k] + EPS10;
            self.w[k] = count / total;
            if st.nk[k] < EPS10 {
                continue; // dead component: keep its shape
            }
            let m = st.s1[k] / count;
            let v = st.s2[k] / count - m * m;
            let (a, b) = beta_moments(m, v);
            self.m[k] = m;
            self.a[k] = a;
            self.b[k] = b;
        }
    }
}

impl BetaMixture {
    /// Fits a K-component Beta mixture to coefficients in `[0, 1]` (f32 or f64).
    ///
    /// Errors: an invalid configuration, an empty slice, fewer values than components, a NaN,
    /// infinite or out-of-range value (naming its index). Values of exactly 0 or 1 are clamped
    /// (see [`BetaMixtureConfig::clamp_eps`]). Data with fewer distinct values than K
    /// (for instance all equal) is fitted without error: the surplus components get weights of
    /// about 10⁻¹⁵ and means near the data's (so every sample's λ is its cluster's value).
    ///
    /// ```
    /// use dawin_mixture::{BetaMixture, BetaMixtureConfig};
    /// let lambdas: Vec<f32> = (0..200).map(|i| if i % 2 == 0 { 0.2 } else { 0.8 } + (i % 7) as f32 * 0.01).collect();
    /// let fit = BetaMixture::fit(&lambdas, &BetaMixtureConfig::new(2)).unwrap();
    /// assert!((fit.means()[0] - 0.23).abs() < 0.01 && (fit.means()[1] - 0.83).abs() < 0.01);
    /// ```
    pub fn fit<T: Copy + Into<f64>>(
        values: &[T],
        config: &BetaMixtureConfig,
    ) -> Result<BetaMixtureFit> {
        config.validate()?;
        let x = clamp_unit(values, config.clamp_eps)?;
        fit_clamped(&x, config, Threads::Auto)
    }

    /// Runs one EM from given hard labels (`labels[i] < config.k`), as the reference does after
    /// its k-means; `n_init` and `seed` are not used. Useful to start from your own clustering,
    /// and to compare with the reference from the same initial partition.
    pub fn fit_from_labels<T: Copy + Into<f64>>(
        values: &[T],
        labels: &[usize],
        config: &BetaMixtureConfig,
    ) -> Result<BetaMixtureFit> {
        config.validate()?;
        let x = clamp_unit(values, config.clamp_eps)?;
        let (n, k) = (x.len(), config.k);
        if labels.len() != n {
            return Err(MixtureError::Length {
                what: "labels",
                len: labels.len(),
                expected: n,
            });
        }
        if let Some((index, &label)) = labels.iter().enumerate().find(|(_, &l)| l >= k) {
            return Err(MixtureError::Label { index, label, k });
        }
        if n < k {
            return Err(MixtureError::TooFewSamples { n, k });
        }
        if k == 1 {
            return Ok(closed_form_k1(&x, config.clamp_eps));
        }
        let mut per_cluster = vec![(0.0, 0.0, 0.0); k];
        for (&v, &l) in x.iter().zip(labels) {
            let e = &mut per_cluster[l];
            e.0 += 1.0;
            e.1 += v;
            e.2 += v * v;
        }
        let data = EmData::beta(&x);
        let init = BetaParams::from_hard(n, &per_cluster);
        let (params, out, mean_ll) = best_of(
            &data,
            k,
            vec![init],
            config.max_iter,
            config.tol,
            Threads::One,
        );
        BetaMixtureFit::from_params(params, out, mean_ll, config.clamp_eps)
    }

    /// Mean log-likelihood `(1/N) Σᵢ ln Σₖ πₖ Beta(λᵢ; aₖ, bₖ)` of coefficients under given
    /// parameters (coefficients clamped as in [`BetaMixture::fit`]).
    pub fn mean_log_likelihood<T: Copy + Into<f64>>(
        values: &[T],
        weights: &[f64],
        a: &[f64],
        b: &[f64],
        clamp_eps: f64,
    ) -> Result<f64> {
        check_clamp(clamp_eps)?;
        check_weights(weights)?;
        for (what, v) in [("a", a), ("b", b)] {
            if v.len() != weights.len() {
                return Err(MixtureError::Length {
                    what,
                    len: v.len(),
                    expected: weights.len(),
                });
            }
        }
        for k in 0..weights.len() {
            check_shape("a", k, a[k])?;
            check_shape("b", k, b[k])?;
        }
        let x = clamp_unit(values, clamp_eps)?;
        let params = BetaParams {
            w: weights.to_vec(),
            a: a.to_vec(),
            b: b.to_vec(),
            m: a.iter().zip(b).map(|(a, b)| a / (a + b)).collect(),
        };
        let data = EmData::beta(&x);
        Ok(EmScratch::new(weights.len(), &data).mean_ll(&data, &params))
    }
}

/// [`BetaMixture::fit`] on coefficients already clamped and checked.
fn fit_clamped(x: &[f64], config: &BetaMixtureConfig, threads: Threads) -> Result<BetaMixtureFit> {
    let (n, k) = (x.len(), config.k);
    if n < k {
        return Err(MixtureError::TooFewSamples { n, k });
    }
    if k == 1 {
        return Ok(closed_form_k1(x, config.clamp_eps));
    }
    let sorted = Sorted1d::new(sort_positive(x));
    let data = EmData::beta(&sorted.xs);
    let mut inits = Vec::new();
    let mut seen: Vec<Vec<(usize, usize)>> = Vec::new();
    for r in 0..config.n_init {
        let part = kmeans_1d(
            &sorted,
            k,
            config.seed.wrapping_add(r as u64),
            KMEANS_MAX_ITER,
        );
        // Canonical cluster order (by position; empty clusters last), so that the EM run is
        // a function of the partition alone; the same partition gives the same run, bit for
        // bit, and is not repeated.
        let mut ranges = part.ranges;
        ranges.sort_by_key(|&(lo, hi)| (lo == hi, lo, hi));
        if seen.contains(&ranges) {
            continue;
        }
        let per_cluster: Vec<(f64, f64, f64)> = ranges
            .iter()
            .map(|&(lo, hi)| {
                let (s1, s2) = sorted.sums(lo, hi);
                ((hi - lo) as f64, s1, s2)
            })
            .collect();
        seen.push(ranges);
        inits.push(BetaParams::from_hard(n, &per_cluster));
    }
    let (params, out, mean_ll) = best_of(&data, k, inits, config.max_iter, config.tol, threads);
    BetaMixtureFit::from_params(params, out, mean_ll, config.clamp_eps)
}

/// Block of the closed-form K = 1 passes.
const BLOCK: usize = 512;

fn closed_form_k1(x: &[f64], clamp_eps: f64) -> BetaMixtureFit {
    // One pass for the moments and the mean logarithms, with ln computed a block at a time.
    let (mut s1, mut s2, mut sl, mut sl1) = (0.0, 0.0, 0.0, 0.0);
    let (mut lx, mut l1x) = ([0.0; BLOCK], [0.0; BLOCK]);
    for chunk in x.chunks(BLOCK) {
        let (lx, l1x) = (&mut lx[..chunk.len()], &mut l1x[..chunk.len()]);
        fill_ln(chunk, lx, false);
        fill_ln(chunk, l1x, true);
        for ((&v, &l), &l1) in chunk.iter().zip(lx.iter()).zip(l1x.iter()) {
            s1 += v;
            s2 += v * v;
            sl += l;
            sl1 += l1;
        }
    }
    let n = x.len() as f64;
    let m = s1 / n;
    let (a, b) = beta_moments(m, s2 / n - m * m);
    // With one component each sample's log-sum-exp is its single term, and the log-density is
    // linear in its two features, so ℓ = c0 + (a − 1)·mean(g₁) + (b − 1)·mean(g₂): with the
    // features of the E-step, ln λ and ln(1 − λ) (already summed), or, for a concentrated
    // component, the centred ones (a second pass).
    let pdf = BetaLogPdf::new(a, b);
    let mean_ll = match pdf.centre {
        None => pdf.bm1.mul_add(sl1 / n, pdf.am1.mul_add(sl / n, pdf.c0)),
        Some(c) => {
            let (sd, s1, s2) = centred_feature_sums(x, &c);
            c.combine(pdf.c0, pdf.am1, pdf.bm1, sd / n, s1 / n, s2 / n)
        }
    };
    let params = BetaParams {
        w: vec![1.0],
        a: vec![a],
        b: vec![b],
        m: vec![m],
    };
    BetaMixtureFit {
        weights: params.w,
        a: params.a,
        b: params.b,
        means: params.m,
        mean_log_likelihood: mean_ll,
        n_iter: 0,
        converged: true,
        clamp_eps,
    }
}

/// The sums over the coefficients of the centred features `(d, h(u), h(v))` of
/// [`crate::logpdf`], a block at a time.
fn centred_feature_sums(x: &[f64], c: &Centre) -> (f64, f64, f64) {
    let (mut sd, mut s1, mut s2) = (0.0, 0.0, 0.0);
    let (mut g1, mut g2) = ([0.0; BLOCK], [0.0; BLOCK]);
    for chunk in x.chunks(BLOCK) {
        let (g1, g2) = (&mut g1[..chunk.len()], &mut g2[..chunk.len()]);
        fill_log1pmx_ratio(chunk, g1, c.m, c.inv_m, false);
        fill_log1pmx_ratio(chunk, g2, c.m, c.inv_1m, true);
        for ((&v, &u), &w) in chunk.iter().zip(g1.iter()).zip(g2.iter()) {
            sd += v - c.m;
            s1 += u;
            s2 += w;
        }
    }
    (sd, s1, s2)
}

impl BetaMixtureFit {
    fn from_params(p: BetaParams, out: EmOutcome, mean_ll: f64, clamp_eps: f64) -> Result<Self> {
        let k = p.w.len();
        let mut order: Vec<usize> = (0..k).collect();
        order.sort_by(|&i, &j| p.m[i].total_cmp(&p.m[j]));
        let fit = Self {
            weights: order.iter().map(|&i| p.w[i]).collect(),
            a: order.iter().map(|&i| p.a[i]).collect(),
            b: order.iter().map(|&i| p.b[i]).collect(),
            means: order.iter().map(|&i| p.m[i]).collect(),
            mean_log_likelihood: mean_ll,
            n_iter: out.n_iter,
            converged: out.converged,
            clamp_eps,
        };
        // The update rules keep every quantity finite and positive (see the docs of `BetaMixture`);
        // this guards the promise never to hand out NaN.
        let ok = fit.mean_log_likelihood.is_finite()
            && (0..k).all(|i| {
                fit.weights[i].is_finite()
                    && fit.a[i].is_finite()
                    && fit.a[i] > 0.0
                    && fit.b[i].is_finite()
                    && fit.b[i] > 0.0
            });
        if !ok {
            return Err(invalid(
                "fitted parameters",
                format!("{fit:?}"),
                "EM produced a non-finite value (please report this input)",
            ));
        }
        Ok(fit)
    }

    /// Number of components K.
    pub fn k(&self) -> usize {
        self.weights.len()
    }

    /// Mixing weights πₖ (sum to 1).
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }

    /// Shape parameters aₖ.
    pub fn a(&self) -> &[f64] {
        &self.a
    }

    /// Shape parameters bₖ.
    pub fn b(&self) -> &[f64] {
        &self.b
    }

    /// Component means, increasing: the weighted means `mₖ` of the last M-step, equal to
    /// `aₖ / (aₖ + bₖ)` up to rounding. These are the λ values DaWin merges with.
    pub fn means(&self) -> &[f64] {
        &self.means
    }

    /// Mean log-likelihood `(1/N) Σᵢ ln p(λᵢ)` of the fitted (clamped) coefficients under the
    /// returned parameters.
    pub fn mean_log_likelihood(&self) -> f64 {
        self.mean_log_likelihood
    }

    /// EM iterations (E-steps) of the returned initialisation; 0 for the closed-form K = 1.
    pub fn n_iter(&self) -> usize {
        self.n_iter
    }

    /// Whether the returned initialisation met the tolerance before `max_iter`.
    pub fn converged(&self) -> bool {
        self.converged
    }

    /// The clamp applied to coefficients.
    pub fn clamp_eps(&self) -> f64 {
        self.clamp_eps
    }

    fn log_joint_rows<T: Copy + Into<f64>>(&self, values: &[T]) -> Result<(usize, Vec<f64>)> {
        let x = clamp_unit(values, self.clamp_eps)?;
        let k = self.k();
        let pdfs: Vec<BetaLogPdf> = (0..k)
            .map(|j| BetaLogPdf::new(self.a[j], self.b[j]))
            .collect();
        let c0: Vec<f64> = (0..k).map(|j| self.weights[j].ln() + pdfs[j].c0).collect();
        let mut out = Vec::with_capacity(x.len() * k);
        // The E-step's own features and operation order, so that predictions on the fitted
        // coefficients agree with its responsibilities bit for bit.
        for &v in &x {
            let (u, w) = (ln_pos(v), ln_pos(1.0 - v));
            for j in 0..k {
                out.push(pdfs[j].log_joint(c0[j], v, u, w));
            }
        }
        Ok((k, out))
    }

    /// Component with the highest posterior for every coefficient (ties to the lower index).
    pub fn predict<T: Copy + Into<f64>>(&self, values: &[T]) -> Result<Vec<usize>> {
        let (k, l) = self.log_joint_rows(values)?;
        Ok(l.chunks_exact(k).map(argmax).collect())
    }

    /// Posterior probabilities γᵢₖ, row-major `[N, K]`.
    pub fn predict_proba<T: Copy + Into<f64>>(&self, values: &[T]) -> Result<Vec<f64>> {
        let (k, mut l) = self.log_joint_rows(values)?;
        for row in l.chunks_exact_mut(k) {
            softmax_in_place(row);
        }
        Ok(l)
    }

    /// The per-sample λ DaWin uses: the mean of the component with the highest posterior.
    pub fn lambdas<T: Copy + Into<f64>>(&self, values: &[T]) -> Result<Vec<f64>> {
        Ok(self
            .predict(values)?
            .into_iter()
            .map(|c| self.means[c])
            .collect())
    }

    /// Mean log-likelihood of other coefficients under this fit.
    pub fn mean_log_likelihood_of<T: Copy + Into<f64>>(&self, values: &[T]) -> Result<f64> {
        BetaMixture::mean_log_likelihood(values, &self.weights, &self.a, &self.b, self.clamp_eps)
    }
}

/// Batch-wise (streaming) fitting, the paper's Table B: the coefficients are cut into
/// consecutive chunks of `batch_size`, a mixture is fitted to each chunk on its own with
/// `config`, and every coefficient gets the mean of its component in its chunk's mixture.
///
/// A final chunk shorter than `config.k` is fitted with K equal to its length. All values are
/// validated before any fitting, so an error names the index in `values`.
///
/// ```
/// use dawin_mixture::{fit_batchwise, BetaMixtureConfig};
/// let x: Vec<f64> = (0..1000).map(|i| 0.3 + 0.4 * ((i * 37 % 101) as f64 / 101.0)).collect();
/// let lambdas = fit_batchwise(&x, 256, &BetaMixtureConfig::default()).unwrap();
/// assert_eq!(lambdas.len(), x.len());
/// ```
pub fn fit_batchwise<T: Copy + Into<f64>>(
    values: &[T],
    batch_size: usize,
    config: &BetaMixtureConfig,
) -> Result<Vec<f64>> {
    config.validate()?;
    if batch_size == 0 {
        return Err(invalid("batch_size", 0, "must be at least 1"));
    }
    let x = clamp_unit(values, config.clamp_eps)?;
    let chunks: Vec<&[f64]> = x.chunks(batch_size).collect();
    let fit_chunk = |chunk: &[f64]| -> Result<Vec<f64>> {
        let cfg = BetaMixtureConfig {
            k: config.k.min(chunk.len()),
            ..config.clone()
        };
        fit_clamped(chunk, &cfg, Threads::One)?.lambdas(chunk)
    };
    // The chunks are independent: contiguous groups of them go to scoped threads, each fit on
    // one thread, and the results are concatenated in chunk order (bit-identical to one thread).
    let threads = available_threads().min(chunks.len());
    let per_group = chunks.len().div_ceil(threads.max(1));
    let groups: Vec<Result<Vec<f64>>> = if threads <= 1 {
        vec![chunks
            .iter()
            .map(|c| fit_chunk(c))
            .collect::<Result<Vec<_>>>()
            .map(|v| v.concat())]
    } else {
        std::thread::scope(|s| {
            let handles: Vec<_> = chunks
                .chunks(per_group)
                .map(|group| {
                    s.spawn(move || {
                        group
                            .iter()
                            .map(|c| fit_chunk(c))
                            .collect::<Result<Vec<_>>>()
                            .map(|v| v.concat())
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a batch-wise fit thread panicked"))
                .collect()
        })
    };
    let mut out = Vec::with_capacity(x.len());
    for g in groups {
        out.extend(g?);
    }
    Ok(out)
}
