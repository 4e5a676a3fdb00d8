#!/usr/bin/env python3
# requires: scripts/requirements-torch.txt (torch 2.15.0, torchvision 0.29.2, open_clip_torch 3.3.0,
#           pillow 13.0.0, numpy 2.4.6)
"""PyTorch peer of benches/benches/dataloader.rs: the data path of a CLIP evaluation in PyTorch,
torchvision's `ImageFolder` (PIL loading, `convert("RGB")`) + open_clip's eval transform
(`open_clip.image_transform(224, is_train=False)`: Resize(224, bicubic), CenterCrop(224),
ToTensor, Normalize) + `DataLoader(num_workers=N, batch_size=B, shuffle=False)`, no model.

Two modes:

  python benches/peer/dataloader.py generate DIR [--images 512] [--classes 8] [--seed 0]
      writes an ImageNet-like JPEG folder under DIR (never committed; the Rust bench puts it
      under target/): DIR/class_XX/img_XXXX.jpg, sizes around 500×375 (landscape and portrait,
      as ImageNet's), smooth random content with texture and edges, Pillow quality 90 with
      4:2:0 chroma subsampling. Skips existing files, so it runs once.

  python benches/peer/dataloader.py measure DIR --workers N [--batch-size 64] [--epochs 3]
      prints one JSON line {"images_per_s": …, "epochs": …, "images": …, "workers": N}: images
      per second over `--epochs` full passes after one warm-up pass (persistent workers, so the
      worker start-up is not timed), every batch's tensor touched in the main process.

Writes nothing but the generated folder.
"""

import argparse
import json
import os
import sys
import time


def generate(root, images, classes, seed):
    import numpy as np
    from PIL import Image, ImageDraw, ImageFilter

    rng = np.random.default_rng(seed)
    os.makedirs(root, exist_ok=True)
    for i in range(images):
        c = i % classes
        d = os.path.join(root, f"class_{c:02d}")
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, f"img_{i:04d}.jpg")
        # Every image is drawn (existing or not), so the random sequence never depends on what
        # exists; only missing files are written.
        portrait = rng.random() < 0.25
        w = int(rng.integers(440, 501))
        h = int(rng.integers(330, 376))
        if portrait:
            w, h = h, w
        # Smooth colour field: a small random image upsampled bicubically.
        small = rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
        base = Image.fromarray(small, "RGB").resize((w, h), Image.BICUBIC)
        # Texture: fine noise, blurred a little (JPEG must code real detail).
        noise = rng.normal(0, 30, size=(h, w, 3))
        arr = np.asarray(base, dtype=np.float64) + noise
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
        img = img.filter(ImageFilter.GaussianBlur(0.4))
        # Edges: a few filled shapes.
        draw = ImageDraw.Draw(img)
        for _ in range(int(rng.integers(3, 8))):
            x0, y0 = int(rng.integers(0, w - 20)), int(rng.integers(0, h - 20))
            x1, y1 = x0 + int(rng.integers(20, w // 2)), y0 + int(rng.integers(20, h // 2))
            colour = tuple(int(v) for v in rng.integers(0, 256, size=3))
            if rng.random() < 0.5:
                draw.ellipse((x0, y0, x1, y1), fill=colour)
            else:
                draw.rectangle((x0, y0, x1, y1), fill=colour)
        if not os.path.exists(path):
            img.save(path, "JPEG", quality=90, subsampling=2)  # subsampling=2: 4:2:0
    print(json.dumps({"generated": root, "images": images, "classes": classes}))


def measure(root, workers, batch_size, epochs):
    import open_clip
    import torch
    from torch.utils.data import DataLoader
    from torchvision.datasets import ImageFolder

    torch.set_num_threads(1)
    transform = open_clip.image_transform(224, is_train=False)
    ds = ImageFolder(root, transform=transform)
    loader = DataLoader(
        ds,
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        persistent_workers=workers > 0,
    )
    checksum = 0.0

    def one_pass():
        nonlocal checksum
        n = 0
        for x, _y in loader:
            checksum += float(x[0, 0, 0, 0])
            n += x.shape[0]
        return n

    one_pass()  # warm-up: workers started, files in the page cache
    t = time.perf_counter()
    n = sum(one_pass() for _ in range(epochs))
    dt = time.perf_counter() - t
    print(
        json.dumps(
            {
                "images_per_s": n / dt,
                "epochs": epochs,
                "images": n,
                "workers": workers,
                "batch_size": batch_size,
                "checksum": checksum,
            }
        )
    )


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate")
    g.add_argument("dir")
    g.add_argument("--images", type=int, default=512)
    g.add_argument("--classes", type=int, default=8)
    g.add_argument("--seed", type=int, default=0)
    m = sub.add_parser("measure")
    m.add_argument("dir")
    m.add_argument("--workers", type=int, required=True)
    m.add_argument("--batch-size", type=int, default=64)
    m.add_argument("--epochs", type=int, default=3)
    a = p.parse_args()
    if a.cmd == "generate":
        generate(a.dir, a.images, a.classes, a.seed)
    else:
        measure(a.dir, a.workers, a.batch_size, a.epochs)


if __name__ == "__main__":
    sys.exit(main())
