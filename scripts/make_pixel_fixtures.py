#!/usr/bin/env python3
# requires: scripts/requirements-torch.txt  (Pillow 13.0.0 with its bundled libjpeg-turbo 3.2.0,
#           torchvision 0.29.2, open_clip_torch 3.3.0, torch 2.15.0, numpy, safetensors)
"""Pixel fixtures of dawin-vit's preprocessing: small JPEG and PNG files and what the PyTorch
pipeline makes of them, for crates/dawin-vit/tests/preprocess.rs.

The reference pipeline is the one a CLIP evaluation runs on an image folder:
    img = torchvision.datasets.folder.default_loader(path)      # Image.open(f).convert("RGB")
    x   = open_clip.image_transform(S, is_train=False)(img)     # Resize(S, BICUBIC), CenterCrop(S),
                                                                # convert RGB, ToTensor, Normalize
with open_clip's defaults (resize_mode "shortest", interpolation "bicubic", OpenAI mean/std).

Images (written by Pillow unless said; generated from a fixed seed, so reruns are identical):
  JPEG  baseline 4:2:0 / 4:2:2 / 4:4:4, progressive 4:2:0 / 4:4:4, grayscale, CMYK (Adobe,
        inverted, as Pillow writes it), YCCK (the CMYK file with its Adobe transform byte set to 2:
        Pillow cannot write YCCK), restart markers, RGB colour space (keep_rgb), EXIF orientation 6
        (not applied by default_loader: checked here), an ImageNet-sized 500x375 q90 4:2:0 photo-like
        image, a tiny 13x9 image (upscaled), 1x50 and 50x1 lines, a tall 90x250 image and a 40x70
        portrait (Pillow 13 resizes the tall one vertically first at sizes 32 and 64, the portrait
        horizontally first: both checked here against single-pass resizes).
  PNG   (hand-written encoder below for the bit depths Pillow cannot write) RGB, RGBA (alpha dropped,
        not composited: checked), palette 8-bit with tRNS, palette 4-bit, gray 1/2/4/8-bit,
        gray with tRNS, gray 16-bit (Pillow clips to 255: checked), RGB 16-bit, RGBA 16-bit,
        gray+alpha 8/16-bit, Adam7-interlaced RGB.
Before writing, the pass-order rule (vertical first iff out_h < h and h - out_h > 2 (w - out_w))
is confirmed on ~400 random resizes of noise images against compositions of single-axis resizes.
Written into crates/dawin-vit/tests/fixtures/pixels/:
  the image files, and expected.safetensors with, per image NAME (file name):
    NAME/decoded  u8  [H, W, 3]   default_loader(path) as numpy
    NAME/s32      f32 [3, 32, 32] the eval transform at size 32 (also s64 for base_420, tiny_13x9,
                                  tall_90x250, and s224 for imagenet_like)
  and resize/NAME/OWxOH u8 [OH, OW, 3]: Pillow's img.resize((OW, OH), BICUBIC) of the decoded
  base_420.jpg and rgb.png to 14 sizes each (up, down, mixed, both pass orders).
  metadata: the versions, and per image the pass order Pillow used at each size.
Reruns write identical images and tensors (the order of the safetensors header may differ).

Run:  /work/pyenv/bin/python scripts/make_pixel_fixtures.py
"""

import json
import os
import struct
import sys
import warnings
import zlib

import numpy as np
import open_clip
import PIL
import PIL.features
import torch
import torchvision
from PIL import Image
from safetensors.numpy import save_file
from torchvision.datasets.folder import default_loader

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "crates", "dawin-vit", "tests", "fixtures", "pixels")

PINS = {"pillow": "13.0.0", "torchvision": "0.29.2", "open_clip": "3.3.0"}


def check_versions():
    got = {
        "pillow": PIL.__version__,
        "torchvision": torchvision.__version__.split("+")[0],
        "open_clip": open_clip.__version__,
    }
    if got != PINS:
        sys.exit(f"version mismatch: want {PINS}, have {got}")


rng = np.random.default_rng(20260517)


