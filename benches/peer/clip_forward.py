#!/usr/bin/env python3
# requires: torch==2.5.1
"""PyTorch eager peer of benches/benches/vit_cuda.rs: the CLIP ViT image tower + normalised linear
head (the same layers as crates/dawin-vit: conv patch embedding, class/position embeddings,
ln_pre, pre-LN residual blocks with QuickGELU MLPs, ln_post of the class token, projection,
L2 normalisation, head), random weights, attention through
torch.nn.functional.scaled_dot_product_attention, fp16 and bf16, batch 256 by default.

Prints a Markdown table with the same columns as the Rust bench: ms per batch, images/s and
TFLOP/s (one model's forward FLOPs, as VitConfig::forward_flops counts them). Images are on the
device before timing; each timed forward ends with the logits copied to the host (as the Rust
bench does). Median of --iters forwards after 2 warm-ups, under torch.inference_mode().

    python3 benches/peer/clip_forward.py [--batch 256] [--iters 10] [--models b32,b16]
"""

import argparse
import math
import statistics
import time

import torch
import torch.nn.functional as F

CONFIGS = {  # image, patch, width, layers, heads, mlp, embed
    "b32": (224, 32, 768, 12, 12, 3072, 512),
    "b16": (224, 16, 768, 12, 12, 3072, 512),
    "l14": (224, 14, 1024, 24, 16, 4096, 768),
}


class Block(torch.nn.Module):
    def __init__(self, width, heads, mlp):
        super().__init__()
        self.heads = heads
        self.ln_1 = torch.nn.LayerNorm(width)
        self.in_proj = torch.nn.Linear(width, 3 * width)
        self.out_proj = torch.nn.Linear(width, width)
        self.ln_2 = torch.nn.LayerNorm(width)
        self.c_fc = torch.nn.Linear(width, mlp)
        self.c_proj = torch.nn.Linear(mlp, width)

    def forward(self, x):
        b, t, w = x.shape
        qkv = self.in_proj(self.ln_1(x)).view(b, t, 3, self.heads, w // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        a = F.scaled_dot_product_attention(q, k, v)
        x = x + self.out_proj(a.transpose(1, 2).reshape(b, t, w))
        h = self.c_fc(self.ln_2(x))
        h = h * torch.sigmoid(1.702 * h)
        return x + self.c_proj(h)


class ClipVision(torch.nn.Module):
    def __init__(self, image, patch, width, layers, heads, mlp, embed, classes=1000):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, width, patch, stride=patch, bias=False)
        tokens = (image // patch) ** 2 + 1
        self.class_embedding = torch.nn.Parameter(torch.randn(width) * 0.02)
        self.positional_embedding = torch.nn.Parameter(torch.randn(tokens, width) * 0.01)
        self.ln_pre = torch.nn.LayerNorm(width)
        self.blocks = torch.nn.ModuleList([Block(width, heads, mlp) for _ in range(layers)])
        self.ln_post = torch.nn.LayerNorm(width)
        self.proj = torch.nn.Linear(width, embed, bias=False)
        self.head = torch.nn.Linear(embed, classes)

    def forward(self, images):
        x = self.conv1(images).flatten(2).transpose(1, 2)
        cls = self.class_embedding.expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding
        x = self.ln_pre(x)
        for blk in self.blocks:
            x = blk(x)
        f = self.proj(self.ln_post(x[:, 0]))
        return self.head(F.normalize(f, dim=-1))


def forward_flops(image, patch, width, layers, heads, mlp, embed, classes=1000):
    """2·MACs of the GEMMs and attention (what VitConfig::forward_flops counts)."""
    g = image // patch
    t = g * g + 1
    conv = g * g * 3 * patch * patch * width
    per_layer = t * width * 3 * width + t * width * width + 2 * t * width * mlp + 2 * t * t * width
    return 2.0 * (conv + layers * per_layer + width * embed + embed * classes)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--models", default="b32,b16")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("SKIPPED: no CUDA device for torch; peer bench not run")
        return
    dev = torch.device("cuda")
    print(f"clip_forward.py (torch {torch.__version__}, eager, SDPA) on "
          f"{torch.cuda.get_device_name(dev)}, batch {args.batch}, median of {args.iters}")
    print("| model | dtype | path | ms / batch | images/s | TFLOP/s |")
    print("|---|---|---|---:|---:|---:|")
    for name in args.models.split(","):
        cfg = CONFIGS[name.strip()]
        torch.manual_seed(0)
        flops = forward_flops(*cfg) * args.batch
        for dtype in (torch.float16, torch.bfloat16):
            model = ClipVision(*cfg).to(dev, dtype).eval()
            images = torch.randn(args.batch, 3, cfg[0], cfg[0], device=dev, dtype=dtype)
            times = []
            with torch.inference_mode():
                for i in range(args.iters + 2):
                    torch.cuda.synchronize()
                    t0 = time.perf_counter()
                    model(images).float().cpu()
                    dt = time.perf_counter() - t0
                    if i >= 2:
                        times.append(dt)
            s = statistics.median(times)
            label = "F16" if dtype == torch.float16 else "Bf16"
            print(f"| {name} | {label} | torch eager | {s * 1e3:.2f} | {args.batch / s:.0f} | "
                  f"{flops / s / 1e12:.1f} |")
            del model, images
            torch.cuda.empty_cache()
    assert math.isfinite(flops)


if __name__ == "__main__":
    main()
