#!/usr/bin/env python3
# requires: scripts/requirements-torch.txt   (open_clip_torch 3.3.0, ftfy 6.3.1, transformers 5.23.0,
#           tokenizers 0.23.3, torch 2.15.0, safetensors 0.8.0, numpy 2.4.6; Python 3.11, CPU only)
"""Reference values of CLIP's tokenizer and text tower for dawin-vit's tests (issue 16), from open_clip.

    git clone https://github.com/openai/CLIP /tmp/CLIP        # data/prompts.md: the TA8 datasets' class names
    /work/pyenv/bin/python scripts/make_text_fixtures.py --clip /tmp/CLIP
    /work/pyenv/bin/python scripts/make_text_fixtures.py --time   # only: open_clip's tokenizer speed on ImageNet's
                                                                  # 80 000 prompts (1000 classes x 80 templates)
    /work/pyenv/bin/python scripts/make_text_fixtures.py --demo   # only: clip_demo/ (below)

Everything is deterministic (fixed seeds, CPU). Writes under crates/dawin-vit/tests/fixtures/text/:

* tokenizer_strings.json  the test strings (JSON, so that tabs and newlines are safe), in this order: the 1000
      ImageNet class names (open_clip's IMAGENET_CLASSNAMES), the class names of the TA8 datasets in CLIP's
      data/prompts.md (StanfordCars, DescribableTextures, EuroSAT, GTSRB, MNIST, RESISC45, SUN397; SVHN's are the
      digits), task_vectors' spellings of EuroSAT and RESISC45, every openai-imagenet template and every TA8
      template filled with a class name, and hand-written hard cases: apostrophes, hyphens, accents (composed and
      decomposed), curly quotes, ligatures, full-width and half-width forms, digits, HTML entities, runs of spaces,
      tabs and newlines, upper case, emoji, CJK and other scripts, control characters, mojibake, literal special
      tokens, and strings at and past the 77-token context.
* tokenizer_ids.json  for every string i: `open_clip[i]` the ids of open_clip.tokenize (the non-padding part:
      start ... end; the rest of the 77 are 0), asserted equal to open_clip.get_tokenizer('ViT-B-32');
      `truncated` (indices cut to 77); `fix_encoding_changes`: indices whose text ftfy changes in its
      `fix_encoding` step (mojibake), with `open_clip_no_fix_encoding[i]` = the ids when ftfy runs with
      fix_encoding=False (what dawin-vit implements); `hf[i]`: Hugging Face's CLIPTokenizer (transformers 5.23,
      tokenizers backend) ids, non-padding part, for the strings where they differ from open_clip's (its own
      cleaning: NFC, whitespace, lower case; no ftfy or HTML unescaping), and `hf_differs` their indices.
* tokenizer.json.gz  the tokenizer.json that transformers 5.23's CLIPTokenizer (built from open_clip's vocabulary
      and merges) saves, gzip-compressed (the tests decompress it into a temporary folder).
* not_clip_wordpiece.json, not_clip_gpt2.json  tiny tokenizer.json files of other kinds (a BERT WordPiece, a
      GPT-2 byte-level BPE without `</w>`), made with `tokenizers`, that a CLIP loader must refuse.
* clip_<variant>/  two small random open_clip CLIPs (`open_clip.model.CLIP`, vision: image 32, patch 8, width 32,
      1 layer, 2 heads; text: context 77, vocabulary 49408, width 64, 2 layers, MLP 256; embed dim 32):
        quickgelu  text heads 1 (head width 64), QuickGELU       (open_clip quick_gelu=True)
        gelu       text heads 4 (head width 16), exact GELU      (open_clip quick_gelu=False)
      Every parameter is random (norm weights and biases included) and f32; the token embedding's rows are random
      for row 0 (padding), the ids the prompts below use and 100 other ids, and zero elsewhere, so that the
      49408 x 64 table gzips to a few kB (see "Sizes"). Files:
        open_clip.safetensors.gz   open_clip's state dict (token_embedding.weight, positional_embedding,
                                   transformer.resblocks.N.*, ln_final.*, text_projection [64, 32], logit_scale,
                                   visual.*), gzip-compressed
        open_clip_config.json      {"model_cfg": {embed_dim, quick_gelu, vision_cfg, text_cfg}} as open_clip's
                                   Hugging Face repositories ship it
        hf/model.safetensors.gz    the same weights as transformers' CLIPModel.save_pretrained writes them
                                   (text_model.*, text_projection.weight [32, 64], vision_model.*,
                                   visual_projection.weight, logit_scale), gzip-compressed
        hf/config.json             its CLIPConfig (text_config.hidden_act, num_attention_heads, eos_token_id 49407)
        expected.safetensors       input_ids i64 [N, 77] (open_clip.tokenize of the prompts), pool_index i64 [N],
                                   text_features f32 [N, 32] (encode_text, unnormalised),
                                   text_features_normalized f32 [N, 32],
                                   classification_head.weight f32 [C, 32] = logit_scale.exp() x
                                   build_zero_shot_classifier(...) (each prompt embedding L2-normalised, averaged
                                   over templates, L2-normalised again), classification_head.bias f32 [C] (zeros);
                                   metadata: prompts, classnames, templates (JSON), logit_scale.
      The prompts are the C x T class/template pairs (class-major) then 3 extra prompts: one past 77 tokens
      (truncated), one with a literal `<end_of_text>` inside (pooled at that first end token), one of upper case
      and HTML entities. References are computed in float64 from the f32 weights, stored as f32. Checked here:
      transformers' CLIPModel.get_text_features on the HF files equals open_clip's encode_text (max rel. 1e-12
      in float64).

* clip_demo/  (also alone with --demo) an open_clip CLIP whose vision tower is dawin demo's θ0
      (crates/dawin-cli/demo/theta0.safetensors: image 16, patch 4, width 64, 2 layers, 4 heads, MLP 256, embed 32,
      QuickGELU) and whose text tower is random (width 64, 1 head, 2 layers, QuickGELU; randomised as above), so
      that it is θ0 of the demo with a text tower instead of a classification head. Files:
        open_clip.safetensors.gz   its state dict (visual.* and the text tower, no classification head), with the
                                   metadata dawin.vit.heads = "4", gzip-compressed
        classes.txt                the demo's class names, "0" ... "9" (its labels are digits)
        expected.safetensors       classification_head.weight f32 [10, 32] (open_clip's build_zero_shot_classifier
                                   with the `mnist` template set, x logit_scale.exp()), .bias (zeros), and on the
                                   demo's `id` set (data/id.safetensors, 200 images normalised in f32 as the demo
                                   does): logits f32 [200, 10], predictions i64 [200], labels i64 [200];
                                   metadata: accuracy, correct, seed, min_top2_gap, templates, classnames.
      The seed is the first whose predictions use >= 5 classes with every top-1/top-2 gap > 1e-3.

Sizes: a 49408 x 64 f32 token embedding is 12.6 MB (6.3 MB in f16, still 3.2 MB at width 32); stored dense with
zero rows and gzip-compressed, each checkpoint is ~100 kB, so two variants in two namings stay well under 2 MB
while the text tower keeps CLIP's real vocabulary size, context and a width-64 head.
"""

