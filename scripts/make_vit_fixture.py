#!/usr/bin/env python3
# requires: numpy==1.26.4 jax==0.4.35 jaxlib==0.4.35 flax==0.10.2 transformers==4.46.3 safetensors==0.4.5 pillow==11.0.0
# (python 3.11; CPU only: `pip install` of exactly these versions, no torch needed)
"""Builds the small fixtures of crates/dawin-vit/tests/ from independent implementations.

1. Parity fixture. A tiny random CLIP vision tower (image 32, patch 8, width 64, 2 layers, 2 heads,
   MLP 128, embed 32) is run by Hugging Face `transformers` (its Flax CLIP: `FlaxCLIPModel`'s
   `get_image_features`, i.e. the vision transformer, post layer norm on the class token and the
   visual projection; transformers 4.46 has no Flax `...VisionModelWithProjection` class), in float64.
   Every parameter, layer norms and biases included, is random so that each one matters.
   A 10-class head is applied in numpy: logits = W f/|f| + b.
   Written:
     tiny_hf.safetensors      Hugging Face names (vision_model.*, visual_projection.weight) + head
     tiny_openai.safetensors  OpenAI / open_clip names (visual.*; q,k,v packed into in_proj_weight/bias
                              in that order; visual.proj = visual_projection.weight transposed) + head
     tiny_io.safetensors      inputs f32 [4,3,32,32], logits f32 [4,10], features f32 [4,32] (normalised)
   Both checkpoints carry the metadata key dawin.vit.heads = "2" (heads are 32 wide, not 64).

2. Preprocessing fixture. Small images (RGB PNG, grayscale PNG, RGB JPEG, CMYK JPEG) and what
   OpenAI CLIP's transform gives for them, written with PIL only (no torchvision):
     Resize(size, BICUBIC) of the shorter side (long side = int(size * long / short)), CenterCrop(size)
     with top/left = int(round((H - size) / 2)), convert("RGB"), /255, (x - mean) / std.
   Written: img_rgb.png, img_gray.png, img_rgb.jpg, img_cmyk.jpg and preprocess_expected.safetensors
   with `<image>_<size>` f32 [3,size,size] for sizes 32 (downsampling) and 64 (upsampling), and
   `<image>_decoded` u8 [H,W,3]: PIL's decoded RGB pixels (for the JPEGs, to separate decoder
   differences from resize differences).

Run:  python scripts/make_vit_fixture.py   (writes into crates/dawin-vit/tests/fixtures/)
"""

import os
import sys

import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crates", "dawin-vit", "tests", "fixtures")
MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)


