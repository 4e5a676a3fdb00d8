#!/usr/bin/env python3
# requires: scripts/requirements-torch.txt (torch 2.15.0, open_clip_torch 3.3.0; CPU)
"""PyTorch peer of benches/benches/text_cpu.rs: CLIP ViT-B/32's text tower (open_clip's
`ViT-B-32-quickgelu`, random weights, f32) on the same prompts, same thread count.

Prompts: ImageNet's first --classes class names (open_clip's IMAGENET_CLASSNAMES) x the 80
openai-imagenet templates, tokenized by open_clip (ids identical to dawin-vit's tokenizer).
Two rows:
  * open_clip   model.encode_text(tokens): every one of the 77 positions, as open_clip runs it;
  * truncated   the same layers on tokens[:, :L] with L the batch's longest prompt (up to its
                end token), positional embedding and causal mask cut to L: what the Rust side's
                "positions up to the end token" saves, done the PyTorch way (padding to the
                longest prompt of the batch).
Median of --iters timed calls after one warm-up, under torch.inference_mode(). Prints one JSON
line: {"threads", "prompts", "open_clip": prompts/s, "truncated": prompts/s, "max_len"}.

    /work/pyenv/bin/python benches/peer/text_forward.py --threads 2 --classes 4 --iters 3
"""

import argparse
import json
import statistics
import time

import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--classes", type=int, default=4)
    ap.add_argument("--iters", type=int, default=3)
    args = ap.parse_args()

    import open_clip
    from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES, OPENAI_IMAGENET_TEMPLATES

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = open_clip.create_model("ViT-B-32-quickgelu", pretrained=None).eval()
    tok = open_clip.get_tokenizer("ViT-B-32")
    prompts = [t(c) for c in IMAGENET_CLASSNAMES[: args.classes] for t in OPENAI_IMAGENET_TEMPLATES]
    tokens = tok(prompts)
    pool = tokens.argmax(dim=-1)
    L = int(pool.max()) + 1

    def truncated(text):
        x = model.token_embedding(text[:, :L]) + model.positional_embedding[:L]
        x = model.transformer(x, attn_mask=model.attn_mask[:L, :L])
        x = model.ln_final(x)
        x = x[torch.arange(x.shape[0]), pool]
        return x @ model.text_projection

    def timed(f):
        with torch.inference_mode():
            f(tokens)
            ts = []
            for _ in range(args.iters):
                t0 = time.perf_counter()
                f(tokens)
                ts.append(time.perf_counter() - t0)
        return len(prompts) / statistics.median(ts)

    with torch.inference_mode():
        a, b = model.encode_text(tokens), truncated(tokens)
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-4), (a - b).abs().max()
    out = {
        "threads": torch.get_num_threads(),
        "prompts": len(prompts),
        "max_len": L,
        "open_clip": timed(model.encode_text),
        "truncated": timed(truncated),
        "torch": torch.__version__,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
