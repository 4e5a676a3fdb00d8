#!/usr/bin/env python3
# requires: jax[cpu]==0.10.2 optax==0.2.8 numpy==2.4.6 scikit-learn==1.9.1 scipy==1.17.1 safetensors==0.8.0
# (Python 3.11; keep REQUIRES below in step)
"""Build the embedded demo of the `dawin` binary: tiny CLIP-shaped ViTs trained on scikit-learn's digits.

    python3 -m venv /work/venvs/demo && . /work/venvs/demo/bin/activate
    pip install "jax[cpu]==0.10.2" optax==0.2.8 numpy==2.4.6 scikit-learn==1.9.1 scipy==1.17.1 safetensors==0.8.0
    python scripts/make_demo.py            # writes crates/dawin-cli/demo/ (a few minutes on 2 CPU cores)

Everything is deterministic (fixed seeds, CPU only). What it writes, under crates/dawin-cli/demo/:

* two-model demo (DaWin's robust fine-tuning setting):
  theta0.safetensors  θ0, a "pre-trained generalist": trained from scratch on broadly augmented digits
                      (rotations, noise, inversion, blur, occlusion, contrast, shifts), with its own head;
  theta1.safetensors  θ1, θ0 fine-tuned (all parameters, head included) on the clean ID training split;
  data/{val,id,rotate,noise,invert,blur,occlude}.safetensors  `images` u8 [N,H,W,3] (raw RGB, 0..255; the model
                      input is CLIP's normalisation (v/255 - mean_c)/std_c of it) and `labels` i64 [N]; `val` is a
                      labelled ID validation split, the rest are test sets;
  reference_logits.safetensors  `images_u8` u8 [8,H,W,3] (first 8 of data/id), `images` f32 [8,3,H,W] (those,
                      CLIP-normalised in f32), `theta0`, `theta1` f32 [8,10] logits from this script's forward on
                      `images`, to cross-check the Rust forward.
* multi-task demo, under mtl/: base.safetensors (encoder only, visual.*), <task>.safetensors (θ0 fine-tuned on
  the task: encoder + its classification_head.*), heads/<task>.safetensors (that head alone), data/<task>.safetensors
  (the task's test set, u8 images as above).

Every accuracy, temperature, λ and reference logit is computed on the stored u8 images, normalised in f32 exactly
as a loader does ((u8 / 255 - mean_c) / std_c, f32 arithmetic); training uses the unquantised f32 images.
`--reuse` loads every trained weight from an existing demo folder instead of training (no training, seconds).

Model: the OpenAI / open_clip CLIP ViT image encoder (see shared/DAWIN.md), tiny; weight names as open_clip spells
them, linear weights [out, in] (y = x W^T + b) as in PyTorch, `visual.proj` [width, embed] used as x @ proj,
classification head logits = W f/|f| + b. Metadata: `dawin.vit.heads`, `dawin.vit.image_size`, `description`.
"""

import argparse
import json
import os
import struct
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from safetensors.numpy import save_file  # noqa: E402
from scipy import ndimage  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

jax.config.update("jax_default_matmul_precision", "highest")

# ----------------------------------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------------------------------
IMAGE = 16  # input size (8x8 digits upsampled)
PATCH = 4
WIDTH = 64
LAYERS = 2
HEADS = 4
EMBED = 32
CLASSES = 10
GRID = IMAGE // PATCH
PX = IMAGE / 8  # model pixels per digit pixel: blur, shift and occlusion sizes below are scaled by it
TOKENS = GRID * GRID + 1
LN_EPS = 1e-5
CLIP_MEAN = np.array([0.48145466, 0.4578275, 0.40821073], np.float32)
CLIP_STD = np.array([0.26862954, 0.26130258, 0.27577711], np.float32)

N_VAL = 200
N_TEST = 200
SHIFTS = ["rotate", "noise", "invert", "blur", "occlude"]
MTL_N_TEST = 200


# ----------------------------------------------------------------------------------------------------------------
# Images
# ----------------------------------------------------------------------------------------------------------------
def upsample(x8):
    """[N,8,8] in 0..16 -> [N,IMAGE,IMAGE] in [0,1], bilinear with pixel-centre alignment (like an image resize)."""
    z = IMAGE / 8
    return np.stack([ndimage.zoom(im / 16.0, z, order=1, mode="nearest", grid_mode=True) for im in x8]).astype(np.float32)


def to_u8(g):
    """Grey [N,H,W] in [0,1] -> stored image u8 [N,H,W,3]: clipped, round(255 v) (ties to even), replicated to RGB."""
    q = np.rint(np.clip(np.asarray(g, np.float64), 0.0, 1.0) * 255.0).astype(np.uint8)
    return np.ascontiguousarray(np.repeat(q[..., None], 3, axis=-1))


def from_u8(u):
    """Stored u8 [N,H,W,3] -> model input f32 [N,3,H,W]: (u / 255 - mean_c) / std_c in f32, as dawin-vit's loader
    (`preprocess_rgb`: `v as f32 / 255.0`, then `(v - CLIP_MEAN[c]) / CLIP_STD[c]`) computes it."""
    v = u.astype(np.float32) / np.float32(255.0)
    x = (v - CLIP_MEAN[None, None, None, :]) / CLIP_STD[None, None, None, :]
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2)).astype(np.float32)


def normalize(g):
    """Grey [N,H,W] in [0,1] -> model input [N,3,H,W]: replicated to RGB, then CLIP's mean/std normalisation."""
    g = np.clip(g, 0.0, 1.0).astype(np.float32)
    x = np.repeat(g[:, None], 3, axis=1)
    return ((x - CLIP_MEAN[None, :, None, None]) / CLIP_STD[None, :, None, None]).astype(np.float32)


def rotate(im, deg):
    return ndimage.rotate(im, deg, reshape=False, order=1, mode="constant", cval=0.0)


def shift(im, dy, dx):
    return ndimage.shift(im, (dy, dx), order=1, mode="constant", cval=0.0)


def occlude(im, rng, size):
    out = im.copy()
    y, x = rng.integers(0, IMAGE - size + 1, size=2)
    out[y : y + size, x : x + size] = 0.0
    return out