def make_model_fixture():
    import jax

    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_default_matmul_precision", "highest")
    import jax.numpy as jnp
    from flax.traverse_util import flatten_dict, unflatten_dict
    from safetensors.numpy import save_file
    from transformers import CLIPConfig, FlaxCLIPModel

    image, patch, width, layers, heads, mlp, embed, classes = 32, 8, 64, 2, 2, 128, 32, 10
    config = CLIPConfig(
        text_config=dict(vocab_size=99, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=8, projection_dim=embed),
        vision_config=dict(image_size=image, patch_size=patch, hidden_size=width, intermediate_size=mlp,
                           num_hidden_layers=layers, num_attention_heads=heads, projection_dim=embed,
                           hidden_act="quick_gelu", layer_norm_eps=1e-5),
        projection_dim=embed,
    )
    model = FlaxCLIPModel(config, seed=0, dtype=jnp.float64, _do_init=True)

    rng = np.random.default_rng(20250105)
    flat = flatten_dict(model.params)
    new = {}
    for key, value in flat.items():
        shape = value.shape
        last = key[-1]
        if last == "scale":  # layer-norm weight
            arr = 1.0 + 0.2 * rng.standard_normal(shape)
        elif last == "bias":
            arr = 0.1 * rng.standard_normal(shape)
        elif last == "kernel":
            fan_in = int(np.prod(shape[:-1]))
            arr = rng.standard_normal(shape) / np.sqrt(fan_in)
        else:  # embeddings (class, position, token)
            arr = 0.5 * rng.standard_normal(shape)
        # Round to f32 first so that the f32 checkpoint holds exactly the parameters used here.
        new[key] = jnp.asarray(arr.astype(np.float32).astype(np.float64))
    params = unflatten_dict(new)

    n = 4
    pixels = rng.standard_normal((n, 3, image, image)).astype(np.float32)
    feats = np.asarray(model.get_image_features(pixel_values=jnp.asarray(pixels, dtype=jnp.float64), params=params))
    feats = feats.astype(np.float64)
    normed = feats / np.linalg.norm(feats, axis=1, keepdims=True)
    head_w = (rng.standard_normal((classes, embed)) * 2.0).astype(np.float32)
    head_b = (0.1 * rng.standard_normal(classes)).astype(np.float32)
    logits = normed @ head_w.astype(np.float64).T + head_b.astype(np.float64)

    # Flax -> Hugging Face (PyTorch) names and layouts.
    p = {k: np.asarray(v, dtype=np.float64) for k, v in flatten_dict(params).items()}
    hf = {}

    def dense(prefix, key):
        hf[prefix + ".weight"] = p[key + ("kernel",)].T
        if key + ("bias",) in p:
            hf[prefix + ".bias"] = p[key + ("bias",)]

    def ln(prefix, key):
        hf[prefix + ".weight"] = p[key + ("scale",)]
        hf[prefix + ".bias"] = p[key + ("bias",)]

    vm = ("vision_model",)
    hf["vision_model.embeddings.class_embedding"] = p[vm + ("embeddings", "class_embedding")]
    # flax conv kernel [kh, kw, in, out] -> torch [out, in, kh, kw]
    hf["vision_model.embeddings.patch_embedding.weight"] = p[vm + ("embeddings", "patch_embedding", "kernel")].transpose(3, 2, 0, 1)
    hf["vision_model.embeddings.position_embedding.weight"] = p[vm + ("embeddings", "position_embedding", "embedding")]
    ln("vision_model.pre_layrnorm", vm + ("pre_layrnorm",))
    for i in range(layers):
        src = vm + ("encoder", "layers", str(i))
        dst = f"vision_model.encoder.layers.{i}"
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            dense(f"{dst}.self_attn.{proj}", src + ("self_attn", proj))
        ln(f"{dst}.layer_norm1", src + ("layer_norm1",))
        dense(f"{dst}.mlp.fc1", src + ("mlp", "fc1"))
        dense(f"{dst}.mlp.fc2", src + ("mlp", "fc2"))
        ln(f"{dst}.layer_norm2", src + ("layer_norm2",))
    ln("vision_model.post_layernorm", vm + ("post_layernorm",))
    hf["visual_projection.weight"] = p[("visual_projection", "kernel")].T

    # Hugging Face -> OpenAI / open_clip names and layouts.
    oa = {
        "visual.class_embedding": hf["vision_model.embeddings.class_embedding"],
        "visual.conv1.weight": hf["vision_model.embeddings.patch_embedding.weight"],
        "visual.positional_embedding": hf["vision_model.embeddings.position_embedding.weight"],
        "visual.ln_pre.weight": hf["vision_model.pre_layrnorm.weight"],
        "visual.ln_pre.bias": hf["vision_model.pre_layrnorm.bias"],
        "visual.ln_post.weight": hf["vision_model.post_layernorm.weight"],
        "visual.ln_post.bias": hf["vision_model.post_layernorm.bias"],
        "visual.proj": hf["visual_projection.weight"].T,
    }
    for i in range(layers):
        s = f"vision_model.encoder.layers.{i}"
        d = f"visual.transformer.resblocks.{i}"
        oa[f"{d}.attn.in_proj_weight"] = np.concatenate([hf[f"{s}.self_attn.{x}_proj.weight"] for x in "qkv"], axis=0)
        oa[f"{d}.attn.in_proj_bias"] = np.concatenate([hf[f"{s}.self_attn.{x}_proj.bias"] for x in "qkv"], axis=0)
        oa[f"{d}.attn.out_proj.weight"] = hf[f"{s}.self_attn.out_proj.weight"]
        oa[f"{d}.attn.out_proj.bias"] = hf[f"{s}.self_attn.out_proj.bias"]
        oa[f"{d}.ln_1.weight"] = hf[f"{s}.layer_norm1.weight"]
        oa[f"{d}.ln_1.bias"] = hf[f"{s}.layer_norm1.bias"]
        oa[f"{d}.mlp.c_fc.weight"] = hf[f"{s}.mlp.fc1.weight"]
        oa[f"{d}.mlp.c_fc.bias"] = hf[f"{s}.mlp.fc1.bias"]
        oa[f"{d}.mlp.c_proj.weight"] = hf[f"{s}.mlp.fc2.weight"]
        oa[f"{d}.mlp.c_proj.bias"] = hf[f"{s}.mlp.fc2.bias"]
        oa[f"{d}.ln_2.weight"] = hf[f"{s}.layer_norm2.weight"]
        oa[f"{d}.ln_2.bias"] = hf[f"{s}.layer_norm2.bias"]

    meta = {"dawin.vit.heads": str(heads), "dawin.fixture": "scripts/make_vit_fixture.py"}
    for name, sd in (("tiny_hf.safetensors", hf), ("tiny_openai.safetensors", oa)):
        tensors = {k: np.ascontiguousarray(v.astype(np.float32)) for k, v in sd.items()}
        tensors["classification_head.weight"] = head_w
        tensors["classification_head.bias"] = head_b
        save_file(tensors, os.path.join(OUT, name), metadata=meta)
    save_file(
        {
            "inputs": np.ascontiguousarray(pixels),
            "logits": logits.astype(np.float32),
            "features": normed.astype(np.float32),
        },
        os.path.join(OUT, "tiny_io.safetensors"),
        metadata={"dawin.fixture": "scripts/make_vit_fixture.py"},
    )
    print("model fixture: |logits| max", float(np.abs(logits).max()), "features", normed.shape)


