#!/usr/bin/env python3
# requires: scripts/requirements-torch.txt  (Pillow 13.0.0, torchvision 0.29.2, open_clip_torch 3.3.0)
"""Single-thread speed of CLIP preprocessing, ours vs PIL + torchvision, on the same files.

Writes N ImageNet-sized JPEGs (500x375, quality 90, 4:2:0, photo-like content; fixed seeds) into
a temporary folder, then alternates ROUNDS times between
  * PyTorch: open_clip.image_transform(S, is_train=False)(default_loader(path)) per file, in this
    process, torch.set_num_threads(1);
  * ours: target/release/examples/preprocess_speed (one thread, one reused Preprocessor);
and prints the best images/s of each and the ratio. Run from the repository root after
  cargo build --release -p dawin-vit --example preprocess_speed
as  /work/pyenv/bin/python scripts/bench_preprocess_single.py [N] [S] [ROUNDS]
"""

import importlib.util
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import open_clip
import torch
from PIL import Image
from torchvision.datasets.folder import default_loader

HERE = os.path.dirname(os.path.abspath(__file__))
# One or more builds of the example, comma-separated (e.g. one built with nasm, one without).
BINS = os.environ.get(
    "PREPROCESS_SPEED_BIN", os.path.join(HERE, "..", "target", "release", "examples", "preprocess_speed")
).split(",")


def photo_module():
    spec = importlib.util.spec_from_file_location("fixtures", os.path.join(HERE, "make_pixel_fixtures.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    size = int(sys.argv[2]) if len(sys.argv) > 2 else 224
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    for b in BINS:
        if not os.path.exists(b):
            sys.exit(f"build it first: cargo build --release -p dawin-vit --example preprocess_speed ({b})")
    torch.set_num_threads(1)
    fx = photo_module()
    with tempfile.TemporaryDirectory() as d:
        for i in range(n):
            fx.rng = np.random.default_rng(1000 + i)
            Image.fromarray(fx.photo(500, 375)).save(os.path.join(d, f"{i:05d}.jpg"), quality=90, subsampling=2)
        files = sorted(os.path.join(d, f) for f in os.listdir(d))
        tf = open_clip.image_transform(size, is_train=False)
        py_best = 0.0
        rs = [dict(full=0.0, decode=0.0, transform=0.0, simd="?") for _ in BINS]
        for _ in range(rounds):
            t = time.perf_counter()
            for p in files:
                x = tf(default_loader(p))
            py_best = max(py_best, n / (time.perf_counter() - t))
            for b, r in zip(BINS, rs):
                out = subprocess.run([b, d, str(size), "1"], capture_output=True, text=True, check=True).stdout
                vals = dict(line.split() for line in out.splitlines())
                for k in ("full", "decode", "transform"):
                    r[k] = max(r[k], float(vals[f"{k}_images_per_s"]))
                r["simd"] = vals["jpeg_simd"]
        assert tuple(x.shape) == (3, size, size)
    print(f"{n} JPEGs 500x375 q90 4:2:0 -> {size}, one thread, best of {rounds} alternating rounds")
    print(f"PIL + torchvision + open_clip:  {py_best:8.1f} images/s")
    for r in rs:
        print(f"dawin-vit (libjpeg SIMD {r['simd']:5}): {r['full']:8.1f} images/s = {r['full'] / py_best:.2f}x"
              f"  (decode alone {r['decode']:.1f}/s, resize+crop+normalise alone {r['transform']:.1f}/s)")


if __name__ == "__main__":
    main()
