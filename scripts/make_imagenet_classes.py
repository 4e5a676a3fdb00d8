#!/usr/bin/env python3
# requires: scripts/requirements-torch.txt (python 3.11; only torchvision is imported, for a cross-check)
"""Writes the class lists and the ObjectNet mapping of crates/dawin-vit/data/ from their sources.

Sources (public repositories; only their data lists are read, with `ast.literal_eval`, never run):
  hendrycks/imagenet-r           eval.py: `all_wnids` (ImageNet-1k's 1000 WordNet ids, in the
                                 standard sorted order) and `imagenet_r_wnids` (ImageNet-R's 200)
  hendrycks/natural-adv-examples eval.py: `thousand_k_to_200` (ImageNet index -> ImageNet-A
                                 label, -1 for the 800 classes ImageNet-A lacks)
  mlfoundations/wise-ft          src/datasets/imagenet_r.py and imagenet_a.py: `CLASS_SUBLIST`
                                 (cross-check of both 200-class subsets);
                                 src/datasets/objectnet_metadata/{folder_to_objectnet_label.json,
                                 objectnet_to_imagenet_1k.json, pytorch_to_imagenet_2012_id.json,
                                 imagenet_to_label_2012_v2} (ObjectNet's class mapping, as WiSE-FT's
                                 objectnet.py `get_metadata` combines them)

ObjectNet mapping, the rule WiSE-FT's get_metadata applies:
  * line i (0-based) of imagenet_to_label_2012_v2 is the synset name of ImageNet-2012 id i;
  * pytorch_to_imagenet_2012_id.json maps a PyTorch (sorted-wnid) index to its 2012 id; inverted,
    a synset name gives its PyTorch index (for a name on two lines, "crane", the later line wins;
    no ObjectNet class maps to it, which this script asserts);
  * objectnet_to_imagenet_1k.json maps an ObjectNet class name to "name1; name2; ..." ImageNet
    synset names -> the list of PyTorch indices (113 ObjectNet classes);
  * folder_to_objectnet_label.json maps a folder name to the ObjectNet class name (313 folders;
    the 200 that map to no ImageNet class are not evaluated);
  * the ObjectNet label of a sample is the index of its folder among the 113 sorted folder names.
Cross-check: torchvision's ImageNet category names (torchvision.models._meta._IMAGENET_CATEGORIES,
PyTorch index order) agree with the first synonym of each mapped synset name (torchvision renamed
a few duplicates; those are listed, not hidden).

Written (text, UTF-8, `#` comment header naming the source):
  crates/dawin-vit/data/imagenet_wnids.txt     1000 wnids, line order = label
  crates/dawin-vit/data/imagenet_r_wnids.txt   200 wnids, sorted (= ImageFolder label order)
  crates/dawin-vit/data/imagenet_a_wnids.txt   200 wnids, sorted (= ImageFolder label order)
  crates/dawin-vit/data/objectnet_to_imagenet.tsv
      113 rows `folder<TAB>imagenet indices (space separated)<TAB>ObjectNet class name`, sorted by
      folder (= ObjectNet label order)

Run:  python scripts/make_imagenet_classes.py --imagenet-r DIR --natural-adv-examples DIR --wise-ft DIR
      (each DIR a checkout of the repository named above; the commits used are in data/README.md)
"""

import argparse
import ast
import json
import os
import sys

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crates", "dawin-vit", "data")