import argparse
import gzip
import io
import json
import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "crates", "dawin-vit", "tests", "fixtures", "text")
DATA = os.path.join(HERE, "..", "crates", "dawin-vit", "data")


def write_bytes(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def write_json(path, obj, indent=None):
    write_bytes(path, (json.dumps(obj, ensure_ascii=False, indent=indent) + "\n").encode("utf-8"))


def gz_bytes(data):
    # mtime=0 and no file name: the same input gives the same bytes.
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=9, mtime=0, filename="") as g:
        g.write(data)
    return buf.getvalue()


# --------------------------------------------------------------------------------------------
# Strings


def prompts_md_classes(clip_repo):
    """{dataset: [class names]} from CLIP's data/prompts.md (the `classes = [...]` of each section)."""
    import ast

    text = open(os.path.join(clip_repo, "data", "prompts.md"), encoding="utf-8").read()
    out = {}
    for m in re.finditer(r"^## (\S+)\s*\n+```bash\n(.*?)```", text, re.S | re.M):
        name, body = m.group(1), m.group(2)
        cm = re.search(r"classes = (\[.*?\n\])", body, re.S)
        if cm:
            out[name] = ast.literal_eval(cm.group(1))
    return out


HARD_CASES = [
    # apostrophes and contractions (the split pattern's 's 't 're 've 'm 'll 'd)
    "yellow lady's slipper", "Carolina's anole", "rock 'n' roll", "it's", "they're", "we've", "I'm", "you'll",
    "he'd", "IT'S", "DON'T", "dog's's", "'s", "''s", "o'clock", "'twas", "ma'am", "the 90's",
    # curly quotes and other apostrophes (ftfy's uncurl_quotes)
    "lady\u2019s slipper", "\u201cquoted\u201d name", "\u2018single\u2019", "don\u02bct", "\u201equote\u201f",
    "\u201bodd\u201a",
    # hyphens and dashes
    "frilled-necked lizard", "T-shirt", "ring-necked snake", "well-known-brand", "a\u2013b", "pre\u2014war",
    "-", "--", "a - b", "x-ray",
    # accents, composed and decomposed (NFC)
    "caf\u00e9", "cafe\u0301", "cr\u00e8me br\u00fbl\u00e9e", "Z\u00fcrich", "Zu\u0308rich", "jalape\u00f1o",
    "jalapen\u0303o", "na\u00efve", "S\u00e3o Paulo", "\u00c5ngstr\u00f6m", "A\u030angstro\u0308m", "Fran\u00e7ais",
    "\u0141\u00f3d\u017a", "Dvo\u0159\u00e1k", "\u00e6sir", "Stra\u00dfe",
    # ligatures (ftfy's fix_latin_ligatures)
    "\ufb01sh", "\ufb02ower", "e\ufb00ect", "o\ufb03ce", "ba\ufb04e", "\ufb06op", "\ufb05", "\u0132sselmeer",
    "\u01c6", "\u01c4", "\u01c5ak", "\u0149",
    # full-width and half-width forms (ftfy's fix_character_width)
    "\uff21\uff22\uff23 \uff44\uff45\uff46 \uff11\uff12\uff13", "\uff2c\uff2f\uff35\uff24\u3000\uff2e\uff2f\uff29\uff33\uff25\uff33",
    "\uff76\uff80\uff76\uff85", "\uff35\uff80\uff70\uff9d", "\uffe3macron", "\uff08\uff09\uff01",
    # digits and numbers (single-digit words)
    "747", "Boeing 747-400", "3.5-inch floppy disk", "1/2", "2nd", "100%", "\u0663\u0664", "\u00bd", "\u216b",
    "x\u00b2", "\u2460", "0", "12345678901234567890", "v1.2.3", "$5.00", "1,000,000",
    # HTML entities (ftfy's unescape_html, then html.unescape twice)
    "&amp;", "&#39;", "&quot;", "&lt;b&gt;", "&amp;amp;", "&amp;amp;amp;", "&amp;amp;amp;amp;", "a &lt; b &amp; c",
    "R&D", "AT&T", "&copy; 2024", "&eacute;", "P&EACUTE;REZ", "&SZLIG;", "&nbsp;x", "&ampx", "&notin;",
    "&notit;", "&#x2019;", "&#8217;s", "<b>bold</b> &amp; &quot;", "&amp;\n<i>&amp;\n&amp;", "&#0;", "&#128;",
    "& amp;", "&hellip;", "&#x1F600;", "&#55296;", "&#9999999999;", "&Tab;x&NewLine;y", "&lt", "&GT;", "&AMP;",
    "&Amp;", "&frac12;&frac34", "&#65&#66;",
    # whitespace runs (Python's str.split() whitespace)
    "  leading", "trailing  ", "a  b\t\tc\n\nd", "line\r\nbreak", "old\rmac", "\u00a0nbsp\u00a0",
    "em\u2003space", "form\x0cfeed", "file\x1csep", "thin\u2009space", "ideo\u3000space", "zero\u200bwidth",
    "nel\u0085line", "ls\u2028ps\u2029end", "\t", "   ", "",
    # upper and mixed case
    "GREAT WHITE SHARK", "iPhone", "McDonald's", "\u039f\u0394\u039f\u03a3", "\u039f\u0394\u039f\u03a3 \u039a\u0391\u0399",
    "\u0130stanbul", "\u1e9e", "STRASSE", "\u01c5", "\u2126", "\u212a", "\u00c9COLE",
    # emoji, CJK and other scripts
    "\U0001f436 dog", "\U0001f44d\U0001f3fd", "\U0001f1fa\U0001f1f8", "\U0001f468\u200d\U0001f469\u200d\U0001f467",
    "\u732b", "\u6771\u4eac\u30bf\u30ef\u30fc", "\ud55c\uad6d\uc5b4", "\u041f\u0440\u0438\u0432\u0435\u0442",
    "\u0645\u0631\u062d\u0628\u0627", "\u0939\u093f\u0928\u094d\u0926\u0940", "\u0e20\u0e32\u0e29\u0e32\u0e44\u0e17\u0e22",
    "\u05e9\u05dc\u05d5\u05dd", "\u10e5\u10d0\u10e0\u10d7\u10e3\u10da\u10d8", "\u2603 snowman", "\u00a9\u00ae\u2122",
    # control characters and terminal escapes (ftfy's remove_control_chars, remove_terminal_escapes, c1 controls)
    "\x00null", "bell\x07", "\x1b[31mred\x1b[0m", "\ufeffBOM", "\x80\x9f c1", "\x91quoted\x92", "\x7fdel",
    "\u206aold", "obj\ufffc", "\ufffdreplacement",
    # mojibake (ftfy's fix_encoding: not implemented in dawin-vit)
    "caf\u00c3\u00a9", "\u00e2\u20ac\u0153quoted\u00e2\u20ac\u009d", "Sch\u00c3\u00b6n", "voil\u00c3\u00a0 le travail",
    # literal special tokens and case folding
    "<start_of_text>", "a <end_of_text> b", "<|endoftext|>", "<START_OF_TEXT>", "<\u017ftart_of_text>", "'\u017f",
    "wei\u017f", "a\u0345b", "\u0345",
    # punctuation runs and symbols
    "...", "?!", "a.b.c", "(kite)", "[x]", "{}", "C++", "C#", "e-mail@example.com", "https://example.com/a?b=c",
    "#1", "@home", "50/50", "\u2026", "\u00bfqu\u00e9?", "\u00a1ol\u00e9!",
]


