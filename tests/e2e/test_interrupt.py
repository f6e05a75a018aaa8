"""Ctrl-C during training: a checkpoint at the step reached, the resume command on stderr, exit code 130."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ebmctl.checkpoints import load_tensors, read_meta
from ebmctl.runs import MODEL_CKPT, STATE_CKPT


def _start(runs: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = [sys.executable, "-m", "ebmctl", "--runs-dir", str(runs), "--device", "cpu", "--quiet", "train", "--preset",
            "igebm-toy", "--steps", "100000", "--set", "train.log_every=1", "--set", "train.batch_size=16",
            "--set", "sampler.steps=5"]
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_steps(runs: Path, proc: subprocess.Popen, n: int, timeout: float = 120.0) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        for metrics in runs.glob("*/metrics.jsonl"):
            if len(metrics.read_text().splitlines()) >= n:
                return metrics.parent
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"no {n} logged steps within {timeout} s")


def test_ctrl_c_saves_says_how_to_resume_and_exits_130(tmp_path):
    runs = tmp_path / "runs"
    proc = _start(runs)
    run = _wait_for_steps(runs, proc, 3)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: interrupted at step ")
    assert f"resume with: ebmctl train --resume {run}" in lines[0]
    doc = json.loads((run / "run.json").read_text())
    state = read_meta(run / STATE_CKPT)
    assert doc["status"] == "interrupted" and doc["step"] == state["step"] >= 3
    _, model = load_tensors(run / MODEL_CKPT)
    assert model["step"] == state["step"]
    logged = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert logged == list(range(1, state["step"] + 1))  # nothing logged past the checkpoint
    assert not list(run.rglob("*.tmp"))

    resumed = subprocess.run(
        [sys.executable, "-m", "ebmctl", "--runs-dir", str(runs), "--device", "cpu", "--quiet", "train", "--resume",
         "--steps", str(state["step"] + 2)], env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True,
        text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    doc = json.loads((run / "run.json").read_text())
    assert doc["status"] == "completed" and doc["step"] == state["step"] + 2
