#!/usr/bin/env python3
# requires: scripts/requirements-torch.txt   (open_clip_torch 3.3.0)
"""Writes crates/dawin-vit/tests/fixtures/open_clip_presets.json: for each open_clip model name
that `dawin --arch` accepts, the fields of open_clip's own model config (open_clip.factory.
get_model_config) that the tool reads, with open_clip's defaults filled in where the file omits a
key (head_width 64, mlp_ratio 4.0, quick_gelu false, ls_init_value null, context_length 77,
vocab_size 49408). crates/dawin-vit/tests/arch.rs compares dawin_vit::arch::OPEN_CLIP_PRESETS
with it.

Run:  /work/pyenv/bin/python scripts/dump_open_clip_presets.py
"""
import json
import os

from open_clip.factory import get_model_config

NAMES = ["ViT-B-32", "ViT-B-32-quickgelu", "ViT-B-16", "ViT-B-16-quickgelu", "ViT-L-14",
         "ViT-L-14-quickgelu", "ViT-L-14-336", "ViT-L-14-336-quickgelu", "ViT-H-14",
         "ViT-H-14-quickgelu", "ViT-g-14", "ViT-bigG-14"]

out = {}
for n in NAMES:
    c = get_model_config(n)
    v, t = c["vision_cfg"], c["text_cfg"]
    out[n] = {
        "width": v["width"], "layers": v["layers"], "head_width": v.get("head_width", 64),
        "patch_size": v["patch_size"], "image_size": v["image_size"],
        "mlp_ratio": v.get("mlp_ratio", 4.0), "embed_dim": c["embed_dim"],
        "quick_gelu": c.get("quick_gelu", False), "ls_init_value": v.get("ls_init_value"),
        "text": [t.get("context_length", 77), t.get("vocab_size", 49408), t["width"], t["heads"],
                 t["layers"]],
    }
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crates", "dawin-vit",
                    "tests", "fixtures", "open_clip_presets.json")
with open(path, "w") as f:
    json.dump(out, f, indent=1)
print("wrote", os.path.normpath(path))
