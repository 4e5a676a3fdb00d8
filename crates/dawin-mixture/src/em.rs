//! The EM machinery shared by the Beta and the Dirichlet mixture.
//!
//! Both densities are exponential families whose log-density is linear in fixed per-sample
//! features: for component k,
//!
//! ```text
//! ln πₖ + ln pₖ(xᵢ) = c0ₖ + Σ_f caₖf · featᵢf
//! Beta:       feat = (ln λ, ln(1−λ)),   ca = (a−1, b−1),   c0 = ln π − ln B(a, b)
//! Dirichlet:  feat = (ln x₁ … ln x_M),  ca = (α₁−1 … α_M−1), c0 = ln π − ln B(α)
//! ```
//!
//! so the features are computed once per fit and an E-step costs K·F multiply-adds per sample
//! plus one log-sum-exp. A concentrated Beta component (`a + b ≥ 1024`) is the exception: its
//! terms would cancel catastrophically, so it is evaluated about its mean with per-sample
//! centred features instead ([`crate::logpdf`]; about the cost of a linear component for
//! samples near its mean, up to about four times that for samples far from it). One [`pass`] over the data performs the E-step and accumulates what the
//! M-step needs (`Nₖ = Σᵢ γᵢₖ`, `Σᵢ γᵢₖ xᵢq`, `Σᵢ γᵢₖ xᵢq²`) and the log-likelihood
//! `Σᵢ ln Σₖ exp(lᵢₖ)`, without storing the N×K responsibilities.
//!
//! Speed: on x86-64 with AVX2 and FMA an explicit SIMD kernel processes blocks of 64 samples
//! stage by stage (log-joints, maxima, `exp` by a branch-free Padé form, see
//! [`crate::fastmath`], reciprocals, moments), four samples per vector, so that every stage
//! loops over independent vectors; elsewhere, and for the last `N mod 4` samples, a scalar twin
//! performs the same operations.
//!
//! Determinism: a pass is single-threaded (the EM runs of different initialisations may run on
//! different threads, see [`best_of`], each its own computation); sample i always accumulates
//! into lane `i mod 8` (in increasing i) and the lanes are combined in a fixed order; every
//! fused multiply-add is explicit (`f64::mul_add` / `vfmadd`, correctly rounded everywhere). So
//! a given input gives bit-identical results on every run, and the SIMD kernel and the scalar
//! twin agree bit for bit (tested), whichever one a machine runs.

use crate::fastmath::{exp_nonpos, fill_ln};
use crate::logpdf::Centre;

/// Accumulation lanes: sample i goes to lane i mod 8 (two AVX2 registers, so that every
/// running sum and product is split into two independent dependency chains).
const LANES: usize = 8;
/// The reference's stability constant, `10 · f64::EPSILON`.
pub(crate) const EPS10: f64 = 10.0 * f64::EPSILON;
/// The reference adds this to the variance in the method-of-moments formula.
pub(crate) const VAR_FLOOR: f64 = 1e-10;

const MANTISSA: u64 = (1u64 << 52) - 1;
const EXP_ONE: u64 = 1023u64 << 52;

/// Features and moment columns, column-major (`n_pad` = stride of a column).
pub(crate) struct EmData {
    pub n: usize,
    n_pad: usize,
    n_feat: usize,
    n_mom: usize,
    feat: Vec<f64>,
    mom: Vec<f64>,
}

impl EmData {
    /// Dirichlet mixture data from clamped rows (row-major, `m` per row): features `ln xⱼ`,
    /// moments `xⱼ`.
    pub fn dirichlet(x: &[f64], m: usize) -> Self {
        let n = x.len() / m;
        let mut feat = vec![0.0; m * n];
        let mut mom = vec![0.0; m * n];
        for (i, row) in x.chunks_exact(m).enumerate() {
            for (j, &v) in row.iter().enumerate() {
                mom[j * n + i] = v;
            }
        }
        for j in 0..m {
            fill_ln(
                &mom[j * n..(j + 1) * n],
                &mut feat[j * n..(j + 1) * n],
                false,
            );
        }
        Self {
            n,
            n_pad: n,
            n_feat: m,
            n_mom: m,
            feat,
            mom,
        }
    }

