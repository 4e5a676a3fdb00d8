// Dirichlet mixture of coefficient vectors on the simplex (DaWin with M models). (The algorithm is
// documented on `DirichletMixture`, the type users see.)

use crate::beta::DEFAULT_CLAMP_EPS;
use crate::em::{best_of, EmData, EmModel, EmOutcome, EmScratch, Stats, Threads, EPS10, VAR_FLOOR};
use crate::error::{invalid, MixtureError, Result};
use crate::fastmath::ln_pos;
use crate::input::{
    argmax, check_clamp, check_common, check_shape, check_weights, clamp_rows, softmax_in_place,
};
use crate::kmeans::{KMeans, KMeansConfig};
use crate::logpdf::Centre;
use crate::special::ln_multi_beta;

/// Lloyd iterations allowed to the k-means initialisation.
const KMEANS_MAX_ITER: usize = 300;
/// The reference Dirichlet mixture's stability constant.
const REFERENCE_EPS: f64 = 1e-14;

/// Which M-step the Dirichlet mixture uses (see [`DirichletMixture`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MStep {
    /// Pooled method of moments for the Dirichlet (default).
    #[default]
    MethodOfMoments,
    /// The reference implementation's `αₖ = weighted mean row`.
    ReferenceMean,
}

impl MStep {
    fn eps(self) -> f64 {
        match self {
            MStep::MethodOfMoments => EPS10,
            MStep::ReferenceMean => REFERENCE_EPS,
        }
    }
}

/// Configuration of [`DirichletMixture::fit`].
#[derive(Clone, Debug, PartialEq)]
pub struct DirichletMixtureConfig {
    /// Number of components K (≥ 1). Default 1, the paper's multi-task setting.
    pub k: usize,
    /// Maximum number of EM iterations per initialisation (≥ 1). Default 1000.
    pub max_iter: usize,
    /// Stop when the mean log-likelihood changes by less than this. Default 1e-4.
    pub tol: f64,
    /// Number of k-means initialisations; the best mean log-likelihood wins. Default 3.
    pub n_init: usize,
    /// Seed of initialisation 0; initialisation r uses `seed + r`. Default 0.
    pub seed: u64,
    /// Entries are clamped to at least this before logarithms; in `[1e-9, 1e-2]`. Default 1e-6.
    pub clamp_eps: f64,
    /// Allowed deviation of a row sum from 1, in `(0, 0.1]`. Default 1e-5.
    pub sum_tol: f64,
    /// The M-step. Default [`MStep::MethodOfMoments`].
    pub m_step: MStep,
}

impl Default for DirichletMixtureConfig {
    fn default() -> Self {
        Self {
            k: 1,
            max_iter: 1000,
            tol: 1e-4,
            n_init: 3,
            seed: 0,
            clamp_eps: DEFAULT_CLAMP_EPS,
            sum_tol: 1e-5,
            m_step: MStep::MethodOfMoments,
        }
    }
}

impl DirichletMixtureConfig {
    /// The default configuration with `k` components.
    pub fn new(k: usize) -> Self {
        Self {
            k,
            ..Self::default()
        }
    }

    /// Checks every field; [`DirichletMixture::fit`] calls it.
    pub fn validate(&self) -> Result<()> {
        check_common(self.k, self.max_iter, self.tol, self.n_init, self.clamp_eps)?;
        if !(self.sum_tol > 0.0 && self.sum_tol <= 0.1) {
            return Err(invalid("sum_tol", self.sum_tol, "must lie in (0, 0.1]"));
        }
        Ok(())
    }
}

