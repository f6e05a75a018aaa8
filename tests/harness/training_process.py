"""Training processes for the tests that signal them or run two at once."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

TOY = ["--set", "train.log_every=1", "--set", "train.batch_size=16", "--set", "sampler.steps=5"]


def ebmctl(runs: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "ebmctl", "--runs-dir", str(runs), "--device", "cpu", "--quiet", *args]


def start(runs: Path, *args: str) -> subprocess.Popen:
    """A training process of a long igebm-toy run (or of ``args``)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = args or ("train", "--preset", "igebm-toy", "--steps", "100000", *TOY)
    return subprocess.Popen(ebmctl(runs, *args), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_steps(runs: Path, proc: subprocess.Popen, n: int, timeout: float = 120.0, skip: tuple[Path, ...] = ()) -> Path:
    """The run (other than ``skip``) that first logs ``n`` steps while ``proc`` runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        for metrics in runs.glob("*/metrics.jsonl"):
            if metrics.parent not in skip and len(metrics.read_text().splitlines()) >= n:
                return metrics.parent
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"no {n} logged steps within {timeout} s")