def photo(w, h):
    """Photo-like RGB content: smooth shading, a few hard edges, fine texture and noise."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 120 + 90 * np.sin(x / (w / 3.1) + y / (h / 1.7))
    g = 110 + 80 * np.cos(x / (w / 2.3) - y / (h / 2.9))
    b = 100 + 70 * np.sin((x + 2 * y) / (w / 4.7))
    a = np.stack([r, g, b], -1)
    a += 18 * np.sin(x / 1.3)[..., None] * np.cos(y / 1.7)[..., None]
    a += rng.normal(0, 9, a.shape)
    # saturated blocks with sharp borders stress chroma subsampling
    a[h // 5: h // 2, w // 6: w // 2] = [235, 25, 40]
    a[h // 2: 4 * h // 5, w // 2: 5 * w // 6] = [20, 60, 230]
    return np.clip(a, 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------
# A minimal PNG encoder (any colour type / bit depth / Adam7), for what Pillow cannot write.


def _chunk(tag, data):
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def _pack_rows(samples, depth):
    """samples: uint array [h, w, c] -> list of packed row bytes (big-endian, MSB-first)."""
    h, w, c = samples.shape
    rows = []
    for row in samples.reshape(h, w * c):
        if depth == 16:
            rows.append(row.astype(">u2").tobytes())
        elif depth == 8:
            rows.append(row.astype(np.uint8).tobytes())
        else:
            per = 8 // depth
            padded = np.zeros(((len(row) + per - 1) // per) * per, np.uint8)
            padded[: len(row)] = row
            packed = np.zeros(len(padded) // per, np.uint8)
            for i in range(per):
                packed |= (padded[i::per] << (8 - depth * (i + 1))).astype(np.uint8)
            rows.append(packed.tobytes())
    return rows


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def write_png(path, samples, depth, color_type, plte=None, trns=None, interlace=False):
    h, w = samples.shape[:2]
    raw = b""
    if interlace:
        for x0, y0, dx, dy in ADAM7:
            sub = samples[y0::dy, x0::dx]
            if sub.shape[0] and sub.shape[1]:
                raw += b"".join(b"\x00" + r for r in _pack_rows(sub, depth))
    else:
        raw = b"".join(b"\x00" + r for r in _pack_rows(samples, depth))
    data = b"\x89PNG\r\n\x1a\n"
    data += _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, int(interlace)))
    if plte is not None:
        data += _chunk(b"PLTE", bytes(np.asarray(plte, np.uint8).reshape(-1)))
    if trns is not None:
        data += _chunk(b"tRNS", trns)
    data += _chunk(b"IDAT", zlib.compress(raw, 9))
    data += _chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(data)


# --------------------------------------------------------------------------------------------


def make_images():
    """Writes the image files; returns {name: sizes to compute}."""
    sizes = {}

    def jpeg(name, img, s=(32,), **kw):
        img.save(os.path.join(OUT, name), "JPEG", **kw)
        sizes[name] = s

    base = Image.fromarray(photo(61, 45))
    jpeg("base_420.jpg", base, s=(32, 64), quality=75, subsampling=2)
    jpeg("base_422.jpg", base, quality=90, subsampling=1)
    jpeg("base_444.jpg", base, quality=95, subsampling=0)
    jpeg("prog_420.jpg", base, quality=85, subsampling=2, progressive=True)
    jpeg("prog_444.jpg", base, quality=80, subsampling=0, progressive=True)
    jpeg("gray.jpg", base.convert("L"), quality=85)
    jpeg("cmyk.jpg", base.convert("CMYK"), quality=85)
    # YCCK: the CMYK file with its Adobe APP14 transform flag set to 2 (a valid YCCK JPEG).
    data = bytearray(open(os.path.join(OUT, "cmyk.jpg"), "rb").read())
    at = data.find(b"\xff\xee")
    assert at > 0 and data[at + 4: at + 9] == b"Adobe" and data[at + 15] == 0, "Adobe APP14, transform 0"
    data[at + 15] = 2  # FF EE, length (2), "Adobe" (5), version (2), flags0 (2), flags1 (2), transform
    with open(os.path.join(OUT, "ycck.jpg"), "wb") as f:
        f.write(data)
    sizes["ycck.jpg"] = (32,)
    assert Image.open(os.path.join(OUT, "ycck.jpg")).info.get("adobe_transform") == 2
    jpeg("restart.jpg", base, quality=85, subsampling=2, restart_marker_blocks=3)
    jpeg("rgb_colorspace.jpg", base, quality=90, subsampling=0, keep_rgb=True)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° CW to display
    rot = Image.fromarray(photo(48, 30))
    jpeg("exif_rot6.jpg", rot, quality=88, exif=exif)
    loaded = default_loader(os.path.join(OUT, "exif_rot6.jpg"))
    assert loaded.size == (48, 30), "default_loader must not apply the EXIF orientation"
    assert Image.open(os.path.join(OUT, "exif_rot6.jpg")).getexif()[0x0112] == 6
    jpeg("imagenet_like.jpg", Image.fromarray(photo(500, 375)), s=(32, 224), quality=90, subsampling=2)
    jpeg("tiny_13x9.jpg", Image.fromarray(photo(13, 9)), s=(32, 64), quality=90)
    jpeg("line_1x50.jpg", Image.fromarray(photo(1, 50)), s=(32,), quality=90)
    jpeg("line_50x1.jpg", Image.fromarray(photo(50, 1)), s=(32,), quality=90)
    jpeg("tall_90x250.jpg", Image.fromarray(photo(90, 250)), s=(32, 64), quality=90)
    jpeg("portrait_40x70.jpg", Image.fromarray(photo(40, 70)), quality=90)

    def png(name, s=(32,)):
        sizes[name] = s
        return os.path.join(OUT, name)

    small = photo(23, 31)
    Image.fromarray(small).save(png("rgb.png"))
    alpha = rng.integers(0, 256, small.shape[:2], dtype=np.uint8)
    rgba = np.dstack([small, alpha])
    Image.fromarray(rgba, "RGBA").save(png("rgba.png"))
    got = np.asarray(default_loader(os.path.join(OUT, "rgba.png")))
    assert np.array_equal(got, small), "RGBA -> RGB must drop alpha without compositing"
    pal_img = Image.fromarray(small).quantize(200)
    pal = np.array(pal_img.getpalette()[: 3 * 200], np.uint8).reshape(-1, 3)
    idx = np.asarray(pal_img)
    write_png(png("palette_trns.png"), idx[..., None], 8, 3, plte=pal,
              trns=bytes(rng.integers(0, 256, 200, dtype=np.uint8)))
    idx4 = (idx % 16).astype(np.uint8)
    write_png(png("palette4.png"), idx4[..., None], 4, 3, plte=pal[:16])
    gray = np.asarray(Image.fromarray(small).convert("L"))
    Image.fromarray(gray, "L").save(png("gray.png"))
    for d in (1, 2, 4):
        write_png(png(f"gray{d}.png"), (gray >> (8 - d))[..., None], d, 0)
    write_png(png("gray_trns.png"), gray[..., None], 8, 0, trns=struct.pack(">H", int(gray[0, 0])))
    g16 = (gray.astype(np.uint16) * 257 // 3 + rng.integers(0, 40, gray.shape)).astype(np.uint16)
    g16[0, :5] = [0, 100, 255, 256, 65535]
    write_png(png("gray16.png"), g16[..., None], 16, 0)
    got = np.asarray(default_loader(os.path.join(OUT, "gray16.png")))
    assert Image.open(os.path.join(OUT, "gray16.png")).mode == "I;16"
    assert np.array_equal(got[..., 0], np.minimum(g16, 255)), "I;16 -> RGB clips"
    rgb16 = (small.astype(np.uint16) * 257 + rng.integers(0, 257, small.shape)).astype(np.uint16)
    write_png(png("rgb16.png"), rgb16, 16, 2)
    assert np.array_equal(np.asarray(default_loader(os.path.join(OUT, "rgb16.png"))), rgb16 >> 8)
    rgba16 = np.dstack([rgb16, rng.integers(0, 65536, small.shape[:2], dtype=np.uint16)])
    write_png(png("rgba16.png"), rgba16, 16, 6)
    write_png(png("la.png"), np.dstack([gray, alpha]), 8, 4)
    la16 = np.dstack([g16, rng.integers(0, 65536, gray.shape, dtype=np.uint16)])
    write_png(png("la16.png"), la16, 16, 4)
    write_png(png("interlaced.png"), photo(29, 19), 8, 2, interlace=True)
    return sizes


def pass_orders(path, size):
    """The pass order Pillow 13 used for the Resize of `path` at `size`."""
    img = default_loader(path)
    w, h = img.size
    short, long = (w, h) if w <= h else (h, w)
    new_long = int(size * long / short)
    ow, oh = (size, new_long) if w <= h else (new_long, size)
    if (ow, oh) == (w, h):
        return "none"
    if ow == w or oh == h:
        return "one-pass"
    return order_of(img, ow, oh)


def order_of(img, ow, oh):
    """"vertical-first" / "horizontal-first" / "either": which composition of single-axis
    resizes (each a single pass) equals Pillow's own two-pass resize of `img` to (ow, oh)."""
    w, h = img.size
    real = np.asarray(img.resize((ow, oh), Image.BICUBIC))
    hv = np.asarray(img.resize((ow, h), Image.BICUBIC).resize((ow, oh), Image.BICUBIC))
    vh = np.asarray(img.resize((w, oh), Image.BICUBIC).resize((ow, oh), Image.BICUBIC))
    if np.array_equal(hv, vh):
        assert np.array_equal(real, hv)
        return "either"
    if np.array_equal(real, vh):
        return "vertical-first"
    assert np.array_equal(real, hv), f"{img.size} -> {(ow, oh)}: neither pass order reproduces Pillow"
    return "horizontal-first"