/// Dirichlet mixture of coefficient vectors on the simplex (DaWin with M models).
///
/// The model for rows xᵢ ∈ Δ^(M−1) (M ≥ 2 entries summing to 1):
///
/// ```text
/// p(x) = Σₖ πₖ Dir(x; αₖ),  ln Dir(x; α) = Σⱼ (αⱼ − 1) ln xⱼ − ln B(α),
/// ln B(α) = Σⱼ ln Γ(αⱼ) − ln Γ(Σⱼ αⱼ)
/// ```
///
/// EM is the one of the Beta mixture ([`BetaMixture`](crate::BetaMixture)): seeded k-means on the rows (seed
/// `seed + r`), responsibilities `onehot + ε_s`, log-sum-exp E-step, stop on the change of the
/// mean log-likelihood, best of `n_init`. Two M-steps are available ([`MStep`]):
///
/// * [`MStep::MethodOfMoments`] (default) — the moment equations of the Dirichlet,
///   `E[xⱼ] = mⱼ` and `Var[xⱼ] = mⱼ(1−mⱼ)/(α₀+1)` for every j, pooled over j:
///   ```text
///   Nₖ = Σᵢ γᵢₖ + 10ε,  mⱼ = Σᵢ γᵢₖ xᵢⱼ / Nₖ,  vⱼ = Σᵢ γᵢₖ xᵢⱼ² / Nₖ − mⱼ²,
///   s̄ = (1/M) Σⱼ mⱼ(1−mⱼ),  v̄ = min((1/M) Σⱼ vⱼ, s̄/4) + 10ε,
///   α₀ = s̄/(v̄ + 10⁻¹⁰) − 1,  αₖⱼ = α₀ mⱼ
///   ```
///   For M = 2 this is exactly the Beta mixture's update (a Dirichlet on two entries is a Beta),
///   cap and constants included; the cap keeps α₀ ≥ 3.
/// * [`MStep::ReferenceMean`] — the reference implementation's simplified update
///   `αₖ = Σᵢ γᵢₖ xᵢ / Nₖ` (the weighted mean row itself, so `Σⱼ αₖⱼ = 1`), with its stability
///   constant ε_s = 10⁻¹⁴ on responsibilities and counts.
///
/// Entries are clamped to at least `clamp_eps` before logarithms (no renormalisation); every
/// raw row must sum to 1 within `sum_tol`. `K = 1` (the paper's multi-task setting) is solved in
/// closed form: the component mean is the mean row `Σᵢ xᵢ / N`, computed exactly in that order.
/// A component whose `Σᵢ γᵢₖ` falls below ε_s keeps its previous α; initialisations are chosen
/// and repeated partitions skipped as in [`BetaMixture`](crate::BetaMixture).
#[derive(Clone, Copy, Debug)]
pub struct DirichletMixture;

/// A fitted Dirichlet mixture. Components are sorted by their mean vectors (lexicographically).
#[derive(Clone, Debug, PartialEq)]
pub struct DirichletMixtureFit {
    m: usize,
    weights: Vec<f64>,
    alphas: Vec<f64>,
    means: Vec<f64>,
    mean_log_likelihood: f64,
    n_iter: usize,
    converged: bool,
    clamp_eps: f64,
}

#[derive(Clone, Debug)]
struct DirParams {
    m: usize,
    rule: MStep,
    w: Vec<f64>,
    alpha: Vec<f64>,
    mean: Vec<f64>,
}

impl DirParams {
    fn new(k: usize, m: usize, rule: MStep) -> Self {
        Self {
            m,
            rule,
            w: vec![0.0; k],
            alpha: vec![1.0; k * m],
            mean: vec![1.0 / m as f64; k * m],
        }
    }

    /// Initial M-step from hard labels with responsibilities `onehot + ε_s`.
    fn from_labels(x: &[f64], m: usize, k: usize, labels: &[usize], rule: MStep) -> Self {
        let n = labels.len();
        let eps = rule.eps();
        let mut st = Stats::zeros(k, m);
        let mut t1 = vec![0.0; m];
        let mut t2 = vec![0.0; m];
        for (row, &l) in x.chunks_exact(m).zip(labels) {
            st.nk[l] += 1.0;
            for (j, &v) in row.iter().enumerate() {
                st.s1[l * m + j] += v;
                st.s2[l * m + j] += v * v;
                t1[j] += v;
                t2[j] += v * v;
            }
        }
        for c in 0..k {
            st.nk[c] += eps * n as f64;
            for j in 0..m {
                st.s1[c * m + j] += eps * t1[j];
                st.s2[c * m + j] += eps * t2[j];
            }
        }
        let mut p = Self::new(k, m, rule);
        p.m_step(&st);
        p
    }
}

/// α from a mean vector and the per-entry second moments, by the pooled, capped moments.
fn dirichlet_moments(mean: &[f64], sq: impl Iterator<Item = f64>, alpha: &mut [f64]) {
    let md = mean.len() as f64;
    let s_bar = mean.iter().map(|&m| m * (1.0 - m)).sum::<f64>() / md;
    let v_bar = mean.iter().zip(sq).map(|(&m, q)| q - m * m).sum::<f64>() / md;
    let v_bar = v_bar.min(s_bar / 4.0) + EPS10;
    let c = s_bar / (v_bar + VAR_FLOOR) - 1.0;
    for (a, &m) in alpha.iter_mut().zip(mean) {
        *a = c * m;
    }
}