def apply_shift(name, g, seed):
    """Deterministic test-time distribution shifts of grey [N,H,W] images in [0,1]."""
    rng = np.random.default_rng(seed)
    out = []
    for im in g:
        if name == "rotate":
            im = rotate(im, rng.choice([-1.0, 1.0]) * rng.uniform(*SEV["rot"]))
        elif name == "noise":
            im = im + rng.normal(0.0, rng.uniform(*SEV["noise"]), im.shape)
        elif name == "invert":
            c = rng.uniform(*SEV["invert"])
            im = 1.0 - c * im
        elif name == "blur":
            im = ndimage.gaussian_filter(im, rng.uniform(*SEV["blur"]))
        elif name == "occlude":
            im = occlude(im, rng, int(rng.integers(SEV["occ"][0], SEV["occ"][1] + 1)))
        else:
            raise ValueError(name)
        out.append(np.clip(im, 0, 1))
    return np.stack(out).astype(np.float32)


# Test-time shifts, each of mixed severity (per image uniform in the range); blur sigma and occlusion side in model
# pixels, given in digit pixels times PX.
SEV = dict(
    rot=(0.0, 60.0),
    noise=(0.0, 0.5),
    invert=(0.7, 1.0),
    blur=(0.15 * PX, 1.0 * PX),
    occ=(round(1 * PX), round(4.5 * PX)),
)


def augment_generalist(g, rng, strength):
    """Broad random augmentations for θ0's 'pre-training' (each image gets several)."""
    out = []
    s = strength
    for im in g:
        if rng.random() < 0.7:
            im = rotate(im, rng.uniform(-60, 60))
        if rng.random() < 0.5:
            im = shift(im, *rng.uniform(-1.25 * PX, 1.25 * PX, size=2))
        if rng.random() < 0.3 * s:
            im = ndimage.gaussian_filter(im, rng.uniform(0.25 * PX, 0.9 * PX))
        if rng.random() < 0.3 * s:
            im = occlude(im, rng, int(rng.integers(round(2 * PX), round(4 * PX) + 1)))
        if rng.random() < 0.4:
            lo = rng.uniform(0.0, 0.3)
            hi = rng.uniform(0.6, 1.0)
            im = lo + (hi - lo) * im
        if rng.random() < 0.4 * s:
            im = im + rng.normal(0.0, rng.uniform(0.1, 0.6), im.shape)
        im = np.clip(im, 0, 1)
        if rng.random() < 0.4:
            im = 1.0 - im
        out.append(im)
    return np.stack(out).astype(np.float32)


# ----------------------------------------------------------------------------------------------------------------
# Model: tiny CLIP ViT image encoder, parameters named as open_clip names them
# ----------------------------------------------------------------------------------------------------------------
def init_params(key, classes=CLASSES):
    ks = iter(jax.random.split(key, 64))
    n = lambda shape, std: (std * jax.random.normal(next(ks), shape)).astype(jnp.float32)  # noqa: E731
    w = WIDTH
    scale = w**-0.5
    attn_std = w**-0.5
    proj_std = (w**-0.5) * ((2 * LAYERS) ** -0.5)
    fc_std = (2 * w) ** -0.5
    p = {
        "visual.conv1.weight": n((w, 3, PATCH, PATCH), (3 * PATCH * PATCH) ** -0.5),
        "visual.class_embedding": n((w,), scale),
        "visual.positional_embedding": n((TOKENS, w), scale),
        "visual.ln_pre.weight": jnp.ones((w,)),
        "visual.ln_pre.bias": jnp.zeros((w,)),
    }
    for i in range(LAYERS):
        b = f"visual.transformer.resblocks.{i}."
        p[b + "attn.in_proj_weight"] = n((3 * w, w), attn_std)
        p[b + "attn.in_proj_bias"] = jnp.zeros((3 * w,))
        p[b + "attn.out_proj.weight"] = n((w, w), proj_std)
        p[b + "attn.out_proj.bias"] = jnp.zeros((w,))
        p[b + "ln_1.weight"] = jnp.ones((w,))
        p[b + "ln_1.bias"] = jnp.zeros((w,))
        p[b + "mlp.c_fc.weight"] = n((4 * w, w), fc_std)
        p[b + "mlp.c_fc.bias"] = jnp.zeros((4 * w,))
        p[b + "mlp.c_proj.weight"] = n((w, 4 * w), proj_std)
        p[b + "mlp.c_proj.bias"] = jnp.zeros((w,))
        p[b + "ln_2.weight"] = jnp.ones((w,))
        p[b + "ln_2.bias"] = jnp.zeros((w,))
    p["visual.ln_post.weight"] = jnp.ones((w,))
    p["visual.ln_post.bias"] = jnp.zeros((w,))
    p["visual.proj"] = n((w, EMBED), scale)
    p["classification_head.weight"] = n((classes, EMBED), 1.0)
    p["classification_head.bias"] = jnp.zeros((classes,))
    return p


def layer_norm(x, w, b):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / jnp.sqrt(var + LN_EPS) * w + b


