#!/usr/bin/env python3
# requires: scripts/requirements-torch.txt   (python 3.11, CPU only)
"""Builds the PyTorch-checkpoint fixtures of crates/dawin-core/tests/fixtures/torch/ (issue #15).

Every checkpoint form that researchers hold is written here by PyTorch itself, from small random
open_clip CLIP towers, together with the state dict PyTorch sees in it (contiguous copies, in a
safetensors file) so that the Rust reader is compared with PyTorch bit for bit. Nothing is ever
loaded back through the Rust code here: the expected values come from torch.

Run:  /work/pyenv/bin/python scripts/make_torch_fixtures.py      (deterministic: fixed seeds)
      /work/pyenv/bin/python scripts/make_torch_fixtures.py --extras   (only the files of
      extras() below, leaving every other fixture as it is)
      /work/pyenv/bin/python scripts/make_torch_fixtures.py --hf       (only the hf_gelu files)

The tiny tower (TINY): open_clip CLIP, embed 32; vision image 32, patch 8, width 64, 2 layers,
head_width 32 (2 heads: the width is not 64), mlp_ratio 2, QuickGELU; text context 8, vocab 64,
width 32, 2 heads, 1 layer. Every parameter is random (biases, layer norms, logit_scale too).
A 5-class head W [5, 32], b [5].

Files (all in crates/dawin-core/tests/fixtures/torch/):

  manifest.json              for each readable fixture: its expected file and the ordered list
                             [name in the checkpoint, name in the expected file]: exactly the
                             names (and order) of PyTorch's state_dict()/dict for that file.
  tiny_f32.safetensors       expected tensors of the f32 tower: open_clip names (visual.*,
                             token_embedding.weight, transformer.*, ln_final.*, text_projection,
                             logit_scale, positional_embedding) + classification_head.{weight,bias}
  sd_zip.pt                  (a) DaWin / model-soups: torch.save({'model.<k>': …,
                             'classification_head.weight/bias'}) in the zip format
  sd_legacy.pt               (a) the same dict, _use_new_zipfile_serialization=False
  zeroshot.pt                (b) task_vectors: torch.save(ImageEncoder) -- a whole module of class
                             src.modeling.ImageEncoder holding the CLIP in `.model`, with the text
                             transformer deleted as task_vectors does (keep_lang=False), torchvision
                             transforms and a cache_dir string as plain attributes
  head_Tiny.pt               (b) torch.save(src.modeling.ClassificationHead(normalize=True, W, b))
  wiseft.pkl                 (c) WiSE-FT: pickle.dump(src.models.modeling.ImageClassifier) with
                             protocol 4: storages pickled via torch.storage._load_from_bytes
  jit.pt                     (d) torch.jit.script of the CLIP (TorchScript archive); expected
                             jit.safetensors = torch.jit.load(jit.pt).state_dict() (which, unlike
                             the eager state_dict, has the text tower's attn_mask buffer)
  sd_f16.pt, sd_bf16.pt      (e) the dict of (a) cast to f16 / bf16 (zip); expected tiny_f16/
  sd_bf16_legacy.pt              tiny_bf16.safetensors (sd_bf16_legacy: legacy format)
  tiny_f16.safetensors, tiny_bf16.safetensors
  strided.pt, strided_legacy.pt, strided.pkl, strided_deflated.pt, strided_archive_root.pt
                             (f) a dict of awkward tensors: w and w.t() sharing one storage,
                             q/k/v row slices of one packed storage, a column, a step-2 slice, an
                             expanded (stride 0) tensor, a 0-d scalar, an empty tensor, f64, i64,
                             i32, u8, bool and f16 tensors; strided_deflated.pt is strided.pt
                             rewritten with deflate-compressed entries; strided_archive_root.pt
                             saved through a BytesIO (zip root folder 'archive', not the file
                             stem); strided.pkl a plain
                             pickle.dump of the dict (protocol 4), strided_p0.pkl / strided_p2.pkl
                             the same with protocols 0 (text opcodes) and 2. Expected: strided.safetensors.
  Refused / broken inputs (no expected file; the Rust tests check the error):
  evil_system.pkl            REDUCE of os.system('touch <PWNED>') -- bytes written by hand
  evil_exec.pkl              REDUCE of builtins.exec("open('<PWNED>','w')")
  evil_reduce_class.pkl      pickle of an object whose __reduce__ returns (os.system, ('touch …',))
  evil_popen.pkl             REDUCE of subprocess.Popen(['touch', '<PWNED>'])
  evil_zip.pt                a torch zip whose data.pkl is a dict holding the os.system payload
                             next to a good tensor
  evil_legacy.pt             a legacy torch.save whose object pickle is the os.system payload
                             (<PWNED> = /tmp/dawin_torch_pwned_<name>; the tests check it never appears)
  no_data_pkl.pt             a zip with archive/version and data/0 but no data.pkl
  missing_key.pt             strided.pt without one of its archive/data/<key> entries
  complex.pt                 a complex64 tensor (unsupported dtype)
  quantized.pt               a quantized qint8 tensor (unsupported: _rebuild_qtensor)
  float8.pt                  a float8_e4m3fn tensor (an UntypedStorage + torch dtype through
                             _rebuild_tensor_v3; unsupported dtype)
  proto_bad_opcode.pkl       a pickle using an opcode the reader does not handle (EXT1)
  jit_no_tensors.pt          torch.jit.script of a module with no tensors

  For the later integration task (architecture resolution, `dawin logits` parity):
  arch_<v>.pt                torch.save of a state dict with open_clip names visual.* and
                             classification_head.{weight,bias}, for towers
                               v = quickgelu : QuickGELU, head width 32 (2 heads of 32, width 64)
                               v = gelu      : exact GELU (nn.GELU), head width 32
                               v = ls        : exact GELU + LayerScale (ls_init_value 0.1; the
                                               ls_1.gamma / ls_2.gamma are then randomised)
                               v = hw48      : QuickGELU, width 96, head width 48 (2 heads), 1 layer
  arch_<v>_open_clip_config.json   open_clip's config for the tower (model_cfg as open_clip's
                             Hugging Face repos ship it; quick_gelu absent means exact GELU)
  arch_<v>_io.safetensors    inputs f32 [3,3,32,32] (normalised pixels), features f32 [3,32]
                             (encode_image, L2-normalised), logits f32 [3,5] = W f/|f| + b,
                             computed by open_clip in float64 and rounded to f32 at the end.

  extras() (the logits parity of every form; `--extras` writes only these):
  tiny_io.safetensors        images f32 [3,3,32,32] (normalised pixels, seed 12) and the logits
                             of the TINY tower (make_clip(0), head W, b of make_head(1), the
                             weights of sd_zip.pt, sd_legacy.pt, wiseft.pkl, zeroshot.pt +
                             head_Tiny.pt, jit.pt + head_Tiny.pt) computed by open_clip in
                             float64: logits_f32 = W f/|f| + b; logits_f16 / logits_bf16 the same
                             with every weight (head included) first rounded to f16 / bf16 (the
                             weights of sd_f16.pt, sd_bf16.pt, sd_bf16_legacy.pt);
                             logits_raw = W f + b (no normalisation: head_Tiny_raw.pt)
  head_Tiny_raw.pt           torch.save(src.modeling.ClassificationHead(normalize=False, W, b))
  jit_no_vision.pt           torch.jit.script of a module with a token embedding and a linear
                             layer: tensors, but no vision tower

  hf() (`--hf`; transformers 5.23.0):
  hf_gelu/                   CLIPVisionModelWithProjection.save_pretrained (model.safetensors +
                             config.json): image 32, patch 8, hidden 96, 2 heads of 48, MLP 160,
                             2 layers, projection 32, hidden_act "gelu" (exact); random weights
  hf_gelu_head.safetensors   a head `weight` [4, 32], `bias` [4]
  hf_gelu_io.safetensors     inputs f32 [3,3,32,32]; logits f32 [3,4] = W f/|f| + b with f the
                             image_embeds transformers computes in float64
"""