    /// Beta mixture data from clamped coefficients: features (ln λ, ln(1−λ)), moment λ.
    pub fn beta(x: &[f64]) -> Self {
        let n = x.len();
        let n_pad = n;
        let mut feat = vec![0.0; 2 * n_pad];
        let (lx, l1x) = feat.split_at_mut(n_pad);
        fill_ln(x, &mut lx[..n], false);
        // ln(1 − λ) as the reference computes it (1 − λ has an absolute rounding error below
        // 1.2e-16).
        fill_ln(x, &mut l1x[..n], true);
        let mut mom = vec![0.0; n_pad];
        mom[..n].copy_from_slice(x);
        Self {
            n,
            n_pad,
            n_feat: 2,
            n_mom: 1,
            feat,
            mom,
        }
    }
}

/// Sufficient statistics of one pass: `nk[k] = Σᵢ γᵢₖ`, `s1[k·Q + q] = Σᵢ γᵢₖ xᵢq`,
/// `s2[k·Q + q] = Σᵢ γᵢₖ xᵢq²`.
#[derive(Clone, Debug)]
pub(crate) struct Stats {
    pub nk: Vec<f64>,
    pub s1: Vec<f64>,
    pub s2: Vec<f64>,
}

impl Stats {
    pub fn zeros(k: usize, q: usize) -> Self {
        Self {
            nk: vec![0.0; k],
            s1: vec![0.0; k * q],
            s2: vec![0.0; k * q],
        }
    }
}

/// Per-lane accumulators of one pass: lane j collects the samples i with i mod 4 = j.
#[derive(Clone, Debug)]
struct Acc {
    n: Vec<[f64; LANES]>,
    s1: Vec<[f64; LANES]>,
    s2: Vec<[f64; LANES]>,
    ll_max: [f64; LANES],
    ll_prod: [f64; LANES],
    ll_expo: [i64; LANES],
}

impl Acc {
    fn reset(&mut self) {
        for a in self
            .n
            .iter_mut()
            .chain(self.s1.iter_mut())
            .chain(self.s2.iter_mut())
        {
            *a = [0.0; LANES];
        }
        self.ll_max = [0.0; LANES];
        self.ll_prod = [1.0; LANES];
        self.ll_expo = [0; LANES];
    }
}

/// Scratch space for [`pass`], allocated once per fit.
pub(crate) struct Workspace {
    k: usize,
    q: usize,
    /// Per-component scratch of the scalar path.
    e: Vec<f64>,
    /// Block scratch of the SIMD path, `[K][16]` vectors of 4.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    block: Vec<[f64; 4]>,
    acc: Acc,
}

impl Workspace {
    pub fn new(k: usize, q: usize) -> Self {
        Self {
            k,
            q,
            e: vec![0.0; k],
            block: vec![[0.0; 4]; k * 16],
            acc: Acc {
                n: vec![[0.0; LANES]; k],
                s1: vec![[0.0; LANES]; k * q],
                s2: vec![[0.0; LANES]; k * q],
                ll_max: [0.0; LANES],
                ll_prod: [1.0; LANES],
                ll_expo: [0; LANES],
            },
        }
    }
}

/// Sum of the lanes in a fixed order.
#[inline(always)]
fn lane_sum(a: &[f64; LANES]) -> f64 {
    ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]))
}

/// `p · s` kept as a mantissa in [1, 2) and a binary exponent added to `expo`.
#[inline(always)]
fn renormalised_product(p: f64, s: f64, expo: &mut i64) -> f64 {
    let bits = (p * s).to_bits();
    *expo += (bits >> 52) as i64 - 1023;
    f64::from_bits((bits & MANTISSA) | EXP_ONE)
}

/// One E-step over all samples with log-joint coefficients `c0[k]`, `ca[k·F + f]`; a
/// component with a centre (Beta data only) uses its centred features instead of the shared
/// ones (see [`crate::logpdf`]).
///
/// Returns `Σᵢ ln Σₖ exp(c0ₖ + Σ_f caₖf · featᵢf)`; when `stats` is given, also fills it.
pub(crate) fn pass(
    data: &EmData,
    c0: &[f64],
    ca: &[f64],
    centres: &[Option<Centre>],
    ws: &mut Workspace,
    stats: Option<&mut Stats>,
) -> f64 {
    debug_assert_eq!(c0.len(), ws.k);
    debug_assert_eq!(ca.len(), ws.k * data.n_feat);
    debug_assert_eq!(ws.q, data.n_mom);
    assert!(centres.len() == ws.k);
    // Centred features are those of a Beta component: λ is moment column 0.
    assert!(centres.iter().all(Option::is_none) || (data.n_feat == 2 && data.n_mom == 1));
    ws.acc.reset();
    let want_stats = stats.is_some();
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU supports AVX2 and FMA (checked just above).
            done = unsafe { simd::pass_avx2(data, c0, ca, centres, ws, want_stats) };
        }
    }
    for i in done..data.n {
        sample_step(data, i, c0, ca, centres, ws, want_stats);
    }
    finish(ws, stats)
}