impl EmModel for DirParams {
    fn coefficients(&self, c0: &mut [f64], ca: &mut [f64], _centres: &mut [Option<Centre>]) {
        let m = self.m;
        for k in 0..self.w.len() {
            let al = &self.alpha[k * m..(k + 1) * m];
            c0[k] = self.w[k].ln() - ln_multi_beta(al);
            for j in 0..m {
                ca[k * m + j] = al[j] - 1.0;
            }
        }
    }

    fn m_step(&mut self, st: &Stats) {
        let m = self.m;
        let eps = self.rule.eps();
        let total: f64 = st.nk.iter().map(|&n| n + eps).sum();
        for k in 0..self.w.len() {
            let count = st.nk[k] + eps;
            self.w[k] = count / total;
            if st.nk[k] < eps {
                continue; // dead component: keep its α
            }
            let mean = &mut self.mean[k * m..(k + 1) * m];
            for j in 0..m {
                mean[j] = st.s1[k * m + j] / count;
            }
            let alpha = &mut self.alpha[k * m..(k + 1) * m];
            match self.rule {
                MStep::ReferenceMean => alpha.copy_from_slice(mean),
                MStep::MethodOfMoments => {
                    dirichlet_moments(mean, (0..m).map(|j| st.s2[k * m + j] / count), alpha)
                }
            }
        }
    }
}

/// Renumbers clusters in order of first appearance (unused labels keep the highest numbers).
fn canonical_labels(labels: &[usize], k: usize) -> Vec<usize> {
    let mut map = vec![usize::MAX; k];
    let mut next = 0;
    labels
        .iter()
        .map(|&l| {
            if map[l] == usize::MAX {
                map[l] = next;
                next += 1;
            }
            map[l]
        })
        .collect()
}

fn em_data(x: &[f64], m: usize) -> EmData {
    EmData::dirichlet(x, m)
}

impl DirichletMixture {
    /// Fits a K-component Dirichlet mixture to `rows`, row-major `[N, m]` (f32 or f64), each row
    /// a coefficient vector summing to 1.
    ///
    /// Errors: an invalid configuration, `m < 2`, a length that is not a multiple of `m`, no
    /// rows, fewer rows than components, a NaN, infinite or out-of-range entry (naming its flat
    /// index `i·m + j`), a row whose sum differs from 1 by more than `sum_tol`.
    ///
    /// ```
    /// use dawin_mixture::{DirichletMixture, DirichletMixtureConfig};
    /// let rows = [0.7, 0.2, 0.1, 0.6, 0.3, 0.1, 0.8, 0.1, 0.1];
    /// let fit = DirichletMixture::fit(&rows, 3, &DirichletMixtureConfig::new(1)).unwrap();
    /// // K = 1: the component mean is exactly the mean row Σᵢ xᵢ / N.
    /// let want: Vec<f64> = (0..3).map(|j| (rows[j] + rows[3 + j] + rows[6 + j]) / 3.0).collect();
    /// assert_eq!(fit.mean(0), &want[..]);
    /// ```
    pub fn fit<T: Copy + Into<f64>>(
        rows: &[T],
        m: usize,
        config: &DirichletMixtureConfig,
    ) -> Result<DirichletMixtureFit> {
        config.validate()?;
        let x = clamp_rows(rows, m, config.clamp_eps, config.sum_tol)?;
        let (n, k) = (x.len() / m, config.k);
        if n < k {
            return Err(MixtureError::TooFewSamples { n, k });
        }
        if k == 1 {
            return Ok(closed_form_k1(&x, m, config));
        }
        let data = em_data(&x, m);
        let mut inits = Vec::new();
        let mut seen: Vec<Vec<usize>> = Vec::new();
        for r in 0..config.n_init {
            let km = KMeans::fit(
                &x,
                m,
                &KMeansConfig {
                    k,
                    max_iter: KMEANS_MAX_ITER,
                    n_init: 1,
                    seed: config.seed.wrapping_add(r as u64),
                },
            )?;
            // Canonical labels (numbered by first appearance), so that the EM run is a function
            // of the partition alone; a repeated partition is not run again.
            let labels = canonical_labels(km.labels(), k);
            if seen.contains(&labels) {
                continue;
            }
            inits.push(DirParams::from_labels(&x, m, k, &labels, config.m_step));
            seen.push(labels);
        }
        let (params, out, mean_ll) =
            best_of(&data, k, inits, config.max_iter, config.tol, Threads::Auto);
        DirichletMixtureFit::from_params(params, out, mean_ll, config.clamp_eps)
    }

