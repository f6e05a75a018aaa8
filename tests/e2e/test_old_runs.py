"""Runs written by an earlier ebmctl keep working: load, sample, probe and resume through the real CLI.

The fixture runs in ``tests/fixtures/runs-0.1.0`` were written by ebmctl 0.1.0 at commit 22a9e3b (torch 2.14.1)
and are kept as they were written; a change that moves code around must leave them usable:

    ebmctl --runs-dir DIR train --preset quickstart --steps 2 --set buffer.size=32 --set net.width=4 \\
        --set train.batch_size=8 --set train.checkpoint_every=1 --seed 0
    ebmctl --runs-dir DIR train --preset cebm-digits --steps 2 --set buffer.size=32 \\
        --set 'net.channels=[4,4,4,4]' --set net.hidden=8 --set net.latent_dim=4 --set train.batch_size=8 \\
        --set train.checkpoint_every=1 --seed 0

(with plots and sample pictures left out).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from ebmctl.checkpoints import load_tensors

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "runs-0.1.0"
RUNS = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir())


@pytest.fixture
def runs(tmp_path):
    shutil.copytree(FIXTURES, tmp_path / "runs")
    return tmp_path / "runs"


def _cli(runs: Path, *args: str) -> int:
    from ebmctl.cli.main import main_entry

    return main_entry(["--runs-dir", str(runs), "--device", "cpu", "--quiet", "--json", *args])


def test_the_fixture_holds_the_runs_it_names():
    assert [name.split("-2026")[0] for name in RUNS] == ["cebm-digits", "quickstart"]


@pytest.mark.parametrize("name", RUNS)
def test_an_old_run_samples_and_resumes(runs, name):
    run = runs / name
    assert _cli(runs, "sample", "--run", str(run), "--n", "4", "--steps", "2", "--out", "old") == 0
    samples, meta = load_tensors(run / "old" / "samples.safetensors")
    assert samples["samples"].shape[0] == 4 and torch.isfinite(samples["samples"].float()).all()
    assert meta["checkpoint_step"] == 2

    assert _cli(runs, "train", "--resume", str(run), "--set", "train.steps=3") == 0
    doc = json.loads((run / "run.json").read_text())
    assert doc["status"] == "completed" and doc["step"] == 3
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [2, 3]  # the old record (its last step) is kept, the new one follows


def test_an_old_cebm_run_is_probed(runs):
    (name,) = [n for n in RUNS if n.startswith("cebm-digits")]
    assert _cli(runs, "probe", "--run", str(runs / name), "--shots", "1", "--seeds", "1", "--knn", "0",
                "--out", "old-probe") == 0
    (result,) = (runs / name / "old-probe").glob("result.json")
    rows = json.loads(result.read_text())["results"]
    assert rows and all(0.0 <= r["mean"] <= 1.0 for r in rows)
