"""`ebmctl sample` with ICD's released pool schedule: --n within and beyond one pool, seeds, refused options."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ebmctl.checkpoints import load_tensors

POOL = ["--set", "sample.schedule=pool", "--set", "sample.pool=12", "--set", "sample.pool_batch=5", "--set",
        "sample.pool_rounds=7", "--set", "sample.pool_plain_rounds=2", "--set", "sample.aug_every=2"]
TINY = ["--set", "train.batch_size=8", "--set", "sampler.steps=2", "--set", "method.kl_chains=4", "--set",
        "train.checkpoint_every=2", "--set", "train.sample_every=2"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from ebmctl.cli.main import main_entry

    runs = tmp_path_factory.mktemp("runs")
    code = main_entry(["--runs-dir", str(runs), "--device", "cpu", "--quiet", "--json", "train", "--preset",
                       "quickstart", "--steps", "2", *TINY, *POOL])
    assert code == 0
    return runs


def _sample(cli, runs: Path, *args: str) -> tuple[dict, torch.Tensor]:
    res = cli("--runs-dir", str(runs), "--json", "sample", *args, runs_dir=False)
    assert res.code == 0, res.err
    doc = json.loads(res.out)
    return doc, load_tensors(Path(doc["out"]) / "samples.safetensors")[0]["samples"]


def test_n_within_one_pool_returns_its_first_chains(runs, cli):
    doc, x = _sample(cli, runs, "--n", "5", "--seed", "1", "--out", "a")
    assert x.shape == (5, 3, 32, 32)
    s = doc["settings"]
    assert s["schedule"] == "pool" and s["pool"] == {"size": 12, "batch": 5, "rounds": 7, "plain_rounds": 2,
                                                     "plain_splits": 2}
    assert "plain_steps" not in s
    # 3 rounds fill the pool, 2 augment, 2 plain (one per half): 2 to 4 rounds of 2 steps per chain
    per = s["steps_per_sample"]
    assert 4 <= per["min"] <= per["mean"] <= per["max"] <= 8
    assert (Path(doc["out"]) / "chain.png").is_file()
    _, again = _sample(cli, runs, "--n", "5", "--seed", "1", "--out", "b")
    assert torch.equal(x, again)


def test_n_beyond_the_pool_runs_fresh_pools(runs, cli):
    _, x = _sample(cli, runs, "--n", "30", "--seed", "1", "--out", "c")
    assert x.shape == (30, 3, 32, 32)  # three pools of 12, the last cut to 6
    _, first = _sample(cli, runs, "--n", "12", "--seed", "1", "--out", "d")
    assert torch.equal(x[:12], first)
    assert not torch.equal(x[12:24], first), "a second pool starts from fresh chains"


def test_chains_options_are_refused_and_chains_schedule_still_works(runs, cli):
    res = cli("--runs-dir", str(runs), "sample", "--steps", "4", runs_dir=False)
    assert res.code != 0 and "--schedule chains" in res.err
    doc, x = _sample(cli, runs, "--schedule", "chains", "--steps", "3", "--n", "4", "--out", "e")
    assert x.shape == (4, 3, 32, 32) and doc["settings"]["schedule"] == "chains" and doc["steps"] == 3