def encode_one(p, img):
    """One image [3,H,W] -> unit-norm feature [EMBED]."""
    w = WIDTH
    # conv1: stride = kernel = PATCH, no bias == a linear map of each flattened (c, ky, kx) patch.
    x = img.reshape(3, GRID, PATCH, GRID, PATCH).transpose(1, 3, 0, 2, 4).reshape(GRID * GRID, 3 * PATCH * PATCH)
    x = x @ p["visual.conv1.weight"].reshape(w, -1).T  # [grid*grid, width], row-major over (gy, gx)
    x = jnp.concatenate([p["visual.class_embedding"][None], x], 0)
    x = x + p["visual.positional_embedding"]
    x = layer_norm(x, p["visual.ln_pre.weight"], p["visual.ln_pre.bias"])
    hd = w // HEADS
    for i in range(LAYERS):
        b = f"visual.transformer.resblocks.{i}."
        h = layer_norm(x, p[b + "ln_1.weight"], p[b + "ln_1.bias"])
        qkv = h @ p[b + "attn.in_proj_weight"].T + p[b + "attn.in_proj_bias"]
        q, k, v = qkv[:, :w], qkv[:, w : 2 * w], qkv[:, 2 * w :]
        q = q.reshape(TOKENS, HEADS, hd).transpose(1, 0, 2)
        k = k.reshape(TOKENS, HEADS, hd).transpose(1, 0, 2)
        v = v.reshape(TOKENS, HEADS, hd).transpose(1, 0, 2)
        a = jax.nn.softmax((q @ k.transpose(0, 2, 1)) / jnp.sqrt(float(hd)), axis=-1)
        o = (a @ v).transpose(1, 0, 2).reshape(TOKENS, w)
        x = x + o @ p[b + "attn.out_proj.weight"].T + p[b + "attn.out_proj.bias"]
        h = layer_norm(x, p[b + "ln_2.weight"], p[b + "ln_2.bias"])
        h = h @ p[b + "mlp.c_fc.weight"].T + p[b + "mlp.c_fc.bias"]
        h = h * jax.nn.sigmoid(1.702 * h)  # QuickGELU
        x = x + h @ p[b + "mlp.c_proj.weight"].T + p[b + "mlp.c_proj.bias"]
    f = layer_norm(x[0], p["visual.ln_post.weight"], p["visual.ln_post.bias"]) @ p["visual.proj"]
    return f / jnp.linalg.norm(f)


def logits_one(p, head, img):
    return head["classification_head.weight"] @ encode_one(p, img) + head["classification_head.bias"]


def split_head(p):
    enc = {k: v for k, v in p.items() if k.startswith("visual.")}
    head = {k: v for k, v in p.items() if k.startswith("classification_head.")}
    return enc, head


@jax.jit
def features(enc, x):
    return jax.vmap(encode_one, in_axes=(None, 0))(enc, x)


@jax.jit
def logits_fn(p, x):
    enc, head = split_head(p)
    return jax.vmap(logits_one, in_axes=(None, None, 0))(enc, head, x)


def predict(p, x, bs=500):
    return np.concatenate([np.asarray(logits_fn(p, jnp.asarray(x[i : i + bs]))) for i in range(0, len(x), bs)])