    /// Runs one EM from given hard labels (`labels[i] < config.k`); `n_init` and `seed` are not
    /// used.
    pub fn fit_from_labels<T: Copy + Into<f64>>(
        rows: &[T],
        m: usize,
        labels: &[usize],
        config: &DirichletMixtureConfig,
    ) -> Result<DirichletMixtureFit> {
        config.validate()?;
        let x = clamp_rows(rows, m, config.clamp_eps, config.sum_tol)?;
        let (n, k) = (x.len() / m, config.k);
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
            return Ok(closed_form_k1(&x, m, config));
        }
        let data = em_data(&x, m);
        let init = DirParams::from_labels(&x, m, k, labels, config.m_step);
        let (params, out, mean_ll) = best_of(
            &data,
            k,
            vec![init],
            config.max_iter,
            config.tol,
            Threads::One,
        );
        DirichletMixtureFit::from_params(params, out, mean_ll, config.clamp_eps)
    }

    /// Mean log-likelihood `(1/N) Σᵢ ln Σₖ πₖ Dir(xᵢ; αₖ)` of rows under given parameters
    /// (`alphas` row-major `[K, m]`; entries clamped as in [`DirichletMixture::fit`], row sums
    /// checked within `1e-5`).
    pub fn mean_log_likelihood<T: Copy + Into<f64>>(
        rows: &[T],
        m: usize,
        weights: &[f64],
        alphas: &[f64],
        clamp_eps: f64,
    ) -> Result<f64> {
        check_clamp(clamp_eps)?;
        check_weights(weights)?;
        let k = weights.len();
        if alphas.len() != k * m {
            return Err(MixtureError::Length {
                what: "alphas",
                len: alphas.len(),
                expected: k * m,
            });
        }
        for (i, &a) in alphas.iter().enumerate() {
            check_shape("alphas", i, a)?;
        }
        let x = clamp_rows(rows, m, clamp_eps, 1e-5)?;
        let mut mean = alphas.to_vec();
        for row in mean.chunks_exact_mut(m) {
            let s: f64 = row.iter().sum();
            row.iter_mut().for_each(|v| *v /= s);
        }
        let params = DirParams {
            m,
            rule: MStep::MethodOfMoments,
            w: weights.to_vec(),
            alpha: alphas.to_vec(),
            mean,
        };
        let data = em_data(&x, m);
        Ok(EmScratch::new(k, &data).mean_ll(&data, &params))
    }
}

fn closed_form_k1(x: &[f64], m: usize, config: &DirichletMixtureConfig) -> DirichletMixtureFit {
    let n = x.len() / m;
    let mut s1 = vec![0.0; m];
    let mut s2 = vec![0.0; m];
    for row in x.chunks_exact(m) {
        for j in 0..m {
            s1[j] += row[j];
            s2[j] += row[j] * row[j];
        }
    }
    let nf = n as f64;
    let mean: Vec<f64> = s1.iter().map(|s| s / nf).collect();
    let mut alpha = vec![0.0; m];
    match config.m_step {
        MStep::ReferenceMean => alpha.copy_from_slice(&mean),
        MStep::MethodOfMoments => dirichlet_moments(&mean, s2.iter().map(|s| s / nf), &mut alpha),
    }
    let params = DirParams {
        m,
        rule: config.m_step,
        w: vec![1.0],
        alpha,
        mean,
    };
    let data = em_data(x, m);
    let mean_ll = EmScratch::new(1, &data).mean_ll(&data, &params);
    DirichletMixtureFit {
        m,
        weights: params.w,
        alphas: params.alpha,
        means: params.mean,
        mean_log_likelihood: mean_ll,
        n_iter: 0,
        converged: true,
        clamp_eps: config.clamp_eps,
    }
}

