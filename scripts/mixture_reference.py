#!/usr/bin/env python3
# Reference values and timings for crates/dawin-mixture.
#
# requires: numpy==2.1.3 scipy==1.14.1 scikit-learn==1.5.2 mpmath==1.3.0
# (python3 -m venv /work/venvs/mixture && /work/venvs/mixture/bin/pip install <the above>);
# the `stability` mode needs only mpmath==1.3.0 (and the Python standard library).
#
# Usage:
#   python scripts/mixture_reference.py values > crates/dawin-mixture/tests/data/reference_values.rs
#       Prints Rust constants used by crates/dawin-mixture/tests/reference.rs:
#       * ln Γ(x) and ln B(a, b) evaluated with mpmath at 50 significant digits;
#       * the mean log-likelihood of fixed (λ, π, a, b) Beta mixtures and of a fixed Dirichlet
#         mixture, evaluated directly with mpmath (no code shared with the Rust crate);
#       * the reference procedure (scikit-learn KMeans hard initialisation, then the EM of
#         shared/DAWIN.md, "Mixture modelling", written here from that description) run on small
#         fixed data sets, with the fitted parameters sorted by component mean.
#   python scripts/mixture_reference.py stability > crates/dawin-mixture/tests/data/stability_values.rs
#   (then `cargo fmt --all`, which the committed file has been through)
#       Prints Rust constants used by crates/dawin-mixture/tests/stability.rs: the Beta
#       log-density at points where its terms cancel catastrophically in double precision
#       (a, b up to 1e12, x at and next to the mean, x near the clamps), and the K = 1 fit of
#       degenerate data (all-equal values, two nearly equal values, values at 1e-7 and 1 - 1e-7):
#       its (a, b) by the reference M-step in plain double arithmetic, in the crate's operation
#       order (sequential sums), and the mean log-likelihood of those parameters, all with mpmath
#       at 50 significant digits.
#   python scripts/mixture_reference.py time
#       Times the NumPy/SciPy/scikit-learn reference on the 50 000-sample bench data set
#       (the same SplitMix64-generated data as benches/benches/mixture.rs) for K = 1, 2, 3, 5
#       with 3 initialisations, and prints the median wall time of 5 runs and the iterations.

import sys
import time

import mpmath
import numpy as np


def _import_reference():
    """SciPy and scikit-learn, which the `values` and `time` modes need (not `stability`)."""
    global betaln, gammaln, logsumexp, KMeans
    from scipy.special import betaln, gammaln, logsumexp  # noqa: F401
    from sklearn.cluster import KMeans  # noqa: F401

EPS10 = 10.0 * np.finfo(np.float64).eps  # the reference's stability constant
VAR_FLOOR = 1e-10  # the reference adds this to the variance in the moment formula

mpmath.mp.dps = 50


# ---------------------------------------------------------------------------------------------
# Portable data generator shared with benches/benches/mixture.rs (SplitMix64 + gamma sums).
# ---------------------------------------------------------------------------------------------
MASK64 = (1 << 64) - 1