def long_strings(classnames):
    # Exactly at the context (75 BPE tokens + start + end = 77), one past it, and far past it.
    return [
        " ".join(["a"] * 75),
        " ".join(["a"] * 76),
        "a photo of a " + ", ".join(classnames[:40]) + ".",
        "supercalifragilisticexpialidocious " * 12,
    ]


def build_strings(clip_repo):
    from open_clip import zero_shot_metadata as zsm

    imagenet = list(zsm.IMAGENET_CLASSNAMES)
    openai = [t("{}") for t in zsm.OPENAI_IMAGENET_TEMPLATES]
    md = prompts_md_classes(clip_repo)
    ta8_md = ["StanfordCars", "DescribableTextures", "EuroSAT", "GTSRB", "MNIST", "RESISC45", "SUN397"]
    strings = list(imagenet)
    for name in ta8_md:
        strings += md[name]
    # task_vectors' own spellings (EuroSAT folder names prettified and mapped; RESISC45 with '_' -> ' ')
    strings += ["annual crop", "herbaceous vegetation", "sea lake", "baseball diamond", "ground track field",
                "thermal power station", "mobile home park"]
    # templates filled with a class name
    strings += [t.replace("{}", imagenet[i * 12 % 1000]) for i, t in enumerate(openai)]
    for name, ta8 in [("cars", "StanfordCars"), ("dtd", "DescribableTextures"), ("eurosat", "EuroSAT"),
                      ("gtsrb", "GTSRB"), ("mnist", "MNIST"), ("resisc45", "RESISC45"), ("sun397", "SUN397"),
                      ("svhn", "MNIST")]:
        templates = open(os.path.join(DATA, "templates", f"{name}.txt"), encoding="utf-8").read().splitlines()
        for j, t in enumerate(templates):
            strings.append(t.replace("{}", md[ta8][(7 * j + 3) % len(md[ta8])]))
    strings += HARD_CASES
    strings += long_strings(imagenet)
    return strings