def clip_preprocess(img, size):
    """OpenAI CLIP's eval transform, with PIL only."""
    from PIL import Image

    w, h = img.size
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = size, int(size * long / short)
    new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    if (new_w, new_h) != (w, h):
        img = img.resize((new_w, new_h), Image.BICUBIC)
    top = int(round((new_h - size) / 2.0))
    left = int(round((new_w - size) / 2.0))
    img = img.crop((left, top, left + size, top + size))
    img = img.convert("RGB")
    x = np.asarray(img, dtype=np.float32) / np.float32(255.0)
    x = (x - MEAN) / STD
    return np.ascontiguousarray(x.transpose(2, 0, 1).astype(np.float32))


def make_image_fixture():
    from PIL import Image
    from safetensors.numpy import save_file

    rng = np.random.default_rng(7)
    # A smooth colour field with edges and noise, 45 x 37 (landscape).
    h, w = 37, 45
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 128 + 100 * np.sin(xx / 5.0) * np.cos(yy / 7.0)
    g = 255 * (xx / w)
    b = 255 * ((xx + yy) % 16 < 8)
    rgb = np.stack([r, g, b], axis=-1) + rng.normal(0, 12, (h, w, 3))
    rgb = np.clip(np.round(rgb), 0, 255).astype(np.uint8)
    # Grayscale, 29 x 52 (portrait).
    gh, gw = 52, 29
    gy, gx = np.mgrid[0:gh, 0:gw].astype(np.float64)
    gray = np.clip(np.round(128 + 90 * np.sin(gx / 3.0 + gy / 11.0) + rng.normal(0, 10, (gh, gw))), 0, 255).astype(np.uint8)

    images = {
        "img_rgb.png": Image.fromarray(rgb, "RGB"),
        "img_gray.png": Image.fromarray(gray, "L"),
    }
    images["img_rgb.png"].save(os.path.join(OUT, "img_rgb.png"))
    images["img_gray.png"].save(os.path.join(OUT, "img_gray.png"))
    Image.fromarray(rgb, "RGB").save(os.path.join(OUT, "img_rgb.jpg"), quality=95, subsampling=0)
    Image.fromarray(rgb, "RGB").convert("CMYK").save(os.path.join(OUT, "img_cmyk.jpg"), quality=95)

    expected = {}
    for name in ("img_rgb.png", "img_gray.png", "img_rgb.jpg", "img_cmyk.jpg"):
        img = Image.open(os.path.join(OUT, name))
        img.load()
        stem = name.replace(".", "_")
        expected[f"{stem}_decoded"] = np.ascontiguousarray(np.asarray(img.convert("RGB"), dtype=np.uint8))
        for size in (32, 64):
            expected[f"{stem}_{size}"] = clip_preprocess(img, size)
        print(name, img.mode, img.size)
    save_file(expected, os.path.join(OUT, "preprocess_expected.safetensors"),
              metadata={"dawin.fixture": "scripts/make_vit_fixture.py"})


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    what = sys.argv[1:] or ["model", "images"]
    if "model" in what:
        make_model_fixture()
    if "images" in what:
        make_image_fixture()
