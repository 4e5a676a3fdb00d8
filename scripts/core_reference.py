"""Independent reference values for dawin-core's numerics (DaWin Eq. 1, Eq. 2, expertise
metrics, temperature scaling, Pearson), computed with NumPy/SciPy from the formulas of the paper.

requires: numpy==2.1.3 scipy==1.14.1   (python3 -m venv v && v/bin/pip install numpy==2.1.3 scipy==1.14.1)
run:      python scripts/core_reference.py
The printed numbers are pasted into crates/dawin-core/tests/reference.rs.
"""
import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, logsumexp, softmax
from scipy.stats import pearsonr

np.set_printoptions(precision=12)

# Fixed inputs, also written literally in the Rust test.
Z0 = np.array([[2.0, 1.0, 0.1, -1.0],
               [0.5, 0.4, 0.3, 0.2],
               [-3.0, 4.0, 1.0, 0.0],
               [1.5, 1.5, -0.5, 0.25],
               [0.0, 0.0, 0.0, 3.5]], dtype=np.float64)
Z1 = np.array([[0.2, 3.0, 0.1, -2.0],
               [2.5, -0.4, 0.3, 0.0],
               [-1.0, 1.0, 1.2, 0.0],
               [0.1, 2.0, -0.5, 0.7],
               [1.0, 0.5, 0.0, 0.5]], dtype=np.float64)
ZM = np.array([[1.1, 2.0, 0.1, -1.5],
               [1.5, 0.0, 0.3, 0.1],
               [-2.0, 2.5, 1.1, 0.0],
               [0.8, 1.75, -0.5, 0.5],
               [0.5, 0.25, 0.0, 2.0]], dtype=np.float64)
Y = np.array([0, 0, 2, 1, 3])
T0, T1, TM = 0.9576, 0.9733, 1.0


def entropy(z, t):
    lp = log_softmax(z / t, axis=1)
    return -(np.exp(lp) * lp).sum(1)


def ce_hard(z, t, y):
    return -log_softmax(z / t, axis=1)[np.arange(len(y)), y]


def ce_soft(z, t, q):
    return -(q * log_softmax(z / t, axis=1)).sum(1)


def show(name, v):
    print(f"{name} = {np.array2string(np.asarray(v), separator=', ', precision=12, max_line_width=200)}")


H0, H1 = entropy(Z0, T0), entropy(Z1, T1)
show("H0", H0)
show("H1", H1)

# Eq. 1 with entropy expertise: e = exp(-H).
e0, e1 = np.exp(-H0), np.exp(-H1)
show("eq1", e1 / (e0 + e1))

# Eq. 2, unbiased std as the reference implementation does.
O = 0.5 * (H0.std(ddof=1) / H0.mean() + H1.std(ddof=1) / H1.mean())
Tx = (H0.mean() + H1.mean()) / H0.mean()
show("offset_O", O)
show("ratio_T", Tx)
show("eq2", (e1 + O / Tx) / (e0 + e1 + O))

# Every expertise metric as ln e for each model, and Eq. 1 from it.
p0, p1, pm = softmax(Z0 / T0, axis=1), softmax(Z1 / T1, axis=1), softmax(ZM / TM, axis=1)
yhat = 0.5 * (p0 + p1)
metrics = {
    "entropy": (-H0, -H1),
    "ce-oracle": (-ce_hard(Z0, T0, Y), -ce_hard(Z1, T1, Y)),
    "pl-ensemble-soft": (-ce_soft(Z0, T0, yhat), -ce_soft(Z1, T1, yhat)),
    "pl-ensemble-hard": (-ce_hard(Z0, T0, yhat.argmax(1)), -ce_hard(Z1, T1, yhat.argmax(1))),
    "pl-merged-soft": (-ce_soft(Z0, T0, pm), -ce_soft(Z1, T1, pm)),
    "pl-merged-hard": (-ce_hard(Z0, T0, pm.argmax(1)), -ce_hard(Z1, T1, pm.argmax(1))),
    "max-logit": (np.log(np.maximum(Z0.max(1), np.finfo(np.float32).tiny)),
                  np.log(np.maximum(Z1.max(1), np.finfo(np.float32).tiny))),
    "max-prob": (p0.max(1), p1.max(1)),
    "top-gap": (np.sort(p0, 1)[:, -1] - np.sort(p0, 1)[:, -2], np.sort(p1, 1)[:, -1] - np.sort(p1, 1)[:, -2]),
}
for name, (l0, l1) in metrics.items():
    show(f"{name}_lambda_eq1", np.exp(l1) / (np.exp(l0) + np.exp(l1)))
# Sample-wise oracle of Table 1: p1(y) / (p0(y) + p1(y)).
show("oracle_sample", p1[np.arange(5), Y] / (p0[np.arange(5), Y] + p1[np.arange(5), Y]))

# M = 3 models: softmax over -H_j, weights s * lambda_j with s = 0.3 * M.
H = np.stack([H0, H1, entropy(ZM, TM)], 1)
show("lambda_multi", softmax(-H, axis=1))

# Row statistics for extreme logits (+-1e4) at T = 0.5.
ZX = np.array([[1e4, -1e4, 0.0, 9999.0], [-1e4, -1e4, -1e4, -1e4]])
lse = logsumexp(ZX / 0.5, axis=1)
show("extreme_lse", lse)
show("extreme_entropy", entropy(ZX, 0.5))
show("extreme_maxprob", softmax(ZX / 0.5, axis=1).max(1))

# Temperature scaling: minimise the mean NLL over T (bounded scalar search in log T).
def nll(log_t, z, y):
    return ce_hard(z, np.exp(log_t), y).mean()

ZV = np.concatenate([Z0, Z1, ZM]) * 2.0
YV = np.array([0, 0, 2, 1, 3, 1, 0, 2, 1, 0, 1, 0, 1, 1, 3])
r = minimize_scalar(nll, bounds=(np.log(1e-2), np.log(1e2)), args=(ZV, YV), method="bounded",
                    options={"xatol": 1e-10})
show("temperature", np.exp(r.x))
show("temperature_nll", r.fun)

# Pearson correlation of the entropy ratio and the cross-entropy ratio (the paper's analysis).
l0, l1 = ce_hard(Z0, T0, Y), ce_hard(Z1, T1, Y)
show("pearson", pearsonr(H0 / (H0 + H1), l0 / (l0 + l1)).statistic)