def literal(path, name):
    """The value of the module-level assignment `name = <literal>` in a Python file."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            return ast.literal_eval(node.value)
    sys.exit(f"{path}: no assignment to `{name}`")


def write(name, header, lines):
    path = os.path.join(OUT, name)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        for h in header:
            f.write(f"# {h}\n" if h else "#\n")
        for line in lines:
            f.write(line + "\n")
    os.replace(tmp, path)
    print(f"wrote {path} ({len(lines)} rows)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--imagenet-r", required=True)
    ap.add_argument("--natural-adv-examples", required=True)
    ap.add_argument("--wise-ft", required=True)
    a = ap.parse_args()

    # ImageNet-1k: 1000 distinct wnids, sorted (torchvision ImageFolder's order).
    all_wnids = literal(os.path.join(a.imagenet_r, "eval.py"), "all_wnids")
    assert len(all_wnids) == 1000 and len(set(all_wnids)) == 1000
    assert all_wnids == sorted(all_wnids), "all_wnids is not in sorted order"
    index = {w: i for i, w in enumerate(all_wnids)}

    # ImageNet-R: the 200 wnids; their indices must be WiSE-FT's CLASS_SUBLIST.
    r_wnids = sorted(literal(os.path.join(a.imagenet_r, "eval.py"), "imagenet_r_wnids"))
    assert len(r_wnids) == 200 and all(w in index for w in r_wnids)
    r_sub = literal(os.path.join(a.wise_ft, "src/datasets/imagenet_r.py"), "CLASS_SUBLIST")
    assert [index[w] for w in r_wnids] == r_sub, "ImageNet-R: hendrycks and WiSE-FT disagree"

    # ImageNet-A: ImageNet indices with a label, in label order 0..199; must be WiSE-FT's list.
    k2 = literal(os.path.join(a.natural_adv_examples, "eval.py"), "thousand_k_to_200")
    a_idx = sorted(k for k, v in k2.items() if v != -1)
    assert len(k2) == 1000 and [k2[k] for k in a_idx] == list(range(200))
    a_sub = literal(os.path.join(a.wise_ft, "src/datasets/imagenet_a.py"), "CLASS_SUBLIST")
    assert a_idx == a_sub, "ImageNet-A: hendrycks and WiSE-FT disagree"
    a_wnids = [all_wnids[i] for i in a_idx]

    # ObjectNet, as WiSE-FT's get_metadata combines its four files.
    md = os.path.join(a.wise_ft, "src/datasets/objectnet_metadata")
    with open(os.path.join(md, "folder_to_objectnet_label.json"), encoding="utf-8") as f:
        folder_of = {v: k for k, v in json.load(f).items()}
    with open(os.path.join(md, "objectnet_to_imagenet_1k.json"), encoding="utf-8") as f:
        on_map = json.load(f)
    with open(os.path.join(md, "pytorch_to_imagenet_2012_id.json"), encoding="utf-8") as f:
        pt_of_2012 = {v: int(k) for k, v in json.load(f).items()}
    assert sorted(pt_of_2012) == list(range(1000)) and sorted(pt_of_2012.values()) == list(range(1000))
    with open(os.path.join(md, "imagenet_to_label_2012_v2"), encoding="utf-8") as f:
        names = [line.strip() for line in f]
    assert len(names) == 1000
    pt_of_name = {n: pt_of_2012[i] for i, n in enumerate(names)}
    rows = {}
    for on_name, in_names in on_map.items():
        in_names = in_names.split("; ")
        assert all(names.count(n) == 1 for n in in_names), f"{on_name}: ambiguous synset name"
        rows[folder_of[on_name]] = ([pt_of_name[n] for n in in_names], on_name)
    assert len(rows) == 113

    # Cross-check with torchvision's category names (PyTorch index order).
    from torchvision.models._meta import _IMAGENET_CATEGORIES as cats

    name_of_pt = {pt_of_2012[i]: n for i, n in enumerate(names)}
    renamed = []
    for folder, (ids, _) in rows.items():
        for i in ids:
            first = name_of_pt[i].split(", ")[0]
            if cats[i] != first:
                renamed.append((folder, i, first, cats[i]))
    for r in renamed:
        print("note: torchvision names %s's class %d %r (synset's first name %r)" % (r[0], r[1], r[3], r[2]))
    assert len(renamed) <= 3, "ObjectNet mapping disagrees with torchvision's class names"

    os.makedirs(OUT, exist_ok=True)
    src_r = "hendrycks/imagenet-r eval.py"
    write(
        "imagenet_wnids.txt",
        [
            "ImageNet-1k (ILSVRC-2012) class WordNet ids; line n (0-based, comments excluded) is label n.",
            "The standard sorted order = torchvision ImageFolder's order over the 1000 class folders.",
            f"Source: {src_r}, list `all_wnids` (asserted sorted and distinct).",
            "Written by scripts/make_imagenet_classes.py; do not edit by hand.",
        ],
        all_wnids,
    )
    write(
        "imagenet_r_wnids.txt",
        [
            "ImageNet-R's 200 classes (WordNet ids), sorted = ImageFolder label order over its folders.",
            f"Source: {src_r}, set `imagenet_r_wnids`. Their ImageNet indices equal",
            "mlfoundations/wise-ft src/datasets/imagenet_r.py CLASS_SUBLIST (asserted).",
            "Written by scripts/make_imagenet_classes.py; do not edit by hand.",
        ],
        r_wnids,
    )
    write(
        "imagenet_a_wnids.txt",
        [
            "ImageNet-A's 200 classes (WordNet ids), sorted = ImageFolder label order over its folders.",
            "Source: hendrycks/natural-adv-examples eval.py `thousand_k_to_200` (ImageNet index -> label;",
            f"the labelled indices, in label order 0..199) applied to `all_wnids` of {src_r}.",
            "The indices equal mlfoundations/wise-ft src/datasets/imagenet_a.py CLASS_SUBLIST (asserted).",
            "Written by scripts/make_imagenet_classes.py; do not edit by hand.",
        ],
        a_wnids,
    )
    write(
        "objectnet_to_imagenet.tsv",
        [
            "ObjectNet's 113 classes that overlap ImageNet-1k: folder <TAB> ImageNet indices (sorted-wnid",
            "order, space separated) <TAB> ObjectNet class name. Rows sorted by folder = ObjectNet label order.",
            "A sample's logit for ObjectNet class k is the maximum of the head's logits at these indices.",
            "Source: mlfoundations/wise-ft src/datasets/objectnet_metadata/ (folder_to_objectnet_label.json,",
            "objectnet_to_imagenet_1k.json, pytorch_to_imagenet_2012_id.json, imagenet_to_label_2012_v2),",
            "combined as its objectnet.py get_metadata does; those files come from the ObjectNet release.",
            "Written by scripts/make_imagenet_classes.py; do not edit by hand.",
        ],
        [f"{f}\t{' '.join(map(str, rows[f][0]))}\t{rows[f][1]}" for f in sorted(rows)],
    )
    print("ImageNet-R index sum", sum(r_sub), "ImageNet-A index sum", sum(a_sub))
    print("ObjectNet: %d classes, %d ImageNet classes" % (len(rows), sum(len(v[0]) for v in rows.values())))


if __name__ == "__main__":
    main()