# --------------------------------------------------------------------------------------------
# Tokenizer ids


def hf_clip_tokenizer(oc_tok):
    """transformers' CLIPTokenizer from open_clip's vocabulary (HF's names for the special tokens)."""
    from transformers import CLIPTokenizer

    vocab = dict(oc_tok.encoder)
    vocab["<|startoftext|>"] = vocab.pop("<start_of_text>")
    vocab["<|endoftext|>"] = vocab.pop("<end_of_text>")
    merges = [(a, b) for (a, b), _ in sorted(oc_tok.bpe_ranks.items(), key=lambda kv: kv[1])]
    tok = CLIPTokenizer(vocab=vocab, merges=merges)
    assert tok.convert_tokens_to_ids("<|endoftext|>") == 49407
    return tok


def tokenizer_fixtures(strings):
    import ftfy
    import open_clip
    import open_clip.tokenizer as oct

    default = open_clip.tokenize(strings)
    by_name = open_clip.get_tokenizer("ViT-B-32")(strings)
    assert (default == by_name).all(), "open_clip.tokenize and get_tokenizer('ViT-B-32') disagree"

    def rows(t):
        out = []
        for r in t.tolist():
            n = len(r)
            while n > 0 and r[n - 1] == 0:
                n -= 1
            out.append(r[:n])
        return out

    ids = rows(default)
    truncated = [i for i, s in enumerate(strings) if len(oct._tokenizer.encode(s)) + 2 > 77]
    changed = [i for i, s in enumerate(strings) if ftfy.fix_text(s) != ftfy.fix_text(s, fix_encoding=False)]

    no_fix = {}
    real_fix_text = ftfy.fix_text
    try:
        ftfy.fix_text = lambda t: real_fix_text(t, fix_encoding=False)
        fresh = oct.SimpleTokenizer()
        for i in changed:
            no_fix[str(i)] = rows(fresh([strings[i]]))[0]
    finally:
        ftfy.fix_text = real_fix_text

    hf = hf_clip_tokenizer(oct._tokenizer)
    hf_ids = hf(strings, truncation=True, max_length=77)["input_ids"]
    hf_diff = {str(i): h for i, (h, o) in enumerate(zip(hf_ids, ids)) if h != o}
    return {
        "open_clip": ids,
        "truncated": truncated,
        "fix_encoding_changes": changed,
        "open_clip_no_fix_encoding": no_fix,
        "hf_differs": sorted(int(k) for k in hf_diff),
        "hf": hf_diff,
    }, hf


def not_clip_tokenizers():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    wp = Tokenizer(models.WordPiece({"[UNK]": 0, "[CLS]": 1, "[SEP]": 2, "a": 3, "photo": 4, "##s": 5},
                                    unk_token="[UNK]"))
    wp.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    gpt = Tokenizer(models.BPE({"a": 0, "b": 1, "\u0120": 2, "ab": 3, "\u0120a": 4, "<|endoftext|>": 5},
                               [("a", "b"), ("\u0120", "a")]))
    gpt.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    gpt.decoder = decoders.ByteLevel()
    return wp.to_str(), gpt.to_str()


# --------------------------------------------------------------------------------------------
# Tiny CLIPs