/// The scalar E-step of sample `i` (lane `i mod 4`). The AVX2 kernel performs exactly these
/// operations, in this order, on four samples at a time.
#[inline(always)]
fn sample_step(
    data: &EmData,
    i: usize,
    c0: &[f64],
    ca: &[f64],
    centres: &[Option<Centre>],
    ws: &mut Workspace,
    want_stats: bool,
) {
    let (k_n, n_feat, n_mom, n_pad) = (ws.k, data.n_feat, data.n_mom, data.n_pad);
    let j = i % LANES;
    let e = &mut ws.e;
    for k in 0..k_n {
        if let Some(centre) = &centres[k] {
            let (d, g1, g2) = centre.features(data.mom[i]);
            e[k] = centre.combine(c0[k], ca[2 * k], ca[2 * k + 1], d, g1, g2);
            continue;
        }
        let mut l = c0[k];
        for f in 0..n_feat {
            l = ca[k * n_feat + f].mul_add(data.feat[f * n_pad + i], l);
        }
        e[k] = l;
    }
    let mut mx = e[0];
    for &ek in &e[1..] {
        mx = if ek > mx { ek } else { mx };
    }
    let mut s = 0.0;
    for ek in e.iter_mut() {
        *ek = exp_nonpos(*ek - mx);
        s += *ek;
    }
    let r = 1.0 / s;
    let acc = &mut ws.acc;
    acc.ll_max[j] += mx;
    acc.ll_prod[j] = renormalised_product(acc.ll_prod[j], s, &mut acc.ll_expo[j]);
    if want_stats {
        for k in 0..k_n {
            let g = e[k] * r;
            acc.n[k][j] += g;
            for q in 0..n_mom {
                let x = data.mom[q * n_pad + i];
                let gx = g * x;
                acc.s1[k * n_mom + q][j] += gx;
                acc.s2[k * n_mom + q][j] = gx.mul_add(x, acc.s2[k * n_mom + q][j]);
            }
        }
    }
}

fn finish(ws: &Workspace, stats: Option<&mut Stats>) -> f64 {
    let acc = &ws.acc;
    if let Some(st) = stats {
        for k in 0..ws.k {
            st.nk[k] = lane_sum(&acc.n[k]);
            for q in 0..ws.q {
                st.s1[k * ws.q + q] = lane_sum(&acc.s1[k * ws.q + q]);
                st.s2[k * ws.q + q] = lane_sum(&acc.s2[k * ws.q + q]);
            }
        }
    }
    let mut logs = [0.0f64; LANES];
    for j in 0..LANES {
        logs[j] = acc.ll_prod[j].ln() + acc.ll_expo[j] as f64 * std::f64::consts::LN_2;
    }
    lane_sum(&acc.ll_max) + lane_sum(&logs)
}

#[cfg(target_arch = "x86_64")]
mod simd;

/// A mixture whose parameters EM updates.
pub(crate) trait EmModel {
    /// Log-joint coefficients of the current parameters (see the module docs), and the
    /// centres of the components evaluated in centred form (left `None` otherwise).
    fn coefficients(&self, c0: &mut [f64], ca: &mut [f64], centres: &mut [Option<Centre>]);
    /// M-step from the statistics of one pass.
    fn m_step(&mut self, stats: &Stats);
}

/// Result of one EM run.
pub(crate) struct EmOutcome {
    pub n_iter: usize,
    pub converged: bool,
    /// Mean log-likelihood of the last E-step (of the parameters before the last M-step): the
    /// reference's criterion for choosing among initialisations.
    pub last_ll: f64,
}

/// Scratch shared by all EM runs of one fit.
pub(crate) struct EmScratch {
    ws: Workspace,
    stats: Stats,
    c0: Vec<f64>,
    ca: Vec<f64>,
    centres: Vec<Option<Centre>>,
}