impl DirichletMixtureFit {
    fn from_params(p: DirParams, out: EmOutcome, mean_ll: f64, clamp_eps: f64) -> Result<Self> {
        let (k, m) = (p.w.len(), p.m);
        let mut order: Vec<usize> = (0..k).collect();
        order.sort_by(|&i, &j| {
            let (a, b) = (&p.mean[i * m..(i + 1) * m], &p.mean[j * m..(j + 1) * m]);
            a.iter()
                .zip(b)
                .map(|(x, y)| x.total_cmp(y))
                .find(|o| o.is_ne())
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        let gather = |v: &[f64]| -> Vec<f64> {
            order
                .iter()
                .flat_map(|&i| v[i * m..(i + 1) * m].iter().copied())
                .collect()
        };
        let fit = Self {
            m,
            weights: order.iter().map(|&i| p.w[i]).collect(),
            alphas: gather(&p.alpha),
            means: gather(&p.mean),
            mean_log_likelihood: mean_ll,
            n_iter: out.n_iter,
            converged: out.converged,
            clamp_eps,
        };
        let ok = fit.mean_log_likelihood.is_finite()
            && fit.weights.iter().all(|w| w.is_finite())
            && fit.alphas.iter().all(|&a| a.is_finite() && a > 0.0);
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

    /// Number of entries per row M.
    pub fn dim(&self) -> usize {
        self.m
    }

    /// Mixing weights πₖ (sum to 1).
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }

    /// Concentration parameters, row-major `[K, M]`.
    pub fn alphas(&self) -> &[f64] {
        &self.alphas
    }

    /// Concentration parameters αₖ of component `k`.
    pub fn alpha(&self, k: usize) -> &[f64] {
        &self.alphas[k * self.m..(k + 1) * self.m]
    }

    /// Component mean vectors, row-major `[K, M]`: the weighted mean rows of the last M-step
    /// (equal to `αₖ / Σⱼ αₖⱼ` up to rounding).
    pub fn means(&self) -> &[f64] {
        &self.means
    }

    /// Mean vector of component `k`: the coefficient vector DaWin merges with.
    pub fn mean(&self, k: usize) -> &[f64] {
        &self.means[k * self.m..(k + 1) * self.m]
    }

    /// Mean log-likelihood of the fitted (clamped) rows under the returned parameters.
    pub fn mean_log_likelihood(&self) -> f64 {
        self.mean_log_likelihood
    }

    /// EM iterations of the returned initialisation; 0 for the closed-form K = 1.
    pub fn n_iter(&self) -> usize {
        self.n_iter
    }

    /// Whether the returned initialisation met the tolerance before `max_iter`.
    pub fn converged(&self) -> bool {
        self.converged
    }

    fn log_joint_rows<T: Copy + Into<f64>>(&self, rows: &[T]) -> Result<Vec<f64>> {
        let m = self.m;
        let x = clamp_rows(rows, m, self.clamp_eps, 1e-5)?;
        let k = self.k();
        let c0: Vec<f64> = (0..k)
            .map(|j| self.weights[j].ln() - ln_multi_beta(self.alpha(j)))
            .collect();
        let mut out = Vec::with_capacity(x.len() / m * k);
        // The E-step's own features and operation order (see `BetaMixtureFit::predict`).
        let mut lx = vec![0.0; m];
        for row in x.chunks_exact(m) {
            for (d, &v) in lx.iter_mut().zip(row) {
                *d = ln_pos(v);
            }
            for (j, &c) in c0.iter().enumerate() {
                let mut l = c;
                for (&a, &u) in self.alpha(j).iter().zip(&lx) {
                    l = (a - 1.0).mul_add(u, l);
                }
                out.push(l);
            }
        }
        Ok(out)
    }

    /// Component with the highest posterior for every row (ties to the lower index).
    pub fn predict<T: Copy + Into<f64>>(&self, rows: &[T]) -> Result<Vec<usize>> {
        let l = self.log_joint_rows(rows)?;
        Ok(l.chunks_exact(self.k()).map(argmax).collect())
    }

    /// Posterior probabilities γᵢₖ, row-major `[N, K]`.
    pub fn predict_proba<T: Copy + Into<f64>>(&self, rows: &[T]) -> Result<Vec<f64>> {
        let mut l = self.log_joint_rows(rows)?;
        for row in l.chunks_exact_mut(self.k()) {
            softmax_in_place(row);
        }
        Ok(l)
    }

    /// Per-row coefficient vectors DaWin uses, row-major `[N, M]`: the mean vector of the
    /// component with the highest posterior.
    pub fn lambdas<T: Copy + Into<f64>>(&self, rows: &[T]) -> Result<Vec<f64>> {
        Ok(self
            .predict(rows)?
            .into_iter()
            .flat_map(|c| self.mean(c).iter().copied())
            .collect())
    }

    /// Mean log-likelihood of other rows under this fit.
    pub fn mean_log_likelihood_of<T: Copy + Into<f64>>(&self, rows: &[T]) -> Result<f64> {
        DirichletMixture::mean_log_likelihood(
            rows,
            self.m,
            &self.weights,
            &self.alphas,
            self.clamp_eps,
        )
    }
}
