"""Writes the small .npy fixtures of `dawin coef` / `dawin mixture` round-trip tests
(crates/dawin-cli/tests/fixtures/), with the expected coefficients computed here, independently
of the Rust code, straight from the formulas in shared/DAWIN.md.

# requires: numpy==2.1.3
Run: python scripts/make_npy_fixtures.py   (deterministic)
"""
import os

import numpy as np

OUT = os.path.join(os.path.dirname(__file__), "..", "crates", "dawin-cli", "tests", "fixtures")
os.makedirs(OUT, exist_ok=True)
rng = np.random.default_rng(20250101)

N, C = 64, 5
labels = rng.integers(0, C, size=N).astype(np.int64)
z0 = rng.normal(0.0, 2.0, size=(N, C)).astype(np.float32)
z1 = rng.normal(0.0, 2.0, size=(N, C))  # float64 on purpose: the reader converts
z1[np.arange(N), labels] += 2.0  # θ1 is better on average


def entropy(z):
    z = z.astype(np.float64)
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return -(np.exp(logp) * logp).sum(axis=1)


h0, h1 = entropy(z0), entropy(z1)
e0, e1 = np.exp(-h0), np.exp(-h1)
eq1 = e1 / (e0 + e1)
o = 0.5 * (h0.std(ddof=1) / h0.mean() + h1.std(ddof=1) / h1.mean())
t = (h0.mean() + h1.mean()) / h0.mean()
eq2 = (e1 + o / t) / (e0 + e1 + o)

np.save(os.path.join(OUT, "logits0.npy"), z0)
np.save(os.path.join(OUT, "logits1.npy"), z1)
np.save(os.path.join(OUT, "labels.npy"), labels)
np.save(os.path.join(OUT, "expected_eq1.npy"), eq1.astype(np.float32))
np.save(os.path.join(OUT, "expected_eq2.npy"), eq2.astype(np.float32))

# Two well-separated Beta clusters (means 0.2 and 0.8, 150 each) for the mixture round trip.
lam = np.concatenate([rng.beta(8.0, 32.0, 150), rng.beta(32.0, 8.0, 150)])
np.save(os.path.join(OUT, "lambda_two_clusters.npy"), lam)  # float64
# Three-model simplex rows around two centres for the Dirichlet mixture.
rows = np.concatenate([rng.dirichlet([20.0, 5.0, 5.0], 100), rng.dirichlet([5.0, 5.0, 20.0], 100)]).astype(np.float32)
np.save(os.path.join(OUT, "simplex_two_clusters.npy"), rows)
print("wrote fixtures to", os.path.normpath(OUT))
