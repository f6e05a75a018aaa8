"""Stop signals during training (Ctrl-C, and SIGTERM and SIGHUP as clusters and closed terminals send them): a
checkpoint at the step reached, the run marked interrupted, the resume command on stderr, exit code 128 + the
signal. Ctrl-C (or SIGTERM) in `ebmctl sample` keeps the finished batches."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
from training_process import TOY, ebmctl, start, wait_for_steps

from ebmctl.checkpoints import load_tensors, read_meta
from ebmctl.runs import MODEL_CKPT, STATE_CKPT


@pytest.mark.parametrize(("signum", "code", "name"), [(signal.SIGINT, 130, "Ctrl-C"), (signal.SIGTERM, 143, "SIGTERM"),
                                                      (signal.SIGHUP, 129, "SIGHUP")])
def test_a_stop_signal_saves_says_how_to_resume_and_exits_128_plus_the_signal(tmp_path, signum, code, name):
    """Before, SIGTERM and SIGHUP killed training outright: run.json stayed "running" at step 0 although the metrics
    had gone on, and the steps since the last checkpoint were lost."""
    runs = tmp_path / "runs"
    proc = start(runs)
    run = wait_for_steps(runs, proc, 3)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: interrupted at step ") and f" by {name};" in lines[0]
    assert f"resume with: ebmctl train --resume {run}" in lines[0]
    doc = json.loads((run / "run.json").read_text())
    state = read_meta(run / STATE_CKPT)
    assert doc["status"] == "interrupted" and doc["step"] == state["step"] >= 3
    _, model = load_tensors(run / MODEL_CKPT)
    assert model["step"] == state["step"]
    logged = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert logged == list(range(1, state["step"] + 1))  # nothing logged past the checkpoint
    assert not list(run.rglob("*.tmp"))

    resumed = subprocess.run(ebmctl(runs, "train", "--resume", "--steps", str(state["step"] + 2)),
                             env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    doc = json.loads((run / "run.json").read_text())
    assert doc["status"] == "completed" and doc["step"] == state["step"] + 2


def test_ctrl_c_in_sample_keeps_the_finished_batches(tmp_path):
    """Before, Ctrl-C threw the finished samples away and left an empty output folder."""
    runs = tmp_path / "runs"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(ebmctl(runs, "train", "--preset", "igebm-toy", "--steps", "2", *TOY), env=env, check=True,
                   capture_output=True, timeout=120)
    (run,) = list(runs.iterdir())
    proc = start(runs, "sample", "--n", "1000000", "--batch-size", "50", "--steps", "20", "--out", "stopped")
    samples = run / "stopped" / "samples.safetensors"
    deadline = time.monotonic() + 120
    while sum(p.stat().st_size for p in samples.parent.glob(".samples.safetensors.*.tmp")) < 4000:  # a few batches
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "interrupted by SIGTERM after " in lines[0] and "of 1000000 samples" in lines[0]
    tensors, _ = load_tensors(samples)
    kept = len(tensors["samples"])
    assert kept > 0 and kept % 50 == 0 and f"after {kept} of" in lines[0]
    doc = json.loads((run / "stopped" / "result.json").read_text())
    assert doc["n"] == kept and doc["settings"]["interrupted_by"] == "SIGTERM"
    assert (run / "stopped" / "grid.png").is_file() and not list(run.rglob("*.tmp"))