# ----------------------------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------------------------
def train(p, batches_fn, steps, lr, wd, seed, trainable=None, label_smoothing=0.0, log=""):
    """AdamW with warm-up + cosine decay. `batches_fn(step) -> (x, y)`; `trainable(name) -> bool`."""
    sched = optax.warmup_cosine_decay_schedule(0.0, lr, max(1, steps // 20), steps, lr * 0.02)
    mask = {k: (trainable is None or trainable(k)) for k in p}
    wd_mask = {k: (v.ndim >= 2 and mask[k]) for k, v in p.items()}
    opt = optax.chain(
        optax.clip_by_global_norm(1.0),
        optax.adamw(sched, weight_decay=wd, mask=wd_mask),
    )
    opt = optax.masked(opt, mask) if trainable is not None else opt
    state = opt.init(p)

    def loss_fn(p, x, y):
        z = logits_fn(p, x)
        t = optax.smooth_labels(jax.nn.one_hot(y, z.shape[-1]), label_smoothing)
        return optax.softmax_cross_entropy(z, t).mean()

    @jax.jit
    def step(p, state, x, y):
        loss, g = jax.value_and_grad(loss_fn)(p, x, y)
        if trainable is not None:
            g = {k: (v if mask[k] else jnp.zeros_like(v)) for k, v in g.items()}
        upd, state = opt.update(g, state, p)
        return optax.apply_updates(p, upd), state, loss

    losses = []
    for s in range(steps):
        x, y = batches_fn(s)
        p, state, loss = step(p, state, jnp.asarray(x), jnp.asarray(y))
        losses.append(float(loss))
        if log and (s + 1) % max(1, steps // 5) == 0:
            print(f"  [{log}] step {s + 1}/{steps} loss {np.mean(losses[-50:]):.4f}", flush=True)
    return p


def epoch_batches(x, y, bs, seed, aug=None):
    """Shuffled mini-batches over epochs; `aug(grey_batch, rng)` is applied on the fly to grey images."""
    rng = np.random.default_rng(seed)
    n = len(x)
    cache = {}

    def get(step):
        per = n // bs
        ep, i = divmod(step, per)
        if ep not in cache:
            cache.clear()
            cache[ep] = rng.permutation(n)
        idx = cache[ep][i * bs : (i + 1) * bs]
        g = x[idx]
        if aug is not None:
            g = aug(g, rng)
        return normalize(g), y[idx]

    return get, n // bs


# ----------------------------------------------------------------------------------------------------------------
# DaWin evaluation (Python reference of the numbers the demo README quotes)
# ----------------------------------------------------------------------------------------------------------------
def log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def entropy(z, t=1.0):
    lp = log_softmax(z / t)
    return -(np.exp(lp) * lp).sum(-1)


def fit_temperature(z, y):
    grid = np.exp(np.linspace(np.log(0.05), np.log(20.0), 2001))
    nll = [-log_softmax(z / t)[np.arange(len(y)), y].mean() for t in grid]
    return float(grid[int(np.argmin(nll))])


def merge(p0, p1, lam):
    return {k: (1 - lam) * p0[k] + lam * p1[k] for k in p0}


@jax.jit
def per_sample_merged_logits(p0, p1, lam, x):
    """Eq. (merge) per sample: logits of f(x; (1-λ(x)) θ0 + λ(x) θ1) for a batch, λ [B]."""

    def one(l, img):
        p = {k: (1 - l) * p0[k] + l * p1[k] for k in p0}
        enc, head = split_head(p)
        return logits_one(enc, head, img)

    return jax.vmap(one)(lam, x)


def dawin_lambda(z0, z1, t0, t1):
    """Eq. 2 of the paper (the default DaWin coefficient), with temperature-scaled entropies."""
    h0, h1 = entropy(z0, t0), entropy(z1, t1)
    e0, e1 = np.exp(-h0), np.exp(-h1)
    o = 0.5 * (h0.std(ddof=1) / h0.mean() + h1.std(ddof=1) / h1.mean())
    tt = (h0.mean() + h1.mean()) / h0.mean()
    return (e1 + o / tt) / (e0 + e1 + o)


def acc(z, y):
    return float((np.asarray(z).argmax(-1) == y).mean() * 100)


def per_sample(fn, *args, bs=100):
    """Run a jitted per-sample function over chunks of the leading axis of every array in `args`."""
    n = len(args[0])
    return np.concatenate([np.asarray(fn(*[jnp.asarray(a[i : i + bs]) for a in args])) for i in range(0, n, bs)])


def two_model_table(p0, p1, sets, t0, t1, wise_lam):
    """Accuracy (%) of every two-model method on every set; DaWin merges the weights per sample."""
    p0j = {k: jnp.asarray(v) for k, v in p0.items()}
    p1j = {k: jnp.asarray(v) for k, v in p1.items()}
    merged = lambda lam, x: per_sample_merged_logits(p0j, p1j, lam, x)  # noqa: E731
    rows = {}
    for name, (x, y) in sets.items():
        z0, z1 = predict(p0, x), predict(p1, x)
        h0, h1 = entropy(z0, t0), entropy(z1, t1)
        lam2 = dawin_lambda(z0, z1, t0, t1).astype(np.float32)
        lam1 = (np.exp(-h1) / (np.exp(-h0) + np.exp(-h1))).astype(np.float32)
        pr0, pr1 = np.exp(log_softmax(z0 / t0)), np.exp(log_softmax(z1 / t1))
        rows[name] = {
            "θ0 (ZS)": acc(z0, y),
            "θ1 (FT)": acc(z1, y),
            "WiSE-FT ½": acc(predict(merge(p0, p1, 0.5), x), y),
            f"WiSE-FT {wise_lam:.1f} (val)": acc(predict(merge(p0, p1, wise_lam), x), y),
            "ensemble ½": acc(0.5 * pr0 + 0.5 * pr1, y),
            "DCS": acc(np.where((h0 <= h1)[:, None], z0, z1), y),
            "DaWin Eq.1": acc(per_sample(merged, lam1, x), y),
            "DaWin Eq.2": acc(per_sample(merged, lam2, x), y),
            "mean λ": float(lam2.mean()),
        }
    return rows


def table_text(rows, first="set", means=True):
    cols = list(next(iter(rows.values())))
    names = list(rows)
    ood = [n for n in names if n not in ("id", "val")]
    lines = [f"| {first} | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    fmt = lambda c, v: f"{v:.2f}" if c.startswith("mean λ") else f"{v:.1f}"  # noqa: E731
    for n in names:
        lines.append(f"| {n} | " + " | ".join(fmt(c, rows[n][c]) for c in cols) + " |")
    if means and ood:
        m = {c: np.mean([rows[n][c] for n in ood]) for c in cols}
        lines.append("| **OOD mean** | " + " | ".join(f"**{fmt(c, m[c])}**" for c in cols) + " |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------------
# Multi-task demo
# ----------------------------------------------------------------------------------------------------------------
MTL_TASKS = {
    # name: (classes, what the task is)
    "digits": (10, "digit identity (0-9) of clean digits"),
    "rotation": (4, "rotation of the digit image: 0, 90, 180 or 270 degrees counter-clockwise (class k = k x 90)"),
    "parity": (2, "parity of the digit (0 even, 1 odd) on noisy images (Gaussian noise, sigma 0.25-0.45)"),
}


def mtl_examples(task, g, y, rng):
    """Task inputs (grey [N,H,W] in [0,1]) and labels built from digits `g`, `y` with the generator `rng`."""
    if task == "digits":
        return g, y
    if task == "rotation":
        k = rng.integers(0, 4, len(g))
        return np.stack([np.rot90(im, int(kk)) for im, kk in zip(g, k)]).astype(np.float32), k.astype(np.int64)
    if task == "parity":
        sig = rng.uniform(0.25, 0.45, (len(g), 1, 1))
        return np.clip(g + sig * rng.normal(size=g.shape), 0, 1).astype(np.float32), (y % 2).astype(np.int64)
    raise ValueError(task)


def task_batches(task, g, y, bs, seed):
    rng = np.random.default_rng(seed)
    n = len(g)
    per = n // bs
    order = {}

    def get(step):
        ep, i = divmod(step, per)
        if ep not in order:
            order.clear()
            order[ep] = rng.permutation(n)
        idx = order[ep][i * bs : (i + 1) * bs]
        gi, yi = mtl_examples(task, g[idx], y[idx], rng)
        return normalize(gi), yi

    return get, per


def linear_probe(enc, x, y, classes):
    """Head W f/|f| + b fitted by multinomial logistic regression on the encoder's unit-norm features."""
    f = np.concatenate([np.asarray(features(enc, jnp.asarray(x[i : i + 500]))) for i in range(0, len(x), 500)])
    lr = LogisticRegression(C=10.0, max_iter=5000).fit(f, y)
    w, b = lr.coef_.astype(np.float32), lr.intercept_.astype(np.float32)
    if classes == 2:  # sklearn's binary form: one row; the two-class softmax equivalent is (-w/2, w/2)
        w, b = np.concatenate([-w / 2, w / 2]), np.concatenate([-b / 2, b / 2])
    return {"classification_head.weight": jnp.asarray(w), "classification_head.bias": jnp.asarray(b)}


@jax.jit
def head_logits(enc, head, x):
    return jax.vmap(logits_one, in_axes=(None, None, 0))(enc, head, x)


@jax.jit
def mtl_merged_logits(base, taus, head, s, lam, x):
    """Per sample: logits of head(f(x; θ0 + s Σ_j λ_j(x) τ_j)); taus: name -> [M, ...], lam [B, M]."""

    def one(l, img):
        enc = {k: base[k] + s * jnp.tensordot(l, taus[k], axes=1) for k in base}
        return logits_one(enc, head, img)

    return jax.vmap(one)(lam, x)


def mtl_table(base, fts, heads, data):
    names = list(fts)
    m = len(names)
    basej = {k: jnp.asarray(v) for k, v in base.items()}
    taus = {k: jnp.stack([jnp.asarray(fts[t][k] - base[k]) for t in names]) for k in base}
    rows = {}
    for task, (x, y) in data.items():
        hd = {k: jnp.asarray(v) for k, v in heads[task].items()}
        lg = lambda enc: np.concatenate(  # noqa: E731
            [np.asarray(head_logits(enc, hd, jnp.asarray(x[i : i + 500]))) for i in range(0, len(x), 500)]
        )
        r = {"θ0 (base)": acc(lg(base), y)}
        z = {}
        for t in names:
            z[t] = lg(fts[t])
            r[f"θ {t}"] = acc(z[t], y)
        static = lambda s: {k: base[k] + s * sum(fts[t][k] - base[k] for t in names) for k in base}  # noqa: E731
        r["weight avg"] = acc(lg(static(1.0 / m)), y)
        r["TA s=0.3"] = acc(lg(static(0.3)), y)
        h = np.stack([entropy(z[t]) for t in names], 1)  # [N, M]
        lam = np.exp(log_softmax(-h)).astype(np.float32)
        for s, label in ((0.3, "DaWin s=0.3"), (0.3 * m, f"DaWin s=0.3·M={0.3 * m:.1f}")):
            fn = lambda l, xx: mtl_merged_logits(basej, taus, hd, jnp.float32(s), l, xx)  # noqa: E731
            r[label] = acc(per_sample(fn, lam, x), y)
        r["mean λ own"] = float(lam[:, names.index(task)].mean())
        rows[task] = r
    return rows


# ----------------------------------------------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------------------------------------------
def save(path, tensors, description, model=False):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    meta = {"description": description}
    if model:
        meta.update({"dawin.vit.heads": str(HEADS), "dawin.vit.image_size": str(IMAGE)})
    save_file({k: np.ascontiguousarray(np.asarray(v)) for k, v in sorted(tensors.items())}, path, metadata=meta)
    canonical_header(path)


def canonical_header(path):
    """safetensors writes `__metadata__` in hash-map order: sort its keys in place (same header length, same data
    offsets) so that re-running the script reproduces every file byte for byte."""
    with open(path, "r+b") as fh:
        n = struct.unpack("<Q", fh.read(8))[0]
        header = json.loads(fh.read(n))
        meta = header.pop("__metadata__")
        header = {"__metadata__": dict(sorted(meta.items())), **header}
        text = json.dumps(header, separators=(",", ":"), ensure_ascii=True).encode()
        assert len(text) <= n, (path, len(text), n)
        fh.seek(8)
        fh.write(text + b" " * (n - len(text)))


def save_set(path, u, y, description):
    assert u.dtype == np.uint8 and u.shape[1:] == (IMAGE, IMAGE, 3), (u.dtype, u.shape)
    save(path, {"images": u, "labels": np.asarray(y, np.int64)}, description)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crates", "dawin-cli", "demo"))
    ap.add_argument("--cache", default="", help="development only: keep/reuse θ0 and θ1 in this .npz prefix")
    ap.add_argument(
        "--reuse",
        nargs="?",
        const="OUT",
        default="",
        metavar="DIR",
        help="load every trained weight (θ0, θ1, multi-task encoders and heads) from this demo folder (default: --out) "
        "instead of training; the data, tables and reference logits are rebuilt",
    )
    args = ap.parse_args()
    out = os.path.normpath(args.out)
    reuse = os.path.normpath(out if args.reuse == "OUT" else args.reuse) if args.reuse else ""
    weights = load_weights(reuse) if reuse else None
    t_start = time.time()

    # ---------------- data
    d = load_digits()
    x8, y = d.images.astype(np.float32), d.target.astype(np.int64)
    perm = np.random.default_rng(0).permutation(len(y))
    te, va, tr = perm[:N_TEST], perm[N_TEST : N_TEST + N_VAL], perm[N_TEST + N_VAL :]
    g = upsample(x8)
    g_tr, y_tr = g[tr], y[tr]
    print(f"digits: train {len(tr)}, val {len(va)}, test {len(te)}; image {IMAGE}x{IMAGE}", flush=True)
    # stored: u8 RGB; evaluated: exactly what a loader makes of the stored bytes
    raw = {"val": (to_u8(g[va]), y[va]), "id": (to_u8(g[te]), y[te])}
    for i, s in enumerate(SHIFTS):
        raw[s] = (to_u8(apply_shift(s, g[te], 100 + i)), y[te])
    sets = {name: (from_u8(u), yy) for name, (u, yy) in raw.items()}

    # ---------------- θ0: generalist "pre-trained" on broadly augmented digits (label smoothing 0.1)
    bs = 64
    c0 = args.cache and args.cache + ".theta0.npz"
    c1 = args.cache and args.cache + ".theta1.npz"
    if weights:
        p0 = weights["theta0"]
        print(f"θ0, θ1 and the multi-task weights: loaded from {reuse}", flush=True)
    elif c0 and os.path.exists(c0):
        p0 = dict(np.load(c0))
    else:
        get, per = epoch_batches(g_tr, y_tr, bs, 2, aug=lambda gb, r: augment_generalist(gb, r, 1.0))
        p0 = train(init_params(jax.random.PRNGKey(0)), get, PRE_EPOCHS * per, 2e-3, 0.05, 0, label_smoothing=0.1, log="θ0")
        p0 = {k: np.asarray(v) for k, v in p0.items()}
        if c0:
            np.savez(c0, **p0)
    # ---------------- θ1: θ0 fine-tuned (all parameters) on the clean ID training split
    if weights:
        p1 = weights["theta1"]
    elif c1 and os.path.exists(c1):
        p1 = dict(np.load(c1))
    else:
        get, per = epoch_batches(g_tr, y_tr, bs, 3)
        p1 = train({k: jnp.asarray(v) for k, v in p0.items()}, get, FT_EPOCHS * per, 1e-3, 0.0, 0, log="θ1")
        p1 = {k: np.asarray(v) for k, v in p1.items()}
        if c1:
            np.savez(c1, **p1)

    xv, yv = sets["val"]
    t0, t1 = fit_temperature(predict(p0, xv), yv), fit_temperature(predict(p1, xv), yv)
    wise = max(np.arange(11) / 10, key=lambda l: (acc(predict(merge(p0, p1, l), xv), yv), -abs(l - 0.5)))
    print(f"temperatures (NLL on val): T0 {t0:.4f} T1 {t1:.4f}; WiSE-FT λ picked on val: {wise:.1f}", flush=True)
    rows2 = two_model_table(p0, p1, sets, t0, t1, wise)
    table2 = table_text(rows2)
    print("two-model demo, accuracy (%):\n" + table2, flush=True)

    # ---------------- multi-task: base = θ0's encoder; each task: linear-probe head on the base (frozen),
    # then the encoder fine-tuned on the task.
    base = {k: v for k, v in p0.items() if k.startswith("visual.")}
    if weights:
        assert all(np.array_equal(base[k], v) for k, v in weights["base"].items()) and base.keys() == weights["base"].keys()
    fts, heads, mdata, mraw = {}, {}, {}, {}
    for j, (task, (classes, _)) in enumerate(MTL_TASKS.items()):
        gt, yt = mtl_examples(task, g[te][:MTL_N_TEST], y[te][:MTL_N_TEST], np.random.default_rng(300 + j))
        mraw[task] = (to_u8(gt), yt)
        mdata[task] = (from_u8(mraw[task][0]), yt)
        if weights:
            fts[task], heads[task] = weights["fts"][task], weights["heads"][task]
            continue
        gx, gy = mtl_examples(task, g_tr, y_tr, np.random.default_rng(200 + j))
        heads[task] = {k: np.asarray(v) for k, v in linear_probe(base, normalize(gx), gy, classes).items()}
        get, per = task_batches(task, g_tr, y_tr, bs, 400 + j)
        p = {**{k: jnp.asarray(v) for k, v in base.items()}, **{k: jnp.asarray(v) for k, v in heads[task].items()}}
        p = train(p, get, MTL_EPOCHS * per, 1e-3, 0.0, 0, trainable=lambda k: k.startswith("visual."), log=f"mtl {task}")
        fts[task] = {k: np.asarray(v) for k, v in p.items() if k.startswith("visual.")}
    rows_m = mtl_table(base, fts, heads, mdata)
    table_m = table_text(rows_m, first="task (test set)", means=False)
    print("multi-task demo, accuracy (%):\n" + table_m, flush=True)

    # ---------------- write
    desc = f"DaWin demo: tiny CLIP ViT (image {IMAGE}, patch {PATCH}, width {WIDTH}, layers {LAYERS}, heads {HEADS}, embed {EMBED})"
    save(f"{out}/theta0.safetensors", p0, desc + "; theta0: generalist trained on broadly augmented digits", model=True)
    save(f"{out}/theta1.safetensors", p1, desc + "; theta1: theta0 fine-tuned on clean digits", model=True)
    for name, (u, yy) in raw.items():
        what = "labelled ID validation split" if name == "val" else ("clean ID test split" if name == "id" else f"ID test split under shift '{name}'")
        save_set(f"{out}/data/{name}.safetensors", u, yy, f"DaWin demo data (digits, {what}); {RAW_NOTE}")
    xr = sets["id"][0][:8]
    save(
        f"{out}/reference_logits.safetensors",
        {"images_u8": raw["id"][0][:8], "images": xr, "theta0": predict(p0, xr), "theta1": predict(p1, xr)},
        "logits of theta0 and theta1 on the first 8 images of data/id (images_u8: as stored; images: CLIP-normalised "
        "in f32), from scripts/make_demo.py's JAX forward",
    )
    save(f"{out}/mtl/base.safetensors", base, desc + "; multi-task base encoder (theta0's encoder)", model=True)
    for task, (classes, what) in MTL_TASKS.items():
        save(f"{out}/mtl/{task}.safetensors", {**fts[task], **heads[task]}, desc + f"; base fine-tuned on task '{task}': {what}", model=True)
        save(f"{out}/mtl/heads/{task}.safetensors", heads[task], f"DaWin demo: classification head of task '{task}' ({classes} classes): {what}")
        save_set(f"{out}/mtl/data/{task}.safetensors", *mraw[task], f"DaWin demo multi-task test set '{task}': {what}; {RAW_NOTE}")

    check_files(out)
    elapsed = time.time() - t_start
    write_readme(out, table2, table_m, t0, t1, wise)
    print(f"wrote {out} in {elapsed:.0f} s", flush=True)


PRE_EPOCHS = 60
RAW_NOTE = "images raw RGB u8 [N,H,W,3]; model input (v/255 - mean_c)/std_c with CLIP's mean and std"
FT_EPOCHS = 60
MTL_EPOCHS = 30


def load_weights(d):
    """Every trained weight of an existing demo folder `d` (for --reuse), as float32 NumPy arrays."""
    from safetensors.numpy import load_file

    def f32(path):
        sd = load_file(os.path.join(d, path))
        assert all(v.dtype == np.float32 for v in sd.values()), path
        return {k: np.array(v) for k, v in sd.items()}

    w = {"theta0": f32("theta0.safetensors"), "theta1": f32("theta1.safetensors"), "base": f32("mtl/base.safetensors")}
    w["fts"] = {t: {k: v for k, v in f32(f"mtl/{t}.safetensors").items() if k.startswith("visual.")} for t in MTL_TASKS}
    w["heads"] = {t: f32(f"mtl/heads/{t}.safetensors") for t in MTL_TASKS}
    return w


def check_files(out):
    """Reload what was written and recompute logits with a plain NumPy forward written independently of the JAX one
    (explicit per-patch convolution, per-head loops), in float64 from the stored u8 images normalised in float64:
    checks names, dtypes, layouts, metadata and reference_logits."""
    from safetensors import safe_open
    from safetensors.numpy import load_file

    mean64 = np.array([0.48145466, 0.4578275, 0.40821073])  # OpenAI CLIP's digits
    std64 = np.array([0.26862954, 0.26130258, 0.27577711])

    def np_input(u):  # u8 [N,H,W,3] -> float64 [N,3,H,W]
        assert u.dtype == np.uint8 and u.ndim == 4 and u.shape[-1] == 3, (u.dtype, u.shape)
        return ((u.astype(np.float64) / 255.0 - mean64) / std64).transpose(0, 3, 1, 2)

    def np_logits(sd, img, heads):
        w = sd["visual.conv1.weight"]
        width, _, pp, _ = w.shape
        grid = img.shape[1] // pp
        tok = [sd["visual.class_embedding"]]
        for gy in range(grid):
            for gx in range(grid):
                patch = img[:, gy * pp : (gy + 1) * pp, gx * pp : (gx + 1) * pp]
                tok.append(np.einsum("ocyx,cyx->o", w, patch))
        x = np.stack(tok).astype(np.float64) + sd["visual.positional_embedding"]

        def ln(v, name):
            mu, var = v.mean(-1, keepdims=True), v.var(-1, keepdims=True)
            return (v - mu) / np.sqrt(var + 1e-5) * sd[name + ".weight"] + sd[name + ".bias"]

        x = ln(x, "visual.ln_pre")
        i = 0
        while f"visual.transformer.resblocks.{i}.ln_1.weight" in sd:
            b = f"visual.transformer.resblocks.{i}."
            h = ln(x, b + "ln_1")
            qkv = h @ sd[b + "attn.in_proj_weight"].T + sd[b + "attn.in_proj_bias"]
            q, k, v = np.split(qkv, 3, axis=-1)
            hd = width // heads
            o = np.zeros_like(q)
            for j in range(heads):
                sl = slice(j * hd, (j + 1) * hd)
                a = q[:, sl] @ k[:, sl].T / np.sqrt(hd)
                a = np.exp(a - a.max(-1, keepdims=True))
                o[:, sl] = (a / a.sum(-1, keepdims=True)) @ v[:, sl]
            x = x + o @ sd[b + "attn.out_proj.weight"].T + sd[b + "attn.out_proj.bias"]
            h = ln(x, b + "ln_2") @ sd[b + "mlp.c_fc.weight"].T + sd[b + "mlp.c_fc.bias"]
            h = h / (1 + np.exp(-1.702 * h))
            x = x + h @ sd[b + "mlp.c_proj.weight"].T + sd[b + "mlp.c_proj.bias"]
            i += 1
        f = ln(x[0], "visual.ln_post") @ sd["visual.proj"]
        return sd["classification_head.weight"] @ (f / np.linalg.norm(f)) + sd["classification_head.bias"]

    for root, _, names in os.walk(out):
        for n in names:
            if n.endswith(".safetensors") and os.path.basename(root) == "data":
                d = load_file(os.path.join(root, n))
                assert sorted(d) == ["images", "labels"], (root, n, sorted(d))
                assert d["images"].dtype == np.uint8 and d["images"].shape[1:] == (IMAGE, IMAGE, 3), (n, d["images"].shape)
                assert d["labels"].dtype == np.int64 and d["labels"].shape == (len(d["images"]),), n
    ref = load_file(f"{out}/reference_logits.safetensors")
    ids = load_file(f"{out}/data/id.safetensors")
    assert np.array_equal(ids["images"][:8], ref["images_u8"])
    x_ref = np_input(ids["images"][:8])
    err = np.abs(x_ref - ref["images"]).max()
    print(f"check: reference images vs data/id[:8] u8 normalised in float64: max |diff| {err:.2e}", flush=True)
    assert ref["images"].dtype == np.float32 and ref["images"].shape == (8, 3, IMAGE, IMAGE) and err < 1e-6, err
    for name in ("theta0", "theta1"):
        path = f"{out}/{name}.safetensors"
        with safe_open(path, "np") as fh:
            meta = fh.metadata()
        assert meta["dawin.vit.heads"] == str(HEADS) and meta["dawin.vit.image_size"] == str(IMAGE), meta
        sd = {k: v.astype(np.float64) for k, v in load_file(path).items()}
        z = np.stack([np_logits(sd, im, int(meta["dawin.vit.heads"])) for im in x_ref])
        err = np.abs(z - ref[name]).max()
        print(f"check: {name} NumPy float64 forward of data/id[:8] (u8 -> normalise) vs reference_logits: max |diff| {err:.2e}", flush=True)
        assert err < 1e-4, err
    sd = {**load_file(f"{out}/mtl/base.safetensors"), **load_file(f"{out}/mtl/heads/digits.safetensors")}
    md = load_file(f"{out}/mtl/data/digits.safetensors")
    z = np.stack([np_logits(sd, im, HEADS) for im in np_input(md["images"][:50])])
    print(f"check: base + digits head on 50 mtl/data/digits images: {acc(z, md['labels'][:50]):.0f}% correct", flush=True)


REQUIRES = "jax[cpu]==0.10.2 optax==0.2.8 numpy==2.4.6 scikit-learn==1.9.1 scipy==1.17.1 safetensors==0.8.0"


def write_readme(out, table2, table_m, t0, t1, wise):
    files = []
    for root, _, names in os.walk(out):
        for n in names:
            if n.endswith(".safetensors"):
                path = os.path.join(root, n)
                files.append((os.path.relpath(path, out), os.path.getsize(path)))
    files.sort()
    total = sum(sz for _, sz in files)
    listing = "\n".join(f"| `{f}` | {sz / 1024:.1f} KiB |" for f, sz in files)
    tasks = "\n".join(f"* `{t}` ({c} classes): {what}." for t, (c, what) in MTL_TASKS.items())
    n_params = sum(int(np.prod(v.shape)) for v in init_params(jax.random.PRNGKey(0)).values())
    text = f"""# Embedded demo data of `dawin demo`

Generated by `scripts/make_demo.py` (deterministic; do not edit these files, or this README, by hand: it is
written by the script). `dawin demo` evaluates the two-model files with every method; `dawin demo --multi-task`
evaluates the `mtl/` files. The numbers below come from the script's own JAX forward, not from the Rust code.

## Model

A tiny CLIP ViT image encoder, the OpenAI / open_clip architecture and weight names (`visual.*`), plus a
`classification_head` (logits = W f/‖f‖ + b):

| image | patch | tokens | width | layers | heads (head dim) | mlp | embed | classes | dtype | parameters |
|---|---|---|---|---|---|---|---|---|---|---|
| {IMAGE}×{IMAGE}×3 | {PATCH} | {TOKENS} | {WIDTH} | {LAYERS} | {HEADS} ({WIDTH // HEADS}) | {4 * WIDTH} | {EMBED} | {CLASSES} | f32 | {n_params} |

Conv patch embedding (no bias) → class token → positional embedding → `ln_pre` → {LAYERS} pre-norm blocks
(packed q,k,v `in_proj`, `out_proj`, attention scale 1/√{WIDTH // HEADS}; `mlp.c_fc` → QuickGELU x·σ(1.702x) →
`mlp.c_proj`) → `ln_post` on the class token → `x @ visual.proj` ([{WIDTH}, {EMBED}]) → f/‖f‖ → head. Layer-norm eps
1e-5, linear weights stored [out, in] as in PyTorch. safetensors metadata: `dawin.vit.heads` = "{HEADS}" (the
head count cannot be derived as width/64 for this model), `dawin.vit.image_size` = "{IMAGE}", `description`.

## Images: raw 8-bit RGB

Every dataset's `images` tensor is u8 [N, {IMAGE}, {IMAGE}, 3], raw RGB (grey: R = G = B), already at the model's
input size, so CLIP's resize and centre crop leave it unchanged; the model input is CLIP's normalisation
(u / 255 − mean_c) / std_c, laid out [3, {IMAGE}, {IMAGE}], with mean (0.48145466, 0.4578275, 0.40821073), std
(0.26862954, 0.26130258, 0.27577711) — what dawin-vit's dataset loader does with u8 images. How they were made:
scikit-learn's digits (8×8, values 0..16) / 16 → bilinear upsampling to {IMAGE}×{IMAGE} (`scipy.ndimage.zoom`,
order 1, pixel-centre aligned) → the shift, if any, applied to this grey image in [0, 1] and clipped to [0, 1] →
round(255 v) (ties to even) → replicated to 3 channels. `labels` are i64 [N]. Every number below (temperatures,
WiSE-FT's λ, accuracies, reference logits) is computed on these stored bytes, normalised in f32 as above; the
models were trained on the unquantised images.

## Two models (robust fine-tuning)

* θ0 `theta0.safetensors`, the "pre-trained generalist" (plays the zero-shot model): trained from scratch for
  {PRE_EPOCHS} epochs on the training split ({1797 - N_VAL - N_TEST} digits) under broad random augmentation (rotation
  ±60°, shifts, blur, occlusion, contrast, noise, inversion), label smoothing 0.1. Robust, less accurate on clean digits.
* θ1 `theta1.safetensors`: θ0 fine-tuned, all parameters and head, {FT_EPOCHS} epochs on the clean training split.
* Data (`data/`): `val` ({N_VAL} labelled clean digits: temperatures, WiSE-FT's λ), `id` ({N_TEST} clean test digits)
  and 5 shifted copies of the `id` images, each of mixed severity: `rotate` (±{SEV['rot'][0]:g}–{SEV['rot'][1]:g}°), `noise` (Gaussian,
  σ {SEV['noise'][0]:g}–{SEV['noise'][1]:g}), `invert` (1 − c·x, c {SEV['invert'][0]:g}–{SEV['invert'][1]:g}), `blur` (Gaussian, σ {SEV['blur'][0]:g}–{SEV['blur'][1]:g} px), `occlude`
  (a black square of side {SEV['occ'][0]}–{SEV['occ'][1]} px).

Temperatures fitted on `val` (NLL, grid search): T0 = {t0:.4f}, T1 = {t1:.4f}. WiSE-FT's λ picked on `val` over
{{0, 0.1, …, 1}}: {wise:.1f}. DaWin Eq. 1 / Eq. 2 merge the weights per sample (no mixture); DCS takes the
lower-entropy model's prediction; mean λ is Eq. 2's. Accuracy (%):

{table2}

## Multi-task (M = {len(MTL_TASKS)})

`mtl/base.safetensors` is θ0's encoder (`visual.*` only). For each task a head is fitted on the base's features
(logistic regression) and kept frozen while the encoder is fine-tuned on the task for {MTL_EPOCHS} epochs:
`mtl/<task>.safetensors` holds that encoder and the task's head, `mtl/heads/<task>.safetensors` the head alone (to
put on the base or a merged encoder), `mtl/data/<task>.safetensors` the task's test set ({MTL_N_TEST} images made from the
`id` test digits). Tasks:

{tasks}

Each row evaluates one task's test set with that task's head on the encoder named by the column. Weight averaging
is θ0 + (1/M) Σ τ_j, task arithmetic θ0 + 0.3 Σ τ_j, DaWin θ0 + s Σ_j λ_j(x) τ_j per sample with
λ_j(x) = softmax_j(−H_j(x)), H_j the entropy (T = 1) of fine-tuned model j with the row's head; "mean λ own" is the
mean weight DaWin gives to the row's own expert (1/M = {1 / len(MTL_TASKS):.2f} would be uniform). Accuracy (%):

{table_m}

## Files

| file | size |
|---|---:|
{listing}
| **total** | **{total / 1024 / 1024:.2f} MiB** |

`reference_logits.safetensors`: `images_u8` (u8 [8, {IMAGE}, {IMAGE}, 3], the first 8 images of `data/id`), `images`
(f32 [8, 3, {IMAGE}, {IMAGE}], those normalised in f32 as above), `theta0`, `theta1` (f32 [8, {CLASSES}] logits of
`images` from the script's JAX forward, f32 with highest matmul precision) to check a Rust forward against.

## Regenerating

```sh
python3 -m venv /work/venvs/demo && . /work/venvs/demo/bin/activate
pip install {" ".join(f'"{r}"' if "[" in r else r for r in REQUIRES.split())}
python scripts/make_demo.py      # trains everything: 5-7 min on 2 CPU cores
python scripts/make_demo.py --reuse   # keeps the trained weights of this folder, rebuilds data, tables, README
```
"""
    with open(os.path.join(out, "README.md"), "w") as fh:
        fh.write(text)


if __name__ == "__main__":
    main()