import collections
import io
import json
import os
import pickle
import struct
import sys
import types
import zipfile

import torch
import open_clip
from open_clip.model import CLIP
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crates", "dawin-core", "tests",
                   "fixtures", "torch")
PWNED = "/tmp/dawin_torch_pwned_"

VISION = dict(image_size=32, patch_size=8, width=64, layers=2, head_width=32, mlp_ratio=2.0)
TEXT = dict(context_length=8, vocab_size=64, width=32, heads=2, layers=1)
EMBED = 32
CLASSES = 5


def path(name):
    return os.path.join(OUT, name)


def make_clip(seed, vision=VISION, quick_gelu=True):
    torch.manual_seed(seed)
    model = CLIP(EMBED, dict(vision), dict(TEXT), quick_gelu=quick_gelu)
    with torch.no_grad():
        for _, p in model.named_parameters():
            p.copy_(torch.randn_like(p) * 0.1)
        # Layer-norm weights near 1, logit scale positive: random but sane.
        for n, p in model.named_parameters():
            if n.endswith(".weight") and p.dim() == 1:
                p.add_(1.0)
    return model.eval()


def make_head(seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(CLASSES, EMBED, generator=g), torch.randn(CLASSES, generator=g) * 0.1


# ---- look-alike classes of the authors' source trees, under the module names their pickles use ----

def _fake_module(name):
    mod = types.ModuleType(name)
    sys.modules[name] = mod
    parent, _, child = name.rpartition(".")
    if parent:
        if parent not in sys.modules:
            _fake_module(parent)
        setattr(sys.modules[parent], child, mod)
    return mod


tv_modeling = _fake_module("src.modeling")          # task_vectors: src/modeling.py
wf_modeling = _fake_module("src.models.modeling")   # WiSE-FT: src/models/modeling.py


class ImageEncoder(torch.nn.Module):
    """task_vectors' / WiSE-FT's ImageEncoder: the open_clip model, its transforms, a cache dir."""

    def __init__(self, model, keep_lang=False):
        super().__init__()
        self.model = model
        self.train_preprocess = open_clip.image_transform(32, is_train=False)
        self.val_preprocess = open_clip.image_transform(32, is_train=False)
        self.cache_dir = "/checkpoints/cache"
        if not keep_lang and hasattr(self.model, "transformer"):
            delattr(self.model, "transformer")


class ClassificationHead(torch.nn.Linear):
    def __init__(self, normalize, weights, biases=None):
        output_size, input_size = weights.shape
        super().__init__(input_size, output_size)
        self.normalize = normalize
        self.weight = torch.nn.Parameter(weights.clone())
        self.bias = torch.nn.Parameter(biases.clone())


class ImageClassifier(torch.nn.Module):
    def __init__(self, image_encoder, classification_head, process_images=True):
        super().__init__()
        self.image_encoder = image_encoder
        self.classification_head = classification_head
        self.process_images = process_images
        self.train_preprocess = image_encoder.train_preprocess
        self.val_preprocess = image_encoder.val_preprocess


for cls, mod in [(ImageEncoder, tv_modeling), (ClassificationHead, tv_modeling)]:
    cls.__module__ = mod.__name__
    setattr(mod, cls.__name__, cls)
# WiSE-FT's classes live in another module: subclasses there with the same names.
WfImageEncoder = type("ImageEncoder", (ImageEncoder,), {"__module__": wf_modeling.__name__})
WfHead = type("ClassificationHead", (ClassificationHead,), {"__module__": wf_modeling.__name__})
WfImageClassifier = type("ImageClassifier", (ImageClassifier,), {"__module__": wf_modeling.__name__})
for cls in (WfImageEncoder, WfHead, WfImageClassifier):
    setattr(wf_modeling, cls.__name__, cls)


# ---- writers ----

MANIFEST = {}


def contiguous(sd):
    return collections.OrderedDict((k, v.detach().contiguous().clone()) for k, v in sd.items())


def expect(fixture, expected_file, pairs):
    """Records that `fixture` holds exactly these names, in this order, equal to these tensors."""
    MANIFEST[fixture] = {"expected": expected_file, "tensors": [list(p) for p in pairs]}


def torch_load_check(name, want, weights_only=False):
    """PyTorch itself reads the fixture back to exactly `want` (names, order, dtype, values)."""
    got = torch.load(path(name), map_location="cpu", weights_only=weights_only)
    if isinstance(got, torch.nn.Module):
        got = got.state_dict()
    assert list(got.keys()) == list(want.keys()), (name, list(got.keys())[:5], list(want.keys())[:5])
    for k in want:
        assert got[k].dtype == want[k].dtype and torch.equal(got[k], want[k]), (name, k)


def main():
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        os.remove(path(f))

    # ---------------- the tiny f32 tower and its head ----------------
    clip = make_clip(0)
    W, b = make_head(1)
    ref = collections.OrderedDict()
    for k, v in clip.state_dict().items():
        ref[k] = v
    ref["classification_head.weight"] = W
    ref["classification_head.bias"] = b
    save_file(contiguous(ref), path("tiny_f32.safetensors"))

    # (a) DaWin / model soups: a state dict with the 'model.' prefix and the head.
    sd = collections.OrderedDict(("model." + k, v) for k, v in clip.state_dict().items())
    sd["classification_head.weight"] = W
    sd["classification_head.bias"] = b

    def sd_pairs(prefix_map=lambda k: k[len("model."):] if k.startswith("model.") else k):
        return [(k, prefix_map(k)) for k in sd]

    torch.save(sd, path("sd_zip.pt"))
    torch_load_check("sd_zip.pt", sd, weights_only=True)
    expect("sd_zip.pt", "tiny_f32.safetensors", sd_pairs())
    torch.save(sd, path("sd_legacy.pt"), _use_new_zipfile_serialization=False)
    torch_load_check("sd_legacy.pt", sd, weights_only=True)
    expect("sd_legacy.pt", "tiny_f32.safetensors", sd_pairs())
    # (e) f16 / bf16 variants of the same dict.
    for dt, tag in [(torch.float16, "f16"), (torch.bfloat16, "bf16")]:
        sdh = collections.OrderedDict((k, v.to(dt)) for k, v in sd.items())
        refh = collections.OrderedDict((k, v.to(dt)) for k, v in ref.items())
        save_file(contiguous(refh), path(f"tiny_{tag}.safetensors"))
        torch.save(sdh, path(f"sd_{tag}.pt"))
        torch_load_check(f"sd_{tag}.pt", sdh, weights_only=True)
        expect(f"sd_{tag}.pt", f"tiny_{tag}.safetensors", sd_pairs())
        if tag == "bf16":
            torch.save(sdh, path("sd_bf16_legacy.pt"), _use_new_zipfile_serialization=False)
            expect("sd_bf16_legacy.pt", "tiny_bf16.safetensors", sd_pairs())

    # (b) task_vectors: whole pickled modules.
    enc = ImageEncoder(make_clip(0))
    torch.save(enc, path("zeroshot.pt"))
    enc_sd = enc.state_dict()
    assert not any(k.startswith("model.transformer.") for k in enc_sd)
    torch_load_check("zeroshot.pt", enc_sd)
    expect("zeroshot.pt", "tiny_f32.safetensors", [(k, k[len("model."):]) for k in enc_sd])
    head = ClassificationHead(True, W, b)
    torch.save(head, path("head_Tiny.pt"))
    torch_load_check("head_Tiny.pt", head.state_dict())
    expect("head_Tiny.pt", "tiny_f32.safetensors",
           [(k, "classification_head." + k) for k in head.state_dict()])

    # (c) WiSE-FT: pickle.dump of a whole ImageClassifier (protocol 4, Python 3.11's default).
    clf = WfImageClassifier(WfImageEncoder(make_clip(0)), WfHead(True, W, b))
    with open(path("wiseft.pkl"), "wb") as f:
        pickle.dump(clf, f)
    clf_sd = clf.state_dict()
    with open(path("wiseft.pkl"), "rb") as f:
        back = pickle.load(f).state_dict()
    assert list(back) == list(clf_sd) and all(torch.equal(back[k], clf_sd[k]) for k in back)
    pairs = []
    for k in clf_sd:
        if k.startswith("image_encoder.model."):
            pairs.append((k, k[len("image_encoder.model."):]))
        else:
            pairs.append((k, k))
    expect("wiseft.pkl", "tiny_f32.safetensors", pairs)

    # (d) TorchScript.
    jit_src = make_clip(0)
    scripted = torch.jit.script(jit_src)
    scripted.save(path("jit.pt"))
    jsd = torch.jit.load(path("jit.pt")).state_dict()
    for k in jsd:
        assert k == "attn_mask" or torch.equal(jsd[k], ref[k]), k
    # TorchScript keeps the text tower's non-persistent attn_mask buffer in its state_dict().
    save_file(contiguous(jsd), path("jit.safetensors"))
    expect("jit.pt", "jit.safetensors", [(k, k) for k in jsd])

    # (f) strides, shared storages, dtypes.
    g = torch.Generator().manual_seed(7)
    w = torch.randn(6, 4, generator=g)
    qkv = torch.randn(12, 5, generator=g)
    m = torch.randn(4, 6, generator=g)
    x = torch.randn(10, generator=g).double()
    st = collections.OrderedDict()
    st["w"] = w
    st["w_t"] = w.t()
    st["q"], st["k"], st["v"] = qkv[0:4], qkv[4:8], qkv[8:12]
    st["col"] = m[:, 1]
    st["block"] = m[1:3, 2:5]
    st["step"] = x[::2]
    st["expand"] = torch.arange(3, dtype=torch.float32).expand(4, 3)
    st["scalar"] = torch.tensor(3.5)
    st["empty"] = torch.zeros(0, 3)
    st["f64"] = x
    st["i64"] = torch.arange(-3, 9, dtype=torch.int64).reshape(3, 4).t()
    st["i32"] = torch.tensor([[-(2 ** 31), 7], [2 ** 31 - 1, 0]], dtype=torch.int32)
    st["u8"] = torch.tensor([0, 1, 255, 128], dtype=torch.uint8)
    st["bool"] = torch.tensor([True, False, True])
    st["f16_t"] = torch.randn(3, 5, generator=g).half().t()
    st["nested.deeper.x"] = torch.ones(2)  # a dotted key is kept as it is
    assert st["w_t"].untyped_storage().data_ptr() == st["w"].untyped_storage().data_ptr()
    save_file(contiguous(st), path("strided.safetensors"))
    pairs = [(k, k) for k in st]
    torch.save(st, path("strided.pt"))
    torch_load_check("strided.pt", st, weights_only=True)
    expect("strided.pt", "strided.safetensors", pairs)
    torch.save(st, path("strided_legacy.pt"), _use_new_zipfile_serialization=False)
    torch_load_check("strided_legacy.pt", st, weights_only=True)
    expect("strided_legacy.pt", "strided.safetensors", pairs)
    with open(path("strided.pkl"), "wb") as f:
        pickle.dump(st, f)
    expect("strided.pkl", "strided.safetensors", pairs)
    for proto in (0, 2):
        # Protocol 0: text opcodes, bytes as _codecs.encode(<raw-unicode-escape text>, 'latin1').
        with open(path(f"strided_p{proto}.pkl"), "wb") as f:
            pickle.dump(st, f, protocol=proto)
        with open(path(f"strided_p{proto}.pkl"), "rb") as f:
            back = pickle.load(f)
        assert list(back) == list(st) and all(torch.equal(back[k], st[k]) for k in st)
        expect(f"strided_p{proto}.pkl", "strided.safetensors", pairs)
    buf = io.BytesIO()
    torch.save(st, buf)
    with open(path("strided_archive_root.pt"), "wb") as f:
        f.write(buf.getvalue())
    with zipfile.ZipFile(path("strided_archive_root.pt")) as z:
        assert z.namelist()[0].startswith("archive/"), z.namelist()[:3]
    expect("strided_archive_root.pt", "strided.safetensors", pairs)
    with zipfile.ZipFile(path("strided.pt")) as zin, \
            zipfile.ZipFile(path("strided_deflated.pt"), "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info.filename))
    torch_load_check("strided_deflated.pt", st, weights_only=True)
    expect("strided_deflated.pt", "strided.safetensors", pairs)

    # ---------------- hostile pickles: written as bytes, never run ----------------
    def reduce_pickle(module, name, args_pickle):
        # PROTO 2, GLOBAL module name, <args tuple>, REDUCE, STOP
        return b"\x80\x02c" + module.encode() + b"\n" + name.encode() + b"\n" + args_pickle + b"R."

    def str_tuple(*items):
        out = b"("
        for s in items:
            e = s.encode()
            out += b"X" + struct.pack("<I", len(e)) + e
        return out + b"t"

    with open(path("evil_system.pkl"), "wb") as f:
        f.write(reduce_pickle("os", "system", str_tuple(f"touch {PWNED}system")))
    with open(path("evil_exec.pkl"), "wb") as f:
        f.write(reduce_pickle("builtins", "exec", str_tuple(f"open('{PWNED}exec', 'w').close()")))
    with open(path("evil_popen.pkl"), "wb") as f:
        # subprocess.Popen(['touch', PWNED]) : the argument is a list
        lst = b"]" + b"(" + b"".join(b"X" + struct.pack("<I", len(s)) + s
                                     for s in [b"touch", (PWNED + "popen").encode()]) + b"e"
        f.write(reduce_pickle("subprocess", "Popen", b"(" + lst + b"t"))

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {PWNED}reduce_class",))

    with open(path("evil_reduce_class.pkl"), "wb") as f:
        f.write(pickle.dumps(Evil(), protocol=2))   # pickling runs __reduce__, not os.system
    for n in ["system", "exec", "popen", "reduce_class"]:
        assert not os.path.exists(PWNED + n)

    # A torch zip whose data.pkl is {'w': <tensor>, 'x': os.system(...)}: the tensor is kept, the
    # call is an inert value.
    buf = io.BytesIO()
    torch.save({"w": torch.arange(4, dtype=torch.float32)}, buf)
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as zin:
        entries = [(i.filename, zin.read(i.filename)) for i in zin.infolist()]
    evil_entries = []
    for name, data in entries:
        if name.endswith("/data.pkl"):
            # {'w': tensor} ends with SETITEM, STOP; add SETITEM 'x' = os.system(...) before STOP.
            assert data.endswith(b"s."), data[-4:]
            call = reduce_pickle("os", "system", str_tuple(f"touch {PWNED}zip"))[2:-1]
            data = data[:-1] + b"X\x01\x00\x00\x00x" + call + b"s."
        evil_entries.append((name, data))
    with zipfile.ZipFile(path("evil_zip.pt"), "w", zipfile.ZIP_STORED) as z:
        for name, data in evil_entries:
            z.writestr(name, data)

    # A legacy torch.save whose object pickle is the payload.
    buf = io.BytesIO()
    torch.save({"w": torch.ones(1)}, buf, _use_new_zipfile_serialization=False)
    raw = buf.getvalue()
    # Legacy layout: magic pickle, protocol pickle, sys_info pickle, object pickle, keys pickle, data.
    ups = []
    pos = 0
    for _ in range(3):
        u = pickle.Unpickler(io.BytesIO(raw[pos:]))
        u.load()
        # find where it stopped: re-scan with pickletools
        import pickletools
        for op, arg, p in pickletools.genops(raw[pos:]):
            if op.name == "STOP":
                ups.append(raw[pos:pos + p + 1])
                pos += p + 1
                break
    payload = reduce_pickle("os", "system", str_tuple(f"touch {PWNED}legacy"))
    with open(path("evil_legacy.pt"), "wb") as f:
        f.write(b"".join(ups) + payload + pickle.dumps([], protocol=2))

    # ---------------- broken inputs ----------------
    with zipfile.ZipFile(path("no_data_pkl.pt"), "w", zipfile.ZIP_STORED) as z:
        z.writestr("no_data_pkl/version", "3\n")
        z.writestr("no_data_pkl/data/0", b"\x00" * 16)
    with zipfile.ZipFile(path("strided.pt")) as zin, \
            zipfile.ZipFile(path("missing_key.pt"), "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            if info.filename.endswith("/data/3"):
                continue
            zout.writestr(info.filename, zin.read(info.filename))
    torch.save({"c": torch.tensor([1 + 2j, 3 - 1j], dtype=torch.complex64)}, path("complex.pt"))
    torch.save({"f8": torch.zeros(3, dtype=torch.float8_e4m3fn)}, path("float8.pt"))  # _rebuild_tensor_v3
    q = torch.quantize_per_tensor(torch.tensor([0.5, -1.0, 2.0]), 0.1, 0, torch.qint8)
    torch.save({"q": q}, path("quantized.pt"))
    with open(path("proto_bad_opcode.pkl"), "wb") as f:
        f.write(b"\x80\x02\x82\x01.")  # EXT1 1: the copyreg extension registry, not handled

    class NoTensors(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = 2.0

        def forward(self, x):
            return x * self.scale

    torch.jit.script(NoTensors()).save(path("jit_no_tensors.pt"))

    # ---------------- towers for the integration task ----------------
    towers = {
        "quickgelu": (dict(VISION), True),
        "gelu": (dict(VISION), False),
        "ls": (dict(VISION, ls_init_value=0.1), False),
        "hw48": (dict(VISION, width=96, head_width=48, layers=1), True),
    }
    g = torch.Generator().manual_seed(11)
    inputs = torch.randn(3, 3, 32, 32, generator=g)
    for i, (tag, (vcfg, quick)) in enumerate(towers.items()):
        model = make_clip(100 + i, vision=vcfg, quick_gelu=quick)
        Wt, bt = make_head(200 + i)
        vsd = collections.OrderedDict((k, v) for k, v in model.state_dict().items() if k.startswith("visual."))
        if tag == "ls":
            assert any(k.endswith("ls_1.gamma") for k in vsd), list(vsd)[:20]
        vsd["classification_head.weight"] = Wt
        vsd["classification_head.bias"] = bt
        torch.save(vsd, path(f"arch_{tag}.pt"))
        cfg = {"model_cfg": {"embed_dim": EMBED, "vision_cfg": vcfg, "text_cfg": TEXT}}
        if quick:
            cfg["model_cfg"]["quick_gelu"] = True
        with open(path(f"arch_{tag}_open_clip_config.json"), "w") as f:
            json.dump(cfg, f, indent=1)
        m64 = model.double()
        with torch.no_grad():
            feats = m64.encode_image(inputs.double(), normalize=True)
            logits = feats @ Wt.double().t() + bt.double()
        save_file({"inputs": inputs.contiguous(), "features": feats.float().contiguous(),
                   "logits": logits.float().contiguous()}, path(f"arch_{tag}_io.safetensors"))

    extras()
    with open(path("manifest.json"), "w") as f:
        json.dump(MANIFEST, f, indent=1)
    total = sum(os.path.getsize(path(f)) for f in os.listdir(OUT))
    print(f"wrote {len(os.listdir(OUT))} files, {total / 1e6:.2f} MB, into {os.path.normpath(OUT)}")


class TextOnly(torch.nn.Module):
    """A scripted module with tensors but no vision tower."""

    def __init__(self):
        super().__init__()
        self.token_embedding = torch.nn.Embedding(16, 8)
        self.proj = torch.nn.Linear(8, 4)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.proj(self.token_embedding(ids))


def extras():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(12)
    images = torch.randn(3, 3, 32, 32, generator=g)
    clip = make_clip(0)
    W, b = make_head(1)
    out = {"images": images.contiguous()}
    for tag, dt in [("f32", None), ("f16", torch.float16), ("bf16", torch.bfloat16)]:
        m = make_clip(0)
        Wt, bt = W, b
        if dt is not None:
            with torch.no_grad():
                for p in m.parameters():
                    p.copy_(p.to(dt).to(torch.float32))
            Wt, bt = W.to(dt).float(), b.to(dt).float()
        m64 = m.double()
        with torch.no_grad():
            feats = m64.encode_image(images.double(), normalize=True)
            out[f"logits_{tag}"] = (feats @ Wt.double().t() + bt.double()).float().contiguous()
            if tag == "f32":
                raw = m64.encode_image(images.double(), normalize=False)
                out["logits_raw"] = (raw @ W.double().t() + b.double()).float().contiguous()
    save_file(out, path("tiny_io.safetensors"))
    torch.save(ClassificationHead(False, W, b), path("head_Tiny_raw.pt"))
    assert torch.load(path("head_Tiny_raw.pt"), weights_only=False).normalize is False
    torch.manual_seed(3)
    torch.jit.script(TextOnly()).save(path("jit_no_vision.pt"))
    del clip


def hf():
    """A Hugging Face CLIPVisionModelWithProjection (exact GELU, 2 heads of 48) saved by
    save_pretrained, a head file, and transformers' logits."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(21)
    cfg = CLIPVisionConfig(hidden_size=96, intermediate_size=160, num_hidden_layers=2,
                           num_attention_heads=2, image_size=32, patch_size=8, projection_dim=32,
                           hidden_act="gelu", layer_norm_eps=1e-5)
    model = CLIPVisionModelWithProjection(cfg).eval()
    with torch.no_grad():  # every parameter random: matrices N(0, 1/fan_in), vectors N(0, 0.2²)
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                p.copy_(torch.randn_like(p) / (p[0].numel() ** 0.5))
            else:
                p.copy_(torch.randn_like(p) * 0.2 + (1.0 if "norm" in name and name.endswith("weight") else 0.0))
    d = path("hf_gelu")
    os.makedirs(d, exist_ok=True)
    model.save_pretrained(d, safe_serialization=True)
    g = torch.Generator().manual_seed(22)
    W, b = torch.randn(4, 32, generator=g), torch.randn(4, generator=g)
    save_file({"weight": W.contiguous(), "bias": b.contiguous()}, path("hf_gelu_head.safetensors"))
    images = torch.randn(3, 3, 32, 32, generator=g)
    m64 = model.double()
    with torch.no_grad():
        f = m64(pixel_values=images.double()).image_embeds
        f = f / f.norm(dim=-1, keepdim=True)
        logits = f @ W.double().t() + b.double()
    save_file({"inputs": images.contiguous(), "logits": logits.float().contiguous()},
              path("hf_gelu_io.safetensors"))
    print("wrote", sorted(os.listdir(d)), "and hf_gelu_head/io.safetensors")


if __name__ == "__main__":
    if sys.argv[1:] == ["--extras"]:
        extras()
    elif sys.argv[1:] == ["--hf"]:
        hf()
    else:
        main()
