#!/usr/bin/env python3
# requires: scripts/requirements-torch.txt   (uses open_clip_torch 3.3.0 and Python 3.11's `html` module only)
"""Writes the text data that dawin-vit embeds for zero-shot heads, from the authoritative sources.

    git clone https://github.com/mlfoundations/task_vectors /tmp/task_vectors   # templates (commit db66790)
    git clone https://github.com/openai/CLIP /tmp/CLIP                           # optional cross-check
    /work/pyenv/bin/python scripts/make_text_data.py --task-vectors /tmp/task_vectors [--clip /tmp/CLIP]

Writes, under crates/dawin-vit/data/ (each file: one entry per line, UTF-8, '\n', no header; the sources are
named in data/README.md and below):

* templates/openai-imagenet.txt  the 80 templates of OpenAI's ImageNet prompt-engineering notebook, in its order,
      grammar slips ("a origami {}.") included: open_clip's OPENAI_IMAGENET_TEMPLATES
      (open_clip/zero_shot_metadata.py), asserted equal to task_vectors' `imagenet_template` and, with --clip, to
      `imagenet_templates` of CLIP's notebooks/Prompt_Engineering_for_ImageNet.ipynb.
* templates/openai-imagenet-7.txt  open_clip's SIMPLE_IMAGENET_TEMPLATES (the notebook's 7-template subset).
* templates/simple.txt  `a photo of a {}.` (one template).
* templates/<dataset>.txt  task_vectors' src/datasets/templates.py, every `<name>_template` list except
      `imagenet_template` (= openai-imagenet): cars, cifar10, cifar100, dtd, eurosat, food101, gtsrb, mnist,
      resisc45, stl10, sun397, svhn. The lambdas' f-strings are read with `ast` (nothing is executed); `{c}`
      becomes `{}`.
* imagenet_classes.txt  open_clip's IMAGENET_CLASSNAMES (1000, the names of CLIP's ImageNet evaluation), asserted
      equal to the notebook's `imagenet_classes` with --clip.
* html_entities.tsv  `name<TAB>code points (hex, space-separated)<TAB>kind`, kind `html5` for every entry of
      Python 3.11's `html.entities.html5` (what `html.unescape` knows: 2231 names, 106 of them legacy names
      without ';'), and kind `ftfy-upper` for the all-caps names ftfy 6.3.1 adds to its own unescaper
      (ftfy.chardata.HTML_ENTITIES minus the html5 ones, e.g. `EACUTE;` -> 'É').
"""

import argparse
import ast
import html.entities
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "crates", "dawin-vit", "data")

TASK_VECTORS_COMMIT = "db6679066d1ca0808d86f8ddceee9ce4135502ab"


def write_lines(path, lines):
    for line in lines:
        assert "\n" not in line and "\r" not in line, (path, line)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write("".join(line + "\n" for line in lines))
    os.replace(tmp, path)


def fstring_template(node, where):
    """`lambda c: f'...{c}...'` -> '...{}...' (only literal parts and the bare name `c`)."""
    assert isinstance(node, ast.Lambda) and len(node.args.args) == 1, where
    arg = node.args.args[0].arg
    body = node.body
    assert isinstance(body, ast.JoinedStr), where
    out = []
    for part in body.values:
        if isinstance(part, ast.Constant) and isinstance(part.value, str):
            assert "{" not in part.value and "}" not in part.value, where
            out.append(part.value)
        elif isinstance(part, ast.FormattedValue):
            assert isinstance(part.value, ast.Name) and part.value.id == arg, where
            assert part.conversion == -1 and part.format_spec is None, where
            out.append("{}")
        else:
            raise AssertionError(f"{where}: unexpected f-string part {ast.dump(part)}")
    return "".join(out)


