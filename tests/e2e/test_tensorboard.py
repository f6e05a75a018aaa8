"""train.loggers = ["tensorboard"] logs metrics.jsonl's scalars and the negatives grids to TensorBoard; without
it nothing changes; without the package it is a one-line error before any work."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

TINY = ["--steps", "4", "--set", "train.batch_size=8", "--set", "sampler.steps=2", "--set", "method.kl_chains=4",
        "--set", "net.width=8", "--set", "train.log_every=1", "--set", "train.sample_every=2"]


def _train(cli, *extra: str) -> Path:
    result = cli("--json", "--quiet", "train", "--preset", "quickstart", *TINY, *extra)
    assert result.code == 0, result.err
    return Path(json.loads(result.out)["run"])


def test_tensorboard_gets_the_scalars_of_metrics_jsonl_and_the_negatives(cli):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = _train(cli, "--set", 'train.loggers=["tensorboard"]')
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for key in ("loss", "gap", "e_pos", "e_neg", "images_per_s"):
        logged = [(e.step, e.value) for e in events.Scalars(f"train/{key}")]
        assert logged == [(r["step"], pytest.approx(r[key], rel=1e-6)) for r in records], key
    assert [e.step for e in events.Images("samples/negatives")] == [2, 4, 4]  # step 2, step 4 and the final grid


def test_without_loggers_the_run_writes_what_it_did(cli):
    run = _train(cli)
    assert not (run / "tensorboard").exists()
    assert json.loads((run / "spec.json").read_text())["train"]["loggers"] == []


def test_a_missing_tensorboard_is_a_one_line_error_before_any_work(cli, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if the package were not installed
    result = cli("train", "--preset", "quickstart", *TINY, "--set", 'train.loggers=["tensorboard"]')
    assert result.code == 2 and result.err.startswith("error: train.loggers names tensorboard, which is not installed")
    assert "pip install 'ebmctl[tensorboard]'" in result.err and len(result.err.strip().splitlines()) == 1
    assert not cli.runs.exists() or not list(cli.runs.iterdir())


def test_unknown_loggers_are_spec_errors(cli):
    result = cli("train", "--preset", "quickstart", "--set", 'train.loggers=["wandb"]', "--print-spec")
    assert result.code == 2 and "train.loggers" in result.err
