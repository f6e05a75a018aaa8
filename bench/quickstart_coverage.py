"""How well quickstart samples cover shapes32: the judges' shares of shape, colour and background, and judge-FID.

    OMP_NUM_THREADS=1 python bench/quickstart_coverage.py RUN [RUN ...]

For each run, two sampling schedules (500 samples each, seed 0, `ebmctl sample --fid`): ``noise``, 200 steps from
uniform noise augmented every 20 but the last 60 (the quickstart's schedule until the preset changed), and
``buffer``, 200 plain steps continuing the run's training chains (the quickstart's schedule now). The shapes32
class judge names each sample's shape; the attribute judge its colour (the most likely of the six) and whether
its background is light. The same judges read 1000 test images for the data's shares. Distance to the data: the
total-variation distances of the shape and colour shares plus the difference of the light-background shares
(0 when the samples are spread as the data is; at most 3).
"""

from __future__ import annotations

import functools
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from ebmctl.data.embedded.shapes import COLOURS, SHAPES
from ebmctl.data.load import load_dataset
from ebmctl.evaluation.attribute_training import load_attribute_judge
from ebmctl.evaluation.judges import load_judge
from ebmctl.services.runtime.judging import cache_dir

SCHEDULES = {
    "noise": ("--init", "noise", "--steps", "200", "--aug-every", "20", "--plain-steps", "60"),
    "buffer": ("--init", "buffer", "--steps", "200", "--aug-every", "0", "--plain-steps", "0"),
}
N = 500


@functools.cache
def judges() -> tuple[torch.nn.Module, torch.nn.Module]:
    """The cached shapes32 class and attribute judges, read once."""
    folder = cache_dir() / "judges"
    return (load_judge(folder / "shapes32-3x32x32.safetensors"),
            load_attribute_judge(folder / "attributes-shapes32-3x32x32-cnn.safetensors"))


def shares(x: torch.Tensor) -> dict[str, torch.Tensor]:
    classes, attributes = judges()
    colour = slice(len(SHAPES), len(SHAPES) + len(COLOURS))
    with torch.no_grad():
        shape = classes(x).argmax(1)
        logits = attributes(x)
    return {
        "shape": torch.bincount(shape, minlength=len(SHAPES)).float() / len(x),
        "colour": torch.bincount(logits[:, colour].argmax(1), minlength=len(COLOURS)).float() / len(x),
        "light": (logits[:, -1] > 0).float().mean().reshape(1),
    }


def distance(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return float(0.5 * (a["shape"] - b["shape"]).abs().sum() + 0.5 * (a["colour"] - b["colour"]).abs().sum()
                 + (a["light"] - b["light"]).abs().sum())


def sample(run: Path, name: str) -> tuple[torch.Tensor, float]:
    out = f"coverage-{name}"
    cmd = [sys.executable, "-m", "ebmctl", "--quiet", "--json", "sample", "--run", str(run), "--n", str(N), "--fid",
           "--seed", "0", "--out", out, *SCHEDULES[name]]
    doc = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True,
                                    env={**os.environ, "OMP_NUM_THREADS": "1"}).stdout)
    return load_file(doc["files"]["samples"])["samples"].float(), float(doc["metrics"]["fid"])


def main(runs: list[str]) -> None:
    test = load_dataset("shapes32", split="test")
    data, _ = test.get_batch(torch.arange(1000))
    ref = shares(data.float() / 255)
    fmt = lambda t: " ".join(f"{v:.2f}" for v in t.tolist())  # noqa: E731
    print(f"data: shape {fmt(ref['shape'])} | colour {fmt(ref['colour'])} | light {fmt(ref['light'])}")
    table: dict[str, dict[str, list[float]]] = {k: {"fid": [], "distance": []} for k in SCHEDULES}
    for run in map(Path, runs):
        for name in SCHEDULES:
            x, fid = sample(run, name)
            s = shares(x)
            table[name]["fid"].append(fid)
            table[name]["distance"].append(distance(s, ref))
            print(f"{run.name} {name}: FID {fid:.1f}, distance {distance(s, ref):.2f}; shape {fmt(s['shape'])} | "
                  f"colour {fmt(s['colour'])} | light {fmt(s['light'])}")
    for name, cols in table.items():
        print(name, *(f"{k} {statistics.mean(v):.2f} ± {statistics.stdev(v) if len(v) > 1 else 0:.2f}"
                      for k, v in cols.items()))


if __name__ == "__main__":
    main(sys.argv[1:])