impl EmScratch {
    pub fn new(k: usize, data: &EmData) -> Self {
        Self {
            ws: Workspace::new(k, data.n_mom),
            stats: Stats::zeros(k, data.n_mom),
            c0: vec![0.0; k],
            ca: vec![0.0; k * data.n_feat],
            centres: vec![None; k],
        }
    }

    /// Mean log-likelihood of `model` on `data`.
    pub fn mean_ll(&mut self, data: &EmData, model: &impl EmModel) -> f64 {
        model.coefficients(&mut self.c0, &mut self.ca, &mut self.centres);
        pass(data, &self.c0, &self.ca, &self.centres, &mut self.ws, None) / data.n as f64
    }
}

/// EM as the reference runs it: E-step (mean log-likelihood ℓ of the current parameters),
/// M-step, stop when |ℓ − ℓ_prev| < tol or after `max_iter` E-steps. The parameters the run
/// ends with are those of the last M-step.
pub(crate) fn run_em(
    data: &EmData,
    model: &mut impl EmModel,
    max_iter: usize,
    tol: f64,
    scratch: &mut EmScratch,
) -> EmOutcome {
    let mut prev = f64::NEG_INFINITY;
    let mut last_ll = f64::NEG_INFINITY;
    let mut n_iter = 0;
    let mut converged = false;
    for it in 1..=max_iter {
        n_iter = it;
        model.coefficients(&mut scratch.c0, &mut scratch.ca, &mut scratch.centres);
        last_ll = pass(
            data,
            &scratch.c0,
            &scratch.ca,
            &scratch.centres,
            &mut scratch.ws,
            Some(&mut scratch.stats),
        ) / data.n as f64;
        model.m_step(&scratch.stats);
        if (last_ll - prev).abs() < tol {
            converged = true;
            break;
        }
        prev = last_ll;
    }
    EmOutcome {
        n_iter,
        converged,
        last_ll,
    }
}

/// Below this many sample-components (`N·K`) the initialisations run one after another: a
/// thread would cost more than it saves.
const PARALLEL_MIN_WORK: usize = 16_384;

/// How many threads a fit may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Threads {
    /// The calling thread only (the caller already runs fits in parallel).
    One,
    /// Up to [`available_threads`] when the work is large enough.
    Auto,
}

/// [`std::thread::available_parallelism`], or 1 when it is unknown.
pub(crate) fn available_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |t| t.get())
}

/// Runs EM from each initial model (`inits`, in initialisation order) and returns the best one
/// with its outcome and the mean log-likelihood of its final parameters. The best has the highest
/// `last_ll`; among equals the earliest wins, as in the reference.
///
/// The runs are independent, so with `N·K ≥ PARALLEL_MIN_WORK` they are spread over up to
/// [`std::thread::available_parallelism`] scoped threads (each with its own scratch). Every run
/// is the same computation on any thread, so the result is bit-identical whatever the number of
/// threads.
pub(crate) fn best_of<P: EmModel + Send>(
    data: &EmData,
    k: usize,
    inits: Vec<P>,
    max_iter: usize,
    tol: f64,
    threads: Threads,
) -> (P, EmOutcome, f64) {
    let threads = match threads {
        Threads::One => 1,
        Threads::Auto if data.n * k < PARALLEL_MIN_WORK => 1,
        Threads::Auto => available_threads(),
    };
    best_of_on(data, k, inits, max_iter, tol, threads)
}