def vertical_first_rule(w, h, ow, oh):
    """Pillow 13's pass order as dawin-vit implements it (pull request 9549)."""
    return oh < h and (h - oh) > 2 * (w - ow)


def check_pass_order_rule(trials=400):
    """Confirms the rule on random sizes (random noise images, so the orders differ)."""
    r = np.random.default_rng(7)
    decided = 0
    for _ in range(trials):
        w, h = (int(v) for v in r.integers(2, 120, 2))
        ow, oh = int(r.integers(1, 2 * w)), int(r.integers(1, 2 * h))
        if r.random() < 0.5 and oh < h:  # near the boundary h - oh = 2 (w - ow)
            ow = max(1, w - (h - oh) // 2 + int(r.integers(-2, 3)))
        if ow == w or oh == h:
            continue
        img = Image.fromarray(r.integers(0, 256, (h, w, 3), dtype=np.uint8))
        got = order_of(img, ow, oh)
        if got != "either":
            decided += 1
            want = "vertical-first" if vertical_first_rule(w, h, ow, oh) else "horizontal-first"
            assert got == want, f"{(w, h)} -> {(ow, oh)}: Pillow {got}, rule {want}"
    print(f"pass-order rule confirmed on {decided} random resizes")


def resize_cases(images):
    """Pillow's resize of two decoded fixture images to many sizes, both pass orders."""
    r = np.random.default_rng(11)
    out, orders = {}, {}
    for name in images:
        img = default_loader(os.path.join(OUT, name))
        w, h = img.size
        pairs = {(w - 1, 3), (w // 2, 2), (3, h - 1), (w + 7, h // 3), (1, 1), (2 * w, 2 * h)}
        while len(pairs) < 14:
            pairs.add((int(r.integers(1, 48)), int(r.integers(1, 48))))
        for ow, oh in sorted(pairs):
            out[f"resize/{name}/{ow}x{oh}"] = np.asarray(img.resize((ow, oh), Image.BICUBIC))
            orders[f"resize/{name}/{ow}x{oh}"] = order_of(img, ow, oh) if ow != w and oh != h else "one-pass"
    return out, orders


def main():
    check_versions()
    # Pillow's advice when converting palette + tRNS images; the conversion itself is the point.
    warnings.filterwarnings("ignore", message="Palette images with Transparency")
    os.makedirs(OUT, exist_ok=True)
    check_pass_order_rule()
    sizes = make_images()
    tensors, orders = resize_cases(["base_420.jpg", "rgb.png"])
    for name, ss in sorted(sizes.items()):
        path = os.path.join(OUT, name)
        img = default_loader(path)
        tensors[f"{name}/decoded"] = np.ascontiguousarray(np.asarray(img, dtype=np.uint8))
        for s in ss:
            x = open_clip.image_transform(s, is_train=False)(img)
            assert x.dtype == torch.float32 and tuple(x.shape) == (3, s, s)
            tensors[f"{name}/s{s}"] = x.numpy()
            orders[f"{name}/s{s}"] = pass_orders(path, s)
    assert orders["tall_90x250.jpg/s32"] == "vertical-first", orders["tall_90x250.jpg/s32"]
    assert orders["tall_90x250.jpg/s64"] == "vertical-first"
    assert orders["portrait_40x70.jpg/s32"] == "horizontal-first"
    meta = {
        "pillow": PIL.__version__,
        "libjpeg_turbo": PIL.features.version("libjpeg_turbo"),
        "torchvision": torchvision.__version__,
        "open_clip": open_clip.__version__,
        "torch": torch.__version__,
        "transform": repr(open_clip.image_transform(32, is_train=False)).replace("\n", " "),
        "pass_orders": json.dumps(orders, sort_keys=True),
    }
    tmp = os.path.join(OUT, "expected.safetensors.tmp")
    save_file(tensors, tmp, metadata=meta)
    os.chmod(tmp, 0o644)
    os.replace(tmp, os.path.join(OUT, "expected.safetensors"))
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"{len(sizes)} images, {len(tensors)} tensors, {total / 1024:.0f} KiB in {OUT}")
    for k, v in sorted(orders.items()):
        if v == "vertical-first":
            print(f"  {k}: {v}")


if __name__ == "__main__":
    main()
