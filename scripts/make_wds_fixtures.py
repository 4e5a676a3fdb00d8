#!/usr/bin/env python3
# requires: scripts/requirements-torch.txt (webdataset 1.0.2, pillow 13.0.0, numpy 2.4.6, safetensors 0.8.0)
"""Writes the WebDataset fixtures of crates/dawin-vit/tests/webdataset.rs.

Shards are written by webdataset's own `ShardWriter` (3 samples per shard -> 3 shards) with
images encoded by PIL beforehand (so the JPEG settings are known), then read back by webdataset
(`WebDataset(urls, shardshuffle=False).decode("rgb8")`: PIL decode + convert("RGB")) to give the
expected keys, labels and pixels. The Rust test reads the same shards with dawin-vit's reader.

Written into crates/dawin-vit/tests/fixtures/wds/:
  shard-000000.tar .. shard-000002.tar   7 samples: PNG (RGB, gray), JPEG (4:4:4 and 4:2:0, `.jpg`
                                         and `.jpeg`), a key in a sub-directory, a key longer than
                                         100 bytes (PAX header), `.cls` with surrounding white
                                         space, an ignored `.json` member per sample
  bad_cls.tar                            a sample whose .cls holds "cat"
  missing_cls.tar                        a complete sample, then one with a .png and no .cls
  expected.tsv                           per sample: index, shard, key, label, image suffix, sha256
                                         of the image member's bytes, width, height (as webdataset
                                         + PIL read them)
  expected_pixels.safetensors            `pixels_<index>`: u8 [H, W, 3], webdataset's "rgb8" decode
  python_reference.tsv                   `brace` rows: pattern, then braceexpand 0.1.7's expansion
                                         (webdataset's URL expansion); `split` rows: a member name,
                                         then webdataset's base_plus_ext key and suffix (or `-`)

Run:  /work/pyenv/bin/python scripts/make_wds_fixtures.py
"""

import hashlib
import io
import os

import braceexpand
import numpy as np
import webdataset as wds
from PIL import Image
from safetensors.numpy import save_file
from webdataset.tariterators import base_plus_ext

OUT = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "crates", "dawin-vit", "tests", "fixtures", "wds"
)


def encode(arr, fmt, **kw):
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt, **kw)
    return buf.getvalue()


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(17)

    def rgb(h, w):
        return rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)

    def smooth(h, w):
        # A smooth gradient: JPEG decoders agree more closely on it than on noise.
        y, x = np.mgrid[0:h, 0:w]
        return np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), (x + y) * 20 % 256], -1).astype(np.uint8)

    long_key = "long/" + "k" * 110
    samples = [
        dict(__key__="s000", png=encode(rgb(4, 5), "PNG"), cls=0, json={"i": 0}),
        dict(__key__="s001", jpg=encode(smooth(5, 6), "JPEG", quality=95, subsampling=0), cls=7, json={"i": 1}),
        dict(__key__="dir/s002", png=encode(rng.integers(0, 256, (4, 4), dtype=np.uint8), "PNG"), cls=999, json={"i": 2}),
        dict(__key__="s003", jpeg=encode(smooth(9, 14), "JPEG", quality=90, subsampling=2), cls=b" 12\n", json={"i": 3}),
        dict(__key__="s004", png=encode(rgb(6, 3), "PNG"), cls=3, json={"i": 4}),
        dict(__key__=long_key, png=encode(rgb(3, 3), "PNG"), cls=5, json={"i": 5}),
        dict(__key__="s006", jpg=encode(smooth(8, 8), "JPEG", quality=95, subsampling=0), cls=1, json={"i": 6}),
    ]
    for f in os.listdir(OUT):
        os.remove(os.path.join(OUT, f))
    with wds.ShardWriter(os.path.join(OUT, "shard-%06d.tar"), maxcount=3) as sink:
        for s in samples:
            sink.write(s)
    with wds.TarWriter(os.path.join(OUT, "bad_cls.tar")) as sink:
        sink.write(dict(__key__="ok0", png=encode(rgb(2, 2), "PNG"), cls=4))
        sink.write(dict(__key__="bad1", png=encode(rgb(2, 2), "PNG"), cls=b"cat"))
    with wds.TarWriter(os.path.join(OUT, "missing_cls.tar")) as sink:
        sink.write(dict(__key__="ok0", png=encode(rgb(2, 2), "PNG"), cls=4))
        sink.write(dict(__key__="nolabel1", png=encode(rgb(2, 2), "PNG")))

    urls = os.path.join(OUT, "shard-{000000..000002}.tar")
    shards = list(braceexpand.braceexpand(urls))
    assert len(shards) == 3 and all(os.path.exists(s) for s in shards)
    raw = list(wds.WebDataset(urls, shardshuffle=False))
    dec = list(wds.WebDataset(urls, shardshuffle=False).decode("rgb8"))
    assert [s["__key__"] for s in raw] == [s["__key__"] for s in samples]
    rows, pixels = [], {}
    for i, (r, d) in enumerate(zip(raw, dec)):
        suffix = next(k for k in ("jpg", "jpeg", "png") if k in r)
        img = d[suffix]
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
        label = int(r["cls"].decode("ascii"))
        shard = shards.index(r["__url__"])
        rows.append(
            f"{i}\t{shard}\t{r['__key__']}\t{label}\t{suffix}\t{hashlib.sha256(r[suffix]).hexdigest()}"
            f"\t{img.shape[1]}\t{img.shape[0]}"
        )
        pixels[f"pixels_{i}"] = np.ascontiguousarray(img)
    with open(os.path.join(OUT, "expected.tsv"), "w", encoding="utf-8", newline="\n") as f:
        f.write("# index\tshard\tkey\tlabel\tsuffix\tsha256\twidth\theight (webdataset 1.0.2 + PIL)\n")
        f.write("\n".join(rows) + "\n")
    save_file(pixels, os.path.join(OUT, "expected_pixels.safetensors"))

    patterns = [
        "shard-{000000..000009}.tar",
        "{a,b}/x-{0..2}.tar",
        "{9..11}",
        "{010..8..2}",
        "{-3..3..2}",
        "{-05..5..5}",
        "{Y..c}",
        "{c..Y..2}",
        "{a,{b,c}d}e",
        "{}x{y}",
        "{1..3..0}",
        r"a\{b,c\}",
        r"{a\,b,c}",
        "pre{,-{1..2}}post",
    ]
    names = [
        "abc.jpg", "a/b.seg.png", "d.x/k.cls", "noext", "d.x/noext", ".hidden", "dir/.x.jpg",
        "d.y/.x.jpg", "a/b/.c", "x.y.z", "a.b/c.d/e.f.g", "k.JPG", "/abs.png", "a//.x", "t/.",
    ]
    with open(os.path.join(OUT, "python_reference.tsv"), "w", encoding="utf-8", newline="\n") as f:
        f.write("# braceexpand 0.1.7 expansions and webdataset 1.0.2 base_plus_ext splits\n")
        for p in patterns:
            f.write("\t".join(["brace", p] + list(braceexpand.braceexpand(p))) + "\n")
        for n in names:
            k, s = base_plus_ext(n)
            f.write("\t".join(["split", n] + ([k, s] if k is not None else ["-"])) + "\n")
    for f in sorted(os.listdir(OUT)):
        print("wrote", os.path.join(OUT, f), os.path.getsize(os.path.join(OUT, f)), "bytes")


if __name__ == "__main__":
    main()