VISION = dict(image_size=32, patch_size=8, width=32, layers=1, head_width=16, mlp_ratio=4.0)
EMBED = 32
VARIANTS = {
    "quickgelu": dict(quick_gelu=True, heads=1, seed=1),
    "gelu": dict(quick_gelu=False, heads=4, seed=2),
}
CLASSNAMES = ["goldfish", "great white shark", "yellow lady's slipper", "3.5-inch floppy disk"]
TEMPLATES = ["a photo of a {}.", "a origami {}.", "itap of my {}."]


def extra_prompts():
    return [
        "a photo of " + " and ".join(["a great white shark"] * 20) + ".",
        "a photo of a goldfish <end_of_text> in a bowl.",
        "A PHOTO OF A &quot;GOLDFISH&quot; &amp; A SHARK",
    ]


def randomize(model, used_ids, seed):
    import torch

    g = torch.Generator().manual_seed(seed)

    def normal(shape, std):
        return torch.randn(shape, generator=g, dtype=torch.float32) * std

    with torch.no_grad():
        for name, p in model.named_parameters():
            if name == "token_embedding.weight":
                w = torch.zeros_like(p)
                extra = torch.randperm(p.shape[0], generator=g)[:100].tolist()
                rows = sorted(set(used_ids) | {0} | set(extra))
                w[rows] = normal((len(rows), p.shape[1]), 0.5)
                p.copy_(w)
            elif name == "logit_scale":
                p.fill_(float(torch.log(torch.tensor(1 / 0.07))) + 0.1)
            elif len(name.split(".")) >= 2 and name.split(".")[-2].startswith("ln"):
                p.copy_(1.0 + normal(p.shape, 0.2) if name.endswith("weight") else normal(p.shape, 0.2))
            elif name.endswith("bias"):
                p.copy_(normal(p.shape, 0.1))
            elif p.dim() >= 2:
                fan_in = p.shape[0] if name.endswith(("text_projection", "proj")) else p[0].numel()
                p.copy_(normal(p.shape, fan_in ** -0.5))
            else:  # class_embedding, positional embeddings (1-D ones), anything else
                p.copy_(normal(p.shape, 0.3))
        model.positional_embedding.copy_(normal(model.positional_embedding.shape, 0.3))
        # Every value on the grid k / 256 (exact in f32 and f16): the files gzip to about a third
        # while the weights stay as random as the test needs.
        for name, p in model.named_parameters():
            if name != "logit_scale":
                p.copy_(torch.round(p * 256) / 256)


def hf_state_dict(oc_sd, layers_text, layers_vision):
    """open_clip CLIP state dict -> transformers CLIPModel state dict (a renaming; q,k,v split)."""
    sd = {}

    def block(src, dst, n):
        for i in range(n):
            s, d = f"{src}.{i}", f"{dst}.{i}"
            w = oc_sd[f"{s}.attn.in_proj_weight"]
            b = oc_sd[f"{s}.attn.in_proj_bias"]
            for j, qkv in enumerate("qkv"):
                c = w.shape[0] // 3
                sd[f"{d}.self_attn.{qkv}_proj.weight"] = w[j * c:(j + 1) * c]
                sd[f"{d}.self_attn.{qkv}_proj.bias"] = b[j * c:(j + 1) * c]
            sd[f"{d}.self_attn.out_proj.weight"] = oc_sd[f"{s}.attn.out_proj.weight"]
            sd[f"{d}.self_attn.out_proj.bias"] = oc_sd[f"{s}.attn.out_proj.bias"]
            for a, bname in [("ln_1", "layer_norm1"), ("ln_2", "layer_norm2"), ("mlp.c_fc", "mlp.fc1"),
                             ("mlp.c_proj", "mlp.fc2")]:
                sd[f"{d}.{bname}.weight"] = oc_sd[f"{s}.{a}.weight"]
                sd[f"{d}.{bname}.bias"] = oc_sd[f"{s}.{a}.bias"]

    sd["text_model.embeddings.token_embedding.weight"] = oc_sd["token_embedding.weight"]
    sd["text_model.embeddings.position_embedding.weight"] = oc_sd["positional_embedding"]
    block("transformer.resblocks", "text_model.encoder.layers", layers_text)
    sd["text_model.final_layer_norm.weight"] = oc_sd["ln_final.weight"]
    sd["text_model.final_layer_norm.bias"] = oc_sd["ln_final.bias"]
    sd["text_projection.weight"] = oc_sd["text_projection"].T.contiguous()
    sd["logit_scale"] = oc_sd["logit_scale"]
    sd["vision_model.embeddings.class_embedding"] = oc_sd["visual.class_embedding"]
    sd["vision_model.embeddings.patch_embedding.weight"] = oc_sd["visual.conv1.weight"]
    sd["vision_model.embeddings.position_embedding.weight"] = oc_sd["visual.positional_embedding"]
    sd["vision_model.pre_layrnorm.weight"] = oc_sd["visual.ln_pre.weight"]
    sd["vision_model.pre_layrnorm.bias"] = oc_sd["visual.ln_pre.bias"]
    block("visual.transformer.resblocks", "vision_model.encoder.layers", layers_vision)
    sd["vision_model.post_layernorm.weight"] = oc_sd["visual.ln_post.weight"]
    sd["vision_model.post_layernorm.bias"] = oc_sd["visual.ln_post.bias"]
    sd["visual_projection.weight"] = oc_sd["visual.proj"].T.contiguous()
    return {k: v.contiguous() for k, v in sd.items()}


