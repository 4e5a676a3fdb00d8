"""Relative distance ‖θ_j − θ0‖ / ‖θ0‖ of the multi-task demo's fine-tuned encoders from their
base, in float64 over every tensor but the classification head: the reference numbers of the
tests `an_encoder_from_another_base_is_refused_and_distances_are_reported` (crates/dawin/tests/mtl.rs)
and `theta1_from_another_base_is_refused` (crates/dawin/tests/pipeline.rs), and of the two-model demo.

requires: numpy==2.4.6 safetensors==0.8.0
usage: python scripts/task_distance.py
"""
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file

DEMO = Path(__file__).resolve().parent.parent / "crates/dawin-cli/demo/mtl"


def distance(base, model):
    keys = [k for k in base if "classification_head" not in k]
    num = sum(float(((model[k].astype(np.float64) - base[k]) ** 2).sum()) for k in keys)
    den = sum(float((base[k].astype(np.float64) ** 2).sum()) for k in keys)
    return (num / den) ** 0.5


base = load_file(DEMO / "base.safetensors")
for task in ["digits", "rotation", "parity"]:
    print(task, repr(distance(base, load_file(DEMO / f"{task}.safetensors"))))

# The two-model demo: θ1 (fine-tuned) from θ0 (zero-shot).
TWO = DEMO.parent
print("theta1", repr(distance(load_file(TWO / "theta0.safetensors"), load_file(TWO / "theta1.safetensors"))))