def task_vectors_templates(repo):
    path = os.path.join(repo, "src", "datasets", "templates.py")
    try:
        head = subprocess.run(["git", "-C", repo, "log", "-1", "--format=%H", "--", "src/datasets/templates.py"],
                              capture_output=True, text=True, check=True).stdout.strip()
        if head and head != TASK_VECTORS_COMMIT:
            print(f"note: templates.py last changed in {head}, the data was made from {TASK_VECTORS_COMMIT}")
    except (OSError, subprocess.CalledProcessError):
        pass
    tree = ast.parse(open(path, encoding="utf-8").read(), filename=path)
    sets = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            name = stmt.targets[0].id
            if name.endswith("_template") and isinstance(stmt.value, ast.List):
                sets[name[: -len("_template")]] = [
                    fstring_template(el, f"{path}:{el.lineno}") for el in stmt.value.elts
                ]
    return sets


def notebook_lists(clip_repo):
    nb_path = os.path.join(clip_repo, "notebooks", "Prompt_Engineering_for_ImageNet.ipynb")
    nb = json.load(open(nb_path, encoding="utf-8"))
    found = {}
    for cell in nb["cells"]:
        src = "".join(cell["source"])
        tree = ast.parse(src) if cell["cell_type"] == "code" and not src.lstrip().startswith(("!", "%")) else None
        for stmt in tree.body if tree else []:
            if isinstance(stmt, ast.Assign) and isinstance(stmt.targets[0], ast.Name):
                if stmt.targets[0].id in ("imagenet_classes", "imagenet_templates"):
                    found[stmt.targets[0].id] = ast.literal_eval(stmt.value)
    return found


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task-vectors", required=True, help="a checkout of github.com/mlfoundations/task_vectors")
    ap.add_argument("--clip", help="a checkout of github.com/openai/CLIP (cross-checks the ImageNet lists)")
    args = ap.parse_args()

    import ftfy.chardata
    import open_clip
    from open_clip import zero_shot_metadata as zsm

    assert open_clip.__version__ == "3.3.0", open_clip.__version__
    assert ftfy.__version__ == "6.3.1", ftfy.__version__
    assert sys.version_info[:2] == (3, 11), sys.version

    openai = [t("{}") for t in zsm.OPENAI_IMAGENET_TEMPLATES]
    seven = [t("{}") for t in zsm.SIMPLE_IMAGENET_TEMPLATES]
    classes = list(zsm.IMAGENET_CLASSNAMES)
    assert len(openai) == 80 and len(seven) == 7 and len(classes) == 1000
    assert "a origami {}." in openai

    tv = task_vectors_templates(args.task_vectors)
    assert tv.pop("imagenet") == openai, "task_vectors' imagenet_template differs from open_clip's list"
    if args.clip:
        nb = notebook_lists(args.clip)
        assert nb["imagenet_templates"] == openai, "the notebook's templates differ from open_clip's"
        assert nb["imagenet_classes"] == classes, "the notebook's class names differ from open_clip's"
        print("cross-checked against CLIP's notebook: 80 templates and 1000 class names equal")

    os.makedirs(os.path.join(OUT, "templates"), exist_ok=True)
    sets = {"openai-imagenet": openai, "openai-imagenet-7": seven, "simple": ["a photo of a {}."]}
    sets.update(tv)
    for name, templates in sets.items():
        for t in templates:
            assert t.count("{}") == 1, (name, t)
        write_lines(os.path.join(OUT, "templates", f"{name}.txt"), templates)
        print(f"templates/{name}.txt: {len(templates)}")
    for c in classes:
        assert c and c == c.strip(), c
    write_lines(os.path.join(OUT, "imagenet_classes.txt"), classes)
    print(f"imagenet_classes.txt: {len(classes)}")

    rows = []
    h5 = html.entities.html5
    for name, value in h5.items():
        rows.append(f"{name}\t{' '.join(f'{ord(ch):x}' for ch in value)}\thtml5")
    n_upper = 0
    for ent, value in ftfy.chardata.HTML_ENTITIES.items():
        assert ent.startswith("&") and ent.endswith(";"), ent
        name = ent[1:]
        if name in h5:
            assert h5[name] == value, ent
            continue
        rows.append(f"{name}\t{' '.join(f'{ord(ch):x}' for ch in value)}\tftfy-upper")
        n_upper += 1
    write_lines(os.path.join(OUT, "html_entities.tsv"), rows)
    print(f"html_entities.tsv: {len(h5)} html5 + {n_upper} ftfy-upper")


if __name__ == "__main__":
    main()