def make_clip(variant, cfg, out_dir):
    import numpy as np
    import open_clip
    import torch
    from open_clip.zero_shot_classifier import build_zero_shot_classifier
    from safetensors.torch import save, save_file
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(cfg["seed"])
    text_cfg = dict(context_length=77, vocab_size=49408, width=64, heads=cfg["heads"], layers=2, mlp_ratio=4.0)
    model = open_clip.model.CLIP(EMBED, VISION, text_cfg, quick_gelu=cfg["quick_gelu"])
    tokenizer = open_clip.get_tokenizer("ViT-B-32")
    prompts = [t.replace("{}", c) for c in CLASSNAMES for t in TEMPLATES] + extra_prompts()
    tokens = tokenizer(prompts)
    used = sorted(set(tokens.flatten().tolist()))
    randomize(model, used, cfg["seed"])
    model.eval()
    oc_sd = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    assert "attn_mask" not in oc_sd

    m64 = model.double()
    with torch.no_grad():
        feats = m64.encode_text(tokens)
        feats_n = m64.encode_text(tokens, normalize=True)
        zs = build_zero_shot_classifier(m64, tokenizer, CLASSNAMES, TEMPLATES, num_classes_per_batch=None)
        head = (m64.logit_scale.exp() * zs.T).float().contiguous()
        # the head by hand, from the stored features: same formula
        c, t = len(CLASSNAMES), len(TEMPLATES)
        e = feats_n[: c * t].reshape(c, t, -1).mean(1)
        e = e / e.norm(dim=1, keepdim=True)
        assert torch.allclose(e * m64.logit_scale.exp(), head.double(), rtol=1e-6, atol=1e-6)
    pool = tokens.argmax(dim=-1)

    # Hugging Face naming, checked against transformers' own forward.
    hf_cfg = CLIPConfig(
        text_config=dict(vocab_size=49408, hidden_size=64, intermediate_size=256, num_hidden_layers=2,
                         num_attention_heads=cfg["heads"], max_position_embeddings=77,
                         hidden_act="quick_gelu" if cfg["quick_gelu"] else "gelu", layer_norm_eps=1e-5,
                         bos_token_id=49406, eos_token_id=49407, pad_token_id=1, projection_dim=EMBED),
        vision_config=dict(hidden_size=32, intermediate_size=128, num_hidden_layers=1, num_attention_heads=2,
                           image_size=32, patch_size=8, hidden_act="quick_gelu" if cfg["quick_gelu"] else "gelu",
                           layer_norm_eps=1e-5, projection_dim=EMBED),
        projection_dim=EMBED,
    )
    hf = CLIPModel(hf_cfg)
    missing, unexpected = hf.load_state_dict(hf_state_dict(oc_sd, 2, 1), strict=False)
    assert not unexpected, unexpected
    assert all("position_ids" in k for k in missing), missing
    hf = hf.double().eval()
    with torch.no_grad():
        hf_feats = hf.get_text_features(input_ids=tokens).pooler_output
    rel = ((hf_feats - feats).abs().max() / feats.abs().max()).item()
    assert rel < 1e-12, f"{variant}: transformers and open_clip text features differ (max rel {rel})"
    hf_dir = os.path.join(out_dir, "hf")
    os.makedirs(hf_dir, exist_ok=True)
    hf.float().save_pretrained(hf_dir, safe_serialization=True)
    st = os.path.join(hf_dir, "model.safetensors")
    write_bytes(st + ".gz", gz_bytes(open(st, "rb").read()))
    os.remove(st)
    for extra in os.listdir(hf_dir):
        if extra not in ("model.safetensors.gz", "config.json"):
            os.remove(os.path.join(hf_dir, extra))

    write_bytes(os.path.join(out_dir, "open_clip.safetensors.gz"), gz_bytes(save(oc_sd)))
    model_cfg = {"embed_dim": EMBED, "quick_gelu": cfg["quick_gelu"], "vision_cfg": VISION, "text_cfg": text_cfg}
    write_json(os.path.join(out_dir, "open_clip_config.json"), {"model_cfg": model_cfg}, indent=2)

    expected = {
        "input_ids": tokens.to(torch.int64).contiguous(),
        "pool_index": pool.to(torch.int64).contiguous(),
        "text_features": feats.float().contiguous(),
        "text_features_normalized": feats_n.float().contiguous(),
        "classification_head.weight": head,
        "classification_head.bias": torch.zeros(len(CLASSNAMES), dtype=torch.float32),
    }
    meta = {
        "prompts": json.dumps(prompts, ensure_ascii=False),
        "classnames": json.dumps(CLASSNAMES, ensure_ascii=False),
        "templates": json.dumps(TEMPLATES, ensure_ascii=False),
        "logit_scale": repr(float(oc_sd["logit_scale"])),
        "variant": variant,
        "text_heads": str(cfg["heads"]),
        "activation": "quick_gelu" if cfg["quick_gelu"] else "gelu",
    }
    save_file(expected, os.path.join(out_dir, "expected.safetensors.tmp"), metadata=meta)
    os.replace(os.path.join(out_dir, "expected.safetensors.tmp"), os.path.join(out_dir, "expected.safetensors"))
    truncated = int((tokens[:, -1] == 49407).sum())
    print(f"clip_{variant}: {len(prompts)} prompts ({truncated} truncated), pool {pool.tolist()}, "
          f"HF vs open_clip rel {rel:.1e}")
    assert np.isfinite(feats.numpy()).all()