class SplitMix64:
    def __init__(self, seed):
        self.state = seed & MASK64

    def next_u64(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return z ^ (z >> 31)

    def uniform_open(self):
        # (0, 1): 53 random bits, offset by half a step so 0 never occurs.
        return ((self.next_u64() >> 11) + 0.5) * (1.0 / 9007199254740992.0)


def gamma_int(rng, shape):
    # Gamma(shape, 1) for an integer shape: -sum of `shape` log-uniforms.
    s = 0.0
    for _ in range(shape):
        s -= np.log(rng.uniform_open())
    return s


# 0.3 Beta(2, 8) + 0.45 Beta(12, 12) + 0.25 Beta(8, 2)
BENCH_WEIGHTS = (0.3, 0.45, 0.25)
BENCH_SHAPES = ((2, 8), (12, 12), (8, 2))


def bench_data(n, seed=2025):
    rng = SplitMix64(seed)
    out = np.empty(n)
    for i in range(n):
        u = rng.uniform_open()
        k = 0 if u < BENCH_WEIGHTS[0] else (1 if u < BENCH_WEIGHTS[0] + BENCH_WEIGHTS[1] else 2)
        a, b = BENCH_SHAPES[k]
        ga = gamma_int(rng, a)
        gb = gamma_int(rng, b)
        out[i] = ga / (ga + gb)
    return out


# ---------------------------------------------------------------------------------------------
# The reference procedure (shared/DAWIN.md, "Mixture modelling").
# ---------------------------------------------------------------------------------------------
def beta_m_step(x, resp):
    counts = resp.sum(axis=0) + EPS10
    w = counts / counts.sum()
    m = (resp.T @ x) / counts
    v = (resp.T @ (x * x)) / counts - m * m
    v = np.minimum(v, m * (1.0 - m) / 4.0) + EPS10
    c = m * (1.0 - m) / (v + VAR_FLOOR) - 1.0
    return w, c * m, c * (1.0 - m)


def beta_log_joint(x, w, a, b):
    lx, l1x = np.log(x), np.log1p(-x)
    lp = np.empty((x.shape[0], w.shape[0]))
    for k in range(w.shape[0]):
        lp[:, k] = np.log(w[k]) + (a[k] - 1.0) * lx + (b[k] - 1.0) * l1x - betaln(a[k], b[k])
    return lp


def beta_e_step(x, w, a, b):
    lp = beta_log_joint(x, w, a, b)
    norm = logsumexp(lp, axis=1)
    return norm.mean(), np.exp(lp - norm[:, None])


def kmeans_resp(data2d, k, seed, eps):
    labels = KMeans(n_clusters=k, n_init=1, random_state=seed).fit(data2d).labels_
    resp = np.zeros((data2d.shape[0], k))
    resp[np.arange(data2d.shape[0]), labels] = 1.0
    return resp + eps, labels


def bmm_em(x, resp, max_iter, tol):
    """EM from initial responsibilities; returns the parameters of the last M-step, the mean
    log-likelihood of the last E-step (the reference's selection criterion), iterations."""
    w, a, b = beta_m_step(x, resp)
    ll = -np.inf
    converged = False
    n_iter = 0
    for _ in range(max_iter):
        prev = ll
        ll, resp = beta_e_step(x, w, a, b)
        w, a, b = beta_m_step(x, resp)
        n_iter += 1
        if abs(ll - prev) < tol:
            converged = True
            break
    return w, a, b, ll, n_iter, converged


def sort_bmm(w, a, b):
    order = np.argsort(a / (a + b), kind="stable")
    return w[order], a[order], b[order]


def reference_bmm(x, k, n_init=3, max_iter=1000, tol=1e-4, seed=0):
    best = None
    runs = []
    for r in range(n_init):
        resp, labels = kmeans_resp(x[:, None], k, seed + r, EPS10)
        w, a, b, ll, n_iter, converged = bmm_em(x, resp, max_iter, tol)
        final_ll, _ = beta_e_step(x, w, a, b)  # mean log-likelihood of the returned parameters
        runs.append(dict(labels=labels, n_iter=n_iter, converged=converged, final_ll=final_ll,
                         sizes=np.bincount(labels, minlength=k), params=sort_bmm(w, a, b)))
        if best is None or ll > best[0]:  # the reference keeps the best last-E-step value
            best = (ll, r)
    return runs, best[1]


def dirichlet_m_step(x, resp, mom, eps):
    counts = resp.sum(axis=0) + eps
    w = counts / counts.sum()
    means = (resp.T @ x) / counts[:, None]
    if not mom:
        return w, means.copy()
    sq = (resp.T @ (x * x)) / counts[:, None]
    m_dim = x.shape[1]
    alphas = np.empty_like(means)
    for k in range(means.shape[0]):
        m = means[k]
        s_bar = np.sum(m * (1.0 - m)) / m_dim
        v_bar = np.sum(sq[k] - m * m) / m_dim
        v_bar = min(v_bar, s_bar / 4.0) + EPS10
        c = s_bar / (v_bar + VAR_FLOOR) - 1.0
        alphas[k] = c * m
    return w, alphas


def dirichlet_log_joint(lx, w, alphas):
    lp = np.empty((lx.shape[0], w.shape[0]))
    for k in range(w.shape[0]):
        al = alphas[k]
        lp[:, k] = np.log(w[k]) + gammaln(al.sum()) - gammaln(al).sum() + lx @ (al - 1.0)
    return lp


def dmm_em_from_labels(x, labels, k, mom, max_iter=1000, tol=1e-4):
    eps = EPS10 if mom else 1e-14
    lx = np.log(x)
    resp = np.zeros((x.shape[0], k))
    resp[np.arange(x.shape[0]), labels] = 1.0
    resp += eps
    w, al = dirichlet_m_step(x, resp, mom, eps)
    ll = -np.inf
    n_iter = 0
    for _ in range(max_iter):
        prev = ll
        lp = dirichlet_log_joint(lx, w, al)
        norm = logsumexp(lp, axis=1)
        ll = norm.mean()
        w, al = dirichlet_m_step(x, np.exp(lp - norm[:, None]), mom, eps)
        n_iter += 1
        if abs(ll - prev) < tol:
            break
    final_ll = logsumexp(dirichlet_log_joint(lx, w, al), axis=1).mean()
    means = al / al.sum(axis=1, keepdims=True)
    order = np.lexsort(means.T[::-1])  # lexicographic by mean vector
    return dict(w=w[order], alphas=al[order], ll=final_ll, n_iter=n_iter)


# ---------------------------------------------------------------------------------------------
# High-precision direct evaluations (mpmath).
# ---------------------------------------------------------------------------------------------
def mp_lnbeta(a, b):
    a, b = mpmath.mpf(a), mpmath.mpf(b)
    return mpmath.loggamma(a) + mpmath.loggamma(b) - mpmath.loggamma(a + b)


def mp_beta_mixture_mean_ll(x, w, a, b):
    total = mpmath.mpf(0)
    for xi in x:
        xi = mpmath.mpf(xi)
        s = mpmath.mpf(0)
        for wk, ak, bk in zip(w, a, b):
            lp = (mpmath.log(wk) + (ak - 1) * mpmath.log(xi) + (bk - 1) * mpmath.log(1 - xi)
                  - mp_lnbeta(ak, bk))
            s += mpmath.exp(lp)
        total += mpmath.log(s)
    return total / len(x)


def mp_dirichlet_mixture_mean_ll(rows, w, alphas):
    total = mpmath.mpf(0)
    for row in rows:
        s = mpmath.mpf(0)
        for wk, al in zip(w, alphas):
            al = [mpmath.mpf(v) for v in al]
            lp = mpmath.log(wk) + mpmath.loggamma(sum(al)) - sum(mpmath.loggamma(v) for v in al)
            lp += sum((v - 1) * mpmath.log(mpmath.mpf(xj)) for v, xj in zip(al, row))
            s += mpmath.exp(lp)
        total += mpmath.log(s)
    return total / len(rows)


# ---------------------------------------------------------------------------------------------
# Output helpers.
# ---------------------------------------------------------------------------------------------
def f(v):
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    r = repr(float(v))
    if r in ("inf", "-inf", "nan"):
        raise ValueError(r)
    return r if ("." in r or "e" in r) else r + ".0"


def arr(name, values, ty="f64"):
    vals = list(values)
    fmt = (lambda v: str(int(v))) if ty == "usize" else f
    per = 16 if ty == "usize" else 4
    body = ",\n    ".join(", ".join(fmt(v) for v in vals[i:i + per]) for i in range(0, len(vals), per))
    print(f"pub const {name}: [{ty}; {len(vals)}] = [\n    {body},\n];")


def values():
    print("// @generated by scripts/mixture_reference.py values")
    print("// (numpy==2.1.3 scipy==1.14.1 scikit-learn==1.5.2 mpmath==1.3.0). Do not edit by hand.")
    print("#![allow(dead_code)]")
    print()

    xs = [1e-300, 1e-10, 1e-3, 0.1, 0.5, 0.9, 1.0, 1.25, 1.5, 1.9, 2.0, 2.5, 3.7, 7.25, 9.99, 10.0,
          10.01, 33.3, 100.0, 1234.5, 1e5, 3.3e7, 1e10, 2.5e9, 1e15]
    print("/// (x, ln Γ(x)) from mpmath.loggamma at 50 digits.")
    print(f"pub const LN_GAMMA: [(f64, f64); {len(xs)}] = [")
    for x in xs:
        print(f"    ({f(x)}, {f(mpmath.loggamma(mpmath.mpf(x)))}),")
    print("];")
    print()

    pairs = [(0.5, 0.5), (1.0, 1.0), (2.0, 3.0), (0.01, 7.5), (3.0, 1e-4), (15.0, 40.0),
             (2.5e9, 2.5e9), (1.25e9, 3.75e9), (1e6, 3.0), (7.0, 1e8), (123.4, 0.2),
             (9.99, 10.01), (1e15, 1e15), (3e4, 2e5)]
    print("/// (a, b, ln B(a, b)) from mpmath at 50 digits.")
    print(f"pub const LN_BETA: [(f64, f64, f64); {len(pairs)}] = [")
    for a, b in pairs:
        print(f"    ({f(a)}, {f(b)}, {f(mp_lnbeta(a, b))}),")
    print("];")
    print()

    # Fixed Beta mixture and fixed coefficients: direct mean log-likelihood.
    lam = [0.001, 0.02, 0.1, 0.25, 0.33, 0.5, 0.61, 0.75, 0.9, 0.98, 0.999, 0.4242]
    w = [0.2, 0.5, 0.3]
    a = [0.7, 15.0, 30000.0]
    b = [3.2, 14.0, 20000.0]
    arr("LL_LAMBDAS", lam)
    arr("LL_WEIGHTS", w)
    arr("LL_A", a)
    arr("LL_B", b)
    print("/// Mean log-likelihood of LL_LAMBDAS under (LL_WEIGHTS, LL_A, LL_B), mpmath.")
    print(f"pub const LL_MEAN: f64 = {f(mp_beta_mixture_mean_ll(lam, w, a, b))};")
    # scipy cross-check printed as a comment
    sp = logsumexp(beta_log_joint(np.array(lam), np.array(w), np.array(a), np.array(b)), axis=1).mean()
    print(f"// scipy.special.betaln + logsumexp gives {f(sp)}")
    print()

    rows = [[0.1, 0.2, 0.3, 0.4], [0.25, 0.25, 0.25, 0.25], [0.7, 0.1, 0.1, 0.1],
            [0.01, 0.02, 0.03, 0.94], [0.4, 0.35, 0.2, 0.05]]
    dw = [0.6, 0.4]
    dal = [[2.0, 3.0, 4.0, 5.0], [0.5, 0.7, 1.5, 9.0]]
    arr("DLL_ROWS", [v for r in rows for v in r])
    arr("DLL_WEIGHTS", dw)
    arr("DLL_ALPHAS", [v for r in dal for v in r])
    print("/// Mean log-likelihood of DLL_ROWS (M = 4) under (DLL_WEIGHTS, DLL_ALPHAS), mpmath.")
    print(f"pub const DLL_MEAN: f64 = {f(mp_dirichlet_mixture_mean_ll(rows, dw, dal))};")
    print()

    # Reference procedure on fixed small data sets.
    rng = np.random.default_rng(20250301)
    comp = rng.choice(3, size=600, p=[0.3, 0.45, 0.25])
    shapes = np.array([[2.0, 9.0], [12.0, 12.0], [9.0, 2.0]])
    ds1 = rng.beta(shapes[comp, 0], shapes[comp, 1])
    fit1 = reference_bmm(ds1, 3, seed=0)
    comp = rng.choice(2, size=400, p=[0.6, 0.4])
    shapes = np.array([[3.0, 5.0], [6.0, 3.0]])
    ds2 = rng.beta(shapes[comp, 0], shapes[comp, 1])
    fit2 = reference_bmm(ds2, 2, seed=0)
    for name, ds, (runs, best) in (("REF1", ds1, fit1), ("REF2", ds2, fit2)):
        print(f"// {name}: per initialisation (EM iterations, converged, final mean ll, k-means sizes):")
        for run in runs:
            print(f"//   {run['n_iter']}, {run['converged']}, {f(run['final_ll'])}, {list(map(int, run['sizes']))}")
        arr(f"{name}_DATA", ds)
        arr(f"{name}_LABELS0", runs[0]["labels"], ty="usize")
        # scikit-learn stops Lloyd on a centre-shift tolerance; with tol=0 it runs to the fixed
        # point, as the Rust k-means does. Cluster sizes of that fixed point, ascending:
        k = len(runs[0]["sizes"])
        conv = KMeans(n_clusters=k, n_init=1, random_state=0, tol=0.0).fit(ds[:, None])
        arr(f"{name}_FIXED_POINT_SIZES", sorted(np.bincount(conv.labels_, minlength=k)), ty="usize")
        for tag, run in (("RUN0", runs[0]), ("BEST", runs[best])):
            w, a, b = run["params"]
            print(f"/// {name}: EM from {'the k-means labels of seed 0' if tag == 'RUN0' else 'the best of the 3 initialisations'}, sorted by mean.")
            arr(f"{name}_{tag}_WEIGHTS", w)
            arr(f"{name}_{tag}_A", a)
            arr(f"{name}_{tag}_B", b)
            print(f"pub const {name}_{tag}_LL: f64 = {f(run['final_ll'])};")
            print(f"pub const {name}_{tag}_N_ITER: usize = {run['n_iter']};")
        print()

    # K = 1 on REF1_DATA (no random numbers drawn, so the data below is unchanged): the
    # reference's M-step from one cluster's responsibilities (1 + 10ε), and the mean
    # log-likelihood of those parameters evaluated with mpmath.
    w1, a1, b1 = beta_m_step(ds1, np.ones((len(ds1), 1)) + EPS10)
    print("/// REF1_DATA with K = 1: the reference M-step (responsibilities 1 + 10ε) and mpmath's mean ll.")
    print(f"pub const REF1_K1_A: f64 = {f(a1[0])};")
    print(f"pub const REF1_K1_B: f64 = {f(b1[0])};")
    print(f"pub const REF1_K1_LL: f64 = {f(mp_beta_mixture_mean_ll(list(ds1), [1.0], [a1[0]], [b1[0]]))};")
    print()

    # Dirichlet: 2 components, M = 3.
    comp = rng.choice(2, size=300, p=[0.55, 0.45])
    al = np.array([[8.0, 4.0, 3.0], [3.0, 4.0, 6.0]])
    ds3 = np.stack([rng.dirichlet(al[c]) for c in comp])
    labels3 = KMeans(n_clusters=2, n_init=1, random_state=0).fit(ds3).labels_
    fit_mom = dmm_em_from_labels(ds3, labels3, 2, mom=True)
    fit_mean = dmm_em_from_labels(ds3, labels3, 2, mom=False)
    arr("DREF_DATA", ds3.ravel())
    arr("DREF_LABELS0", labels3, ty="usize")
    for name, fit in (("DREF_MOM", fit_mom), ("DREF_MEAN", fit_mean)):
        print(f"/// Dirichlet EM from DREF_LABELS0 ({name}), components sorted by mean vector.")
        arr(f"{name}_WEIGHTS", fit["w"])
        arr(f"{name}_ALPHAS", fit["alphas"].ravel())
        print(f"pub const {name}_LL: f64 = {f(fit['ll'])};")
        print(f"pub const {name}_N_ITER: usize = {fit['n_iter']};")
    print()

    # First values of the portable bench generator, so the Rust copy can be checked.
    arr("BENCH_DATA_HEAD", bench_data(8))


def clamp(v, eps):
    # Rust's f64::clamp(v, eps, 1 - eps), as the crate clamps coefficients.
    return min(max(v, eps), 1.0 - eps)


def k1_moments(x):
    """The crate's closed-form K = 1 fit in plain double arithmetic, in its operation order:
    sequential sums of v and v*v, then the reference's capped method of moments."""
    s1 = s2 = 0.0
    for v in x:
        s1 += v
        s2 += v * v
    n = float(len(x))
    m = s1 / n
    var = s2 / n - m * m
    mm = m * (1.0 - m)
    var = min(var, mm / 4.0) + EPS10
    c = mm / (var + VAR_FLOOR) - 1.0
    return c * m, c * (1.0 - m)


def mp_ln_beta_pdf(x, a, b):
    x, a, b = mpmath.mpf(x), mpmath.mpf(a), mpmath.mpf(b)
    return (a - 1) * mpmath.log(x) + (b - 1) * mpmath.log(1 - x) - mp_lnbeta(a, b)


def stability():
    print("// @generated by scripts/mixture_reference.py stability (mpmath==1.3.0, 50 digits).")
    print("// Do not edit by hand.")
    print("#![allow(dead_code)]")
    print()
    one_m7 = 1.0 - 1e-7
    one_m6 = 1.0 - 1e-6
    points = [
        # a, b ~ 1e9 (mean 0.25): at the mean, one and many standard deviations away, far away.
        (0.25, 4.6875e8, 1.40625e9), (0.25 + 1e-9, 4.6875e8, 1.40625e9),
        (0.25 - 1e-5, 4.6875e8, 1.40625e9), (0.25 + 3e-5, 4.6875e8, 1.40625e9),
        (0.2, 4.6875e8, 1.40625e9), (0.9, 4.6875e8, 1.40625e9), (1e-6, 4.6875e8, 1.40625e9),
        (one_m6, 4.6875e8, 1.40625e9),
        # shapes that are not simple multiples of the mean, 1e12, and mean near 0 or 1
        (0.3, 2586.123, 5892.456), (0.31, 2586.123, 5892.456), (0.305, 2586.123, 5892.456),
        (0.6, 30000.0, 20000.0), (0.61, 30000.0, 20000.0),
        (0.25, 1e12, 3e12), (0.25 + 1e-12, 1e12, 3e12),
        (1e-6, 0.01, 1e4), (1e-7, 0.01, 1e4), (0.5, 0.01, 1e4),
        (one_m6, 1e4, 0.01), (one_m7, 1e4, 0.01),
        (5e-9, 5.0, 1e9), (1e-8, 5.0, 1e9), (0.999999, 2e6, 2.0), (one_m7, 2e6, 2.0),
        (1e-7, 1e-4, 1e3), (one_m7, 1e3, 1e-4), (1e-9, 1.5, 1000.0),
        # around the switch to the centred form (a + b = 1024)
        (0.999, 1022.5, 1.0), (0.999, 1023.0, 1.0), (0.5, 511.9, 511.9), (0.5, 512.0, 512.0),
        # ordinary shapes
        (0.25, 2.0, 3.0), (0.001, 0.5, 0.5), (0.5, 12.0, 12.0), (0.9, 8.0, 2.0),
    ]
    print("/// (x, a, b, ln f(x; a, b)) of the Beta density, mpmath at 50 digits.")
    print(f"pub const LN_BETA_PDF: [(f64, f64, f64, f64); {len(points)}] = [")
    for x, a, b in points:
        print(f"    ({f(x)}, {f(a)}, {f(b)}, {f(mp_ln_beta_pdf(x, a, b))}),")
    print("];")
    print()

    # A two-component mixture with one concentrated component, points at and near its mean.
    lam = [0.25, 0.25 + 1e-9, 0.25 - 1e-5, 0.25 + 2e-5, 0.1, 0.6, 0.9]
    w, a, b = [0.4, 0.6], [4.6875e8, 2.0], [1.40625e9, 5.0]
    arr("MIX_LAMBDAS", lam)
    arr("MIX_WEIGHTS", w)
    arr("MIX_A", a)
    arr("MIX_B", b)
    print("/// Mean log-likelihood of MIX_LAMBDAS under (MIX_WEIGHTS, MIX_A, MIX_B), mpmath.")
    print(f"pub const MIX_MEAN: f64 = {f(mp_beta_mixture_mean_ll(lam, w, a, b))};")
    print()

    cases = [
        ("one value 0.25", [0.25], 1e-6),
        ("seven values 0.25", [0.25] * 7, 1e-6),
        ("50 values 0.3", [0.3] * 50, 1e-6),
        ("0.3 and the next double", [0.3, 0.30000000000000004], 1e-6),
        ("0.3 and 0.3 + 1e-9", [0.3, 0.3 + 1e-9], 1e-6),
        ("0.3 and 0.31", [0.3, 0.31], 1e-6),
        ("three values 1e-7, clamp 1e-9", [1e-7] * 3, 1e-9),
        ("three values 1 - 1e-7, clamp 1e-9", [one_m7] * 3, 1e-9),
        ("two values 1e-7, clamped to 1e-6", [1e-7] * 2, 1e-6),
        ("one value 1 - 1e-7, clamped to 1 - 1e-6", [one_m7], 1e-6),
    ]
    print("/// Degenerate data fitted with K = 1: the reference M-step's (a, b) in double arithmetic")
    print("/// and the mean log-likelihood of those parameters on the clamped data (mpmath).")
    print("pub struct K1Case {")
    print("    pub name: &'static str,")
    print("    pub data: &'static [f64],")
    print("    pub clamp_eps: f64,")
    print("    pub a: f64,")
    print("    pub b: f64,")
    print("    pub mean_ll: f64,")
    print("}")
    print()
    print(f"pub const K1_CASES: [K1Case; {len(cases)}] = [")
    for name, data, eps in cases:
        x = [clamp(v, eps) for v in data]
        a1, b1 = k1_moments(x)
        ll = mp_beta_mixture_mean_ll(x, [1.0], [a1], [b1])
        print("    K1Case {")
        print(f"        name: {name!r},".replace("'", '"'))
        print(f"        data: &[{', '.join(f(v) for v in data)}],")
        print(f"        clamp_eps: {f(eps)},")
        print(f"        a: {f(a1)},")
        print(f"        b: {f(b1)},")
        print(f"        mean_ll: {f(ll)},")
        print("    },")
    print("];")


def timing():
    x = bench_data(50_000)
    print(f"bench data: n = {x.size}, mean = {x.mean():.6f}, first values {x[:3].tolist()}")
    for k in (1, 2, 3, 5):
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            runs, best = reference_bmm(x, k, n_init=3, seed=0)
            times.append(time.perf_counter() - t0)
        w, a, b = runs[best]["params"]
        print(f"K = {k}: median {1e3 * float(np.median(times)):.1f} ms over 5 runs "
              f"(min {1e3 * min(times):.1f} ms); EM iterations per init "
              f"{[r['n_iter'] for r in runs]}; mean ll {runs[best]['final_ll']:.6f}; "
              f"means {np.round(a / (a + b), 4)}")


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else "values"
    if mode == "values":
        _import_reference()
        values()
    elif mode == "stability":
        stability()
    elif mode == "time":
        _import_reference()
        timing()
    else:
        sys.exit(f"unknown mode {mode!r}: use 'values', 'stability' or 'time'")