/// [`best_of`] on at most `threads` threads.
pub(crate) fn best_of_on<P: EmModel + Send>(
    data: &EmData,
    k: usize,
    inits: Vec<P>,
    max_iter: usize,
    tol: f64,
    threads: usize,
) -> (P, EmOutcome, f64) {
    let threads = threads.min(inits.len());
    let runs: Vec<(P, EmOutcome)> = if threads <= 1 {
        let mut scratch = EmScratch::new(k, data);
        inits
            .into_iter()
            .map(|mut p| {
                let out = run_em(data, &mut p, max_iter, tol, &mut scratch);
                (p, out)
            })
            .collect()
    } else {
        // Round-robin: thread t runs initialisations t, t + threads, …; results are put back in
        // initialisation order before choosing.
        let mut slots: Vec<Vec<(usize, P)>> = (0..threads).map(|_| Vec::new()).collect();
        for (r, p) in inits.into_iter().enumerate() {
            slots[r % threads].push((r, p));
        }
        let mut done: Vec<(usize, P, EmOutcome)> = std::thread::scope(|s| {
            let handles: Vec<_> = slots
                .into_iter()
                .map(|slot| {
                    s.spawn(move || {
                        let mut scratch = EmScratch::new(k, data);
                        slot.into_iter()
                            .map(|(r, mut p)| {
                                let out = run_em(data, &mut p, max_iter, tol, &mut scratch);
                                (r, p, out)
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("an EM thread panicked"))
                .collect()
        });
        done.sort_by_key(|&(r, _, _)| r);
        done.into_iter().map(|(_, p, out)| (p, out)).collect()
    };
    let mut best: Option<(P, EmOutcome)> = None;
    for (p, out) in runs {
        if best.as_ref().is_none_or(|(_, b)| out.last_ll > b.last_ll) {
            best = Some((p, out));
        }
    }
    let (p, out) = best.expect("at least one initialisation");
    let mean_ll = EmScratch::new(k, data).mean_ll(data, &p);
    (p, out, mean_ll)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Straightforward evaluation of the same quantities with libm, for comparison.
    fn naive(data_x: &[f64], c0: &[f64], ca: &[f64]) -> (f64, Stats) {
        let k = c0.len();
        let mut st = Stats::zeros(k, 1);
        let mut ll = 0.0;
        for &x in data_x {
            let feat = [x.ln(), (-x).ln_1p()];
            let l: Vec<f64> = (0..k)
                .map(|j| c0[j] + ca[2 * j] * feat[0] + ca[2 * j + 1] * feat[1])
                .collect();
            let m = l.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let s: f64 = l.iter().map(|v| (v - m).exp()).sum();
            ll += m + s.ln();
            for j in 0..k {
                let g = (l[j] - m).exp() / s;
                st.nk[j] += g;
                st.s1[j] += g * x;
                st.s2[j] += g * x * x;
            }
        }
        (ll, st)
    }

    #[test]
    fn pass_matches_naive_evaluation() {
        // 203 samples: three full blocks and a partial one.
        let x: Vec<f64> = (0..203).map(|i| (i as f64 + 0.5) / 203.0).collect();
        let c0 = [-1.2, 0.3, -40.0];
        let ca = [1.0, 4.0, 9.0, 9.0, 30.0, 0.5];
        let data = EmData::beta(&x);
        let mut ws = Workspace::new(3, 1);
        let mut st = Stats::zeros(3, 1);
        let ll = pass(&data, &c0, &ca, &[None; 3], &mut ws, Some(&mut st));
        let (ll_ref, st_ref) = naive(&x, &c0, &ca);
        assert!(
            (ll - ll_ref).abs() < 1e-11 * ll_ref.abs().max(1.0),
            "{ll} vs {ll_ref}"
        );
        for j in 0..3 {
            assert!((st.nk[j] - st_ref.nk[j]).abs() < 1e-11 * st_ref.nk[j].max(1.0));
            assert!((st.s1[j] - st_ref.s1[j]).abs() < 1e-11 * st_ref.s1[j].max(1.0));
            assert!((st.s2[j] - st_ref.s2[j]).abs() < 1e-11 * st_ref.s2[j].max(1.0));
        }
        let total: f64 = st.nk.iter().sum();
        assert!((total - 203.0).abs() < 1e-10);
        // Without statistics the log-likelihood is the same number.
        let ll2 = pass(&data, &c0, &ca, &[None; 3], &mut ws, None);
        assert_eq!(ll.to_bits(), ll2.to_bits());
    }

    /// The scalar twin alone (what a machine without AVX2/FMA runs).
    fn pass_scalar(
        data: &EmData,
        c0: &[f64],
        ca: &[f64],
        centres: &[Option<Centre>],
        ws: &mut Workspace,
        stats: Option<&mut Stats>,
    ) -> f64 {
        ws.acc.reset();
        for i in 0..data.n {
            sample_step(data, i, c0, ca, centres, ws, stats.is_some());
        }
        finish(ws, stats)
    }

    #[test]
    fn simd_and_scalar_paths_are_bit_identical() {
        let mut x: Vec<f64> = (0..503)
            .map(|i| ((i * 7919) % 997) as f64 / 997.0 * 0.98 + 0.01)
            .collect();
        // Values at and next to the concentrated components' means, and near the clamps.
        for i in 0..40 {
            x[5 * i] = 0.3 + (i as f64 - 20.0) * 1e-9;
            x[5 * i + 1] = 0.999_999 - i as f64 * 1e-12;
        }
        x[7] = 1e-9;
        let ca = [2.0, 7.0, 10.0, 10.0, 7.0, 1.5, 40.0, 35.0];
        let data = EmData::beta(&x);
        let concentrated = crate::logpdf::BetaLogPdf::new(0.3e9, 0.7e9);
        let near_one = crate::logpdf::BetaLogPdf::new(2e6, 2.0);
        for centres in [
            [None; 4],
            [None, concentrated.centre, None, near_one.centre],
        ] {
            let c0 = [-0.7, -1.1, -2.0, 0.2];
            let mut ws = Workspace::new(4, 1);
            let mut st_a = Stats::zeros(4, 1);
            let mut st_b = Stats::zeros(4, 1);
            let a = pass(&data, &c0, &ca, &centres, &mut ws, Some(&mut st_a));
            let b = pass_scalar(&data, &c0, &ca, &centres, &mut ws, Some(&mut st_b));
            assert!(a.is_finite());
            assert_eq!(a.to_bits(), b.to_bits());
            for j in 0..4 {
                assert_eq!(st_a.nk[j].to_bits(), st_b.nk[j].to_bits());
                assert_eq!(st_a.s1[j].to_bits(), st_b.s1[j].to_bits());
                assert_eq!(st_a.s2[j].to_bits(), st_b.s2[j].to_bits());
            }
        }
    }

    /// The initialisations give the same winner, bit for bit, on 1, 2 or 4 threads, and the
    /// winner is the run with the highest last log-likelihood (the earliest among equals).
    #[test]
    fn best_of_is_independent_of_threads() {
        use crate::beta::BetaParams;
        let n = 6000;
        let x: Vec<f64> = (0..n)
            .map(|i| {
                let u = ((i * 7919) % 9973) as f64 / 9973.0;
                [0.15, 0.5, 0.85][i % 3] + 0.1 * (u - 0.5)
            })
            .collect();
        let mut sorted = x.clone();
        sorted.sort_by(f64::total_cmp);
        let data = EmData::beta(&sorted);
        // Five hard partitions of the sorted data into 3 runs (cut points), some poor.
        let cuts = [
            (2000, 4000),
            (100, 200),
            (3000, 5900),
            (2000, 4000),
            (1, 5999),
        ];
        let inits = || -> Vec<BetaParams> {
            cuts.iter()
                .map(|&(c1, c2)| {
                    let part = |lo: usize, hi: usize| {
                        let s = &sorted[lo..hi];
                        let s1: f64 = s.iter().sum();
                        let s2: f64 = s.iter().map(|v| v * v).sum();
                        ((hi - lo) as f64, s1, s2)
                    };
                    BetaParams::from_hard(n, &[part(0, c1), part(c1, c2), part(c2, n)])
                })
                .collect()
        };
        let key = |p: &BetaParams, o: &EmOutcome, ll: f64| {
            let mut v: Vec<u64> =
                p.w.iter()
                    .chain(&p.a)
                    .chain(&p.b)
                    .map(|f| f.to_bits())
                    .collect();
            v.extend([o.n_iter as u64, o.last_ll.to_bits(), ll.to_bits()]);
            v
        };
        let (p1, o1, l1) = best_of_on(&data, 3, inits(), 1000, 1e-4, 1);
        for threads in [2, 4] {
            let (p, o, l) = best_of_on(&data, 3, inits(), 1000, 1e-4, threads);
            assert_eq!(key(&p, &o, l), key(&p1, &o1, l1), "{threads} threads");
        }
        // The winner is the best of the individual runs.
        let mut scratch = EmScratch::new(3, &data);
        let lls: Vec<f64> = inits()
            .into_iter()
            .map(|mut p| run_em(&data, &mut p, 1000, 1e-4, &mut scratch).last_ll)
            .collect();
        let max = lls.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        assert_eq!(o1.last_ll.to_bits(), max.to_bits());
        assert!(
            lls.iter().any(|&l| l < max - 1e-3),
            "some initialisations are worse: {lls:?}"
        );
    }
}