# --------------------------------------------------------------------------------------------
# A random CLIP with the demo's vision tower, its zero-shot head on the demo's classes, and its
# zero-shot accuracy on the demo's images.

DEMO = os.path.join(HERE, "..", "crates", "dawin-cli", "demo")
DEMO_VISION = dict(image_size=16, patch_size=4, width=64, layers=2, head_width=16, mlp_ratio=4.0)
DEMO_TEXT = dict(context_length=77, vocab_size=49408, width=64, heads=1, layers=2, mlp_ratio=4.0)
DEMO_EMBED = 32
DEMO_CLASSES = [str(d) for d in range(10)]  # the demo's labels are the digits 0-9
DEMO_TEMPLATES = "mnist"  # task_vectors' MNIST template set (built into dawin-vit)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def demo_images(name):
    """The demo's u8 [N, 16, 16, 3] images normalised in f32 as the demo does, [N, 3, 16, 16]."""
    import numpy as np
    import torch
    from safetensors.numpy import load_file

    d = load_file(os.path.join(DEMO, "data", f"{name}.safetensors"))
    u = d["images"].astype(np.float32)
    x = (u / np.float32(255.0) - np.asarray(CLIP_MEAN, np.float32)) / np.asarray(CLIP_STD, np.float32)
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))), torch.from_numpy(d["labels"])


def make_demo_clip(out_dir):
    """clip_demo/: an open_clip CLIP whose vision tower is the demo's θ0 (crates/dawin-cli/demo/theta0.safetensors
    visual.*: image 16, patch 4, width 64, 2 layers, 4 heads, MLP 256, embed 32, QuickGELU) and whose text tower is
    random (width 64, 1 head, 2 layers). Its zero-shot head (open_clip's build_zero_shot_classifier x
    logit_scale.exp()) for the demo's classes "0".."9" with the `mnist` templates, and its zero-shot predictions and
    accuracy on the demo's `id` set (200 images, normalised as the demo does), all in float64 from the f32
    weights. The trained vision tower spreads the predictions over the classes (a random one puts nearly every
    image in one class); the seed is the first from 1 whose predictions use at least 5 classes and whose smallest
    top-1/top-2 logit gap exceeds 1e-3 (f32 rounding moves these logits by ~1e-5)."""
    import numpy as np
    import open_clip
    import torch
    from open_clip.zero_shot_classifier import build_zero_shot_classifier
    from safetensors.torch import load_file, save, save_file

    templates = [line for line in open(os.path.join(DATA, "templates", f"{DEMO_TEMPLATES}.txt"), encoding="utf-8")
                 .read().splitlines()]
    tokenizer = open_clip.get_tokenizer("ViT-B-32")
    prompts = [t.replace("{}", c) for c in DEMO_CLASSES for t in templates]
    used = sorted(set(tokenizer(prompts).flatten().tolist()))
    images, labels = demo_images("id")
    theta0 = load_file(os.path.join(DEMO, "theta0.safetensors"))
    for seed in range(1, 100):
        torch.manual_seed(seed)
        model = open_clip.model.CLIP(DEMO_EMBED, DEMO_VISION, DEMO_TEXT, quick_gelu=True)
        randomize(model, used, seed)
        sd = model.state_dict()
        for k, v in theta0.items():
            if k.startswith("visual."):
                assert sd[k].shape == v.shape, k
                sd[k] = v
        model.load_state_dict(sd)
        model.eval()
        oc_sd = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
        m64 = model.double()
        with torch.no_grad():
            zs = build_zero_shot_classifier(m64, tokenizer, DEMO_CLASSES, templates, num_classes_per_batch=None)
            head = m64.logit_scale.exp() * zs.T  # [C, E]
            feats = m64.encode_image(images.double(), normalize=True)
            logits = feats @ head.T
        top2 = logits.topk(2, dim=1).values
        gap = float((top2[:, 0] - top2[:, 1]).min())
        pred = logits.argmax(dim=1)
        if gap > 1e-3 and len(set(pred.tolist())) >= 5:
            break
    else:
        raise SystemExit("no seed gave distinct enough predictions")
    acc = float((pred == labels).double().mean())
    # Our loader needs the vision head count (width 64 is not 64 x heads): dawin's metadata key.
    write_bytes(os.path.join(out_dir, "open_clip.safetensors.gz"),
                gz_bytes(save(oc_sd, metadata={"dawin.vit.heads": "4"})))
    write_bytes(os.path.join(out_dir, "classes.txt"), ("\n".join(DEMO_CLASSES) + "\n").encode())
    expected = {
        "classification_head.weight": head.float().contiguous(),
        "classification_head.bias": torch.zeros(len(DEMO_CLASSES), dtype=torch.float32),
        "logits": logits.float().contiguous(),
        "predictions": pred.to(torch.int64).contiguous(),
        "labels": labels.to(torch.int64).contiguous(),
    }
    meta = {
        "classnames": json.dumps(DEMO_CLASSES),
        "templates": json.dumps(templates, ensure_ascii=False),
        "template_set": DEMO_TEMPLATES,
        "dataset": "crates/dawin-cli/demo/data/id.safetensors",
        "accuracy": repr(acc),
        "correct": str(int((pred == labels).sum())),
        "seed": str(seed),
        "min_top2_gap": repr(gap),
        "logit_scale": repr(float(oc_sd["logit_scale"])),
    }
    tmp = os.path.join(out_dir, "expected.safetensors.tmp")
    save_file(expected, tmp, metadata=meta)
    os.replace(tmp, os.path.join(out_dir, "expected.safetensors"))
    print(f"clip_demo: seed {seed}, zero-shot accuracy {100 * acc:.1f}% on demo id ({int((pred == labels).sum())}/"
          f"{len(labels)}), {len(set(pred.tolist()))} classes predicted, min top-2 gap {gap:.2e}")


