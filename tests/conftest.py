"""Test-wide settings: one thread, no network, runs and data under a temporary directory."""

from __future__ import annotations

import os
from dataclasses import dataclass

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest
import torch

from ebmctl.cli.main import main_entry

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path, monkeypatch):
    """Keep every test away from the user's runs, data and caches."""
    monkeypatch.setenv("EBMCTL_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("EBMCTL_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("EBMCTL_DATA", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    yield


@dataclass
class Outcome:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys, tmp_path):
    runs = tmp_path / "runs"

    def invoke(*args: str, runs_dir: bool = True) -> Outcome:
        argv = ["--runs-dir", str(runs), "--device", "cpu", *args] if runs_dir else list(args)
        code = main_entry(argv)
        captured = capsys.readouterr()
        return Outcome(code, captured.out, captured.err)

    invoke.runs = runs
    return invoke