def time_tokenizer():
    import open_clip
    import open_clip.tokenizer as oct
    from open_clip import zero_shot_metadata as zsm

    prompts = [t(c) for c in zsm.IMAGENET_CLASSNAMES for t in zsm.OPENAI_IMAGENET_TEMPLATES]
    fresh = oct.SimpleTokenizer()
    t0 = time.perf_counter()
    fresh(prompts)
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    fresh(prompts)
    warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    open_clip.tokenize(prompts)
    print(f"open_clip {open_clip.__version__} SimpleTokenizer, {len(prompts)} prompts (ImageNet x 80 templates), "
          f"1 thread: cold cache {len(prompts) / cold:.0f} prompts/s ({cold:.2f} s), "
          f"warm cache {len(prompts) / warm:.0f} prompts/s ({warm:.2f} s)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip", help="a checkout of github.com/openai/CLIP (data/prompts.md)")
    ap.add_argument("--time", action="store_true", help="only time open_clip's tokenizer on ImageNet's prompts")
    ap.add_argument("--demo", action="store_true", help="only (re)write clip_demo/ (needs no CLIP checkout)")
    args = ap.parse_args()

    import open_clip
    import torch
    import transformers

    if args.time:
        time_tokenizer()
        return
    if args.demo:
        assert open_clip.__version__ == "3.3.0", open_clip.__version__
        torch.set_num_threads(1)
        d = os.path.join(OUT, "clip_demo")
        os.makedirs(d, exist_ok=True)
        make_demo_clip(d)
        return
    if not args.clip:
        ap.error("--clip is required to write the fixtures")
    assert open_clip.__version__ == "3.3.0" and transformers.__version__ == "5.23.0", (
        open_clip.__version__, transformers.__version__)
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)

    strings = build_strings(args.clip)
    ids, hf = tokenizer_fixtures(strings)
    write_json(os.path.join(OUT, "tokenizer_strings.json"), strings, indent=0)
    write_json(os.path.join(OUT, "tokenizer_ids.json"), ids)
    print(f"{len(strings)} strings; truncated {ids['truncated']}; fix_encoding changes {ids['fix_encoding_changes']}; "
          f"HF differs on {len(ids['hf_differs'])}")

    import tempfile

    with tempfile.TemporaryDirectory() as d:
        hf.save_pretrained(d)
        tj = open(os.path.join(d, "tokenizer.json"), "rb").read()
    write_bytes(os.path.join(OUT, "tokenizer.json.gz"), gz_bytes(tj))
    wp, gpt = not_clip_tokenizers()
    write_bytes(os.path.join(OUT, "not_clip_wordpiece.json"), wp.encode())
    write_bytes(os.path.join(OUT, "not_clip_gpt2.json"), gpt.encode())

    for variant, cfg in VARIANTS.items():
        d = os.path.join(OUT, f"clip_{variant}")
        os.makedirs(d, exist_ok=True)
        make_clip(variant, cfg, d)
    d = os.path.join(OUT, "clip_demo")
    os.makedirs(d, exist_ok=True)
    make_demo_clip(d)

    total = 0
    for root, _, files in os.walk(OUT):
        for f in files:
            total += os.path.getsize(os.path.join(root, f))
    print(f"fixtures: {total / 1e6:.2f} MB in {OUT}")


if __name__ == "__main__":
    main()
