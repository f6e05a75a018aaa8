"""Data-parallel training on two CPU processes (gloo) against one process with the same global batch.

The two processes are started the way torchrun starts them (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
MASTER_PORT on a free port) and run :mod:`ddp_steps`: two steps of every method with fixed data and fixed
negatives, split over the processes. The same steps on one process must give the same gradients, updates,
weights and metrics up to float rounding; a process that trained on its half of the batch alone (no gradient
averaging) must not. Then ``ebmctl train --nproc 2`` end to end: a run directory, loadable checkpoints, resume.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from ebmctl.checkpoints import load_tensors, read_meta
from ebmctl.runs import MODEL_CKPT, STATE_CKPT
from ebmctl.services.runtime.distributed.processes import Processes

sys.path.insert(0, str(Path(__file__).parent))
from ddp_steps import CASES, launch, run_case

HERE = Path(__file__).parent
# Two processes against one on CPU (bench/ddp_equivalence.py, torch 2.14.1: gradients within 3.4e-6, updates
# within 2.9e-6, weights within 1.3e-7 of the one-process run; without averaging the gradients are off by more
# than 1e-2). Each case's rounding floor, the same steps on one process with AVX2 kernels against AVX-512 ones,
# is at most 2e-6: a case near the tolerance would compare kernels, not the averaging (see ddp_steps.FLOAT64).
GRAD_RTOL = 2e-4
UPDATE_RTOL = 2e-4
WEIGHT_ATOL = 1e-5
TIMING = {"images_per_s", "elapsed_s"}


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    """Run ddp_steps.py on two processes; their results and run directories."""
    out = tmp_path_factory.mktemp("ddp")
    try:
        return out, launch(out)
    except RuntimeError as e:
        pytest.fail(str(e))


def _flat(tensors: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([tensors[k].double().flatten() for k in sorted(tensors)])


def _rel(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """||a - b|| / ||b|| over every tensor together."""
    assert a.keys() == b.keys()
    fa, fb = _flat(a), _flat(b)
    return float((fa - fb).norm() / fb.norm())


@pytest.mark.parametrize("name", list(CASES))
def test_two_processes_match_one_process(two_processes, name):
    _, (rank0, rank1) = two_processes
    one = run_case(name, Processes())
    two = rank0[name]
    # Same keys as a one-process run: a checkpoint written by rank 0 loads everywhere.
    assert two["weights"].keys() == one["weights"].keys()
    assert not any(k.startswith("module.") or ".module." in k for k in two["weights"])
    # Both replicas hold the same weights, bit for bit.
    for key, value in two["weights"].items():
        assert torch.equal(value, rank1[name]["weights"][key]), key
    assert _rel(two["grads"], one["grads"]) < GRAD_RTOL
    assert _rel(two["delta"], one["delta"]) < UPDATE_RTOL
    for key, value in one["weights"].items():
        torch.testing.assert_close(two["weights"][key], value, rtol=0, atol=WEIGHT_ATOL, msg=key)
    for got, want in zip(two["metrics"], one["metrics"], strict=True):
        assert got.keys() == want.keys()
        for key in want:
            assert got[key] == pytest.approx(want[key], rel=1e-4, abs=1e-6), key
    # The check can fail: one process on its half of the batch, gradients not averaged, is far off.
    alone = run_case(name, Processes(rank=0, world=2), average=False)
    assert _rel(alone["grads"], one["grads"]) > 100 * GRAD_RTOL


def test_resume_on_two_processes_is_exact(two_processes):
    """4 steps straight and 2 steps resumed to 4 (both on two processes) end in the same state, bit for bit."""
    out, _ = two_processes
    (straight,) = (out / "straight").iterdir()
    (resumed,) = (out / "resumed").iterdir()
    a, meta_a = load_tensors(straight / STATE_CKPT)
    b, meta_b = load_tensors(resumed / STATE_CKPT)
    assert meta_a["world_size"] == 2 and meta_a["step"] == meta_b["step"] == 4
    assert {"rank1.buffer.storage", "rank1.rng.torch"} <= a.keys() and a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key  # weights, EMA, Adam moments, every rank's buffer and RNG
    assert meta_a["ranks"] == meta_b["ranks"] and meta_a["window"] == meta_b["window"]
    assert not torch.equal(a["buffer.storage"], a["rank1.buffer.storage"])  # each rank ran its own chains

    def metrics(run):
        lines = (run / "metrics.jsonl").read_text().splitlines()
        return [{k: v for k, v in json.loads(line).items() if k not in TIMING} for line in lines]

    assert metrics(straight) == metrics(resumed) and [r["step"] for r in metrics(straight)] == [1, 2, 3, 4]


TINY = ["--set", "train.batch_size=8", "--set", "sampler.steps=3", "--set", "method.kl_chains=4",
        "--set", "train.log_every=1", "--set", "train.checkpoint_every=2", "--set", "train.sample_every=2",
        "--set", "buffer.size=40"]


def test_nproc_trains_resumes_and_loads_everywhere(cli):
    result = cli("--quiet", "--json", "train", "--preset", "quickstart", "--nproc", "2", "--steps", "4", *TINY)
    assert result.code == 0, result.err
    (run,) = list(cli.runs.iterdir())
    doc = json.loads((run / "run.json").read_text())
    assert doc["status"] == "completed" and doc["step"] == 4 and doc["processes"] == 2
    assert [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3, 4]
    weights, meta = load_tensors(run / MODEL_CKPT)
    assert meta["step"] == 4 and any(k.startswith("model.") for k in weights)
    assert not any("module." in k for k in weights)
    state = read_meta(run / STATE_CKPT)
    assert state["world_size"] == 2 and state["ranks"]["1"]["buffer"]["capacity"] == 20  # buffer.size / 2

    # A run trained on two processes loads in one: sample from its weights and from every rank's chains.
    sampled = cli("--quiet", "--json", "sample", "--run", str(run), "--init", "buffer", "--steps", "2", "--n", "4")
    assert sampled.code == 0, sampled.err

    wrong = cli("--quiet", "train", "--resume", str(run), "--steps", "6")
    assert wrong.code == 2 and "trained on 2 processes" in wrong.err and "--nproc 2" in wrong.err

    resumed = cli("--quiet", "train", "--resume", str(run), "--nproc", "2", "--steps", "6")
    assert resumed.code == 0, resumed.err
    doc = json.loads((run / "run.json").read_text())
    assert doc["status"] == "completed" and doc["step"] == 6
    assert [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()] == list(range(1, 7))
    assert read_meta(run / STATE_CKPT)["step"] == 6 and len(list(cli.runs.iterdir())) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--nproc", "0"], "--nproc must be at least 1"),
        (["--nproc", "3"], "train.batch_size 8 does not split evenly over 3 processes"),
        (["--nproc", "2", "--set", "train.batch_size=7"], "train.batch_size 7 does not split evenly"),
        (["--nproc", "2", "--device", "cuda:1"], "names one GPU"),
    ],
)
def test_bad_nproc_is_one_clear_line(cli, args, message):
    result = cli("train", "--preset", "quickstart", *TINY, *args)
    assert result.code == 2
    assert message in result.err and "hint:" in result.err
    assert len(result.err.strip().splitlines()) == 1 and "Traceback" not in result.err
    assert not cli.runs.exists() or not list(cli.runs.iterdir())


def test_nproc_needs_a_gpu_per_process(cli, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    result = cli("--device", "cuda", "train", "--preset", "quickstart", "--nproc", "2", runs_dir=False)
    assert result.code == 1
    assert "--nproc 2 needs one GPU per process; this machine has 1" in result.err and "--nproc 1" in result.err


def test_nproc_inside_a_launched_process_is_refused(cli, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    result = cli("train", "--preset", "quickstart", "--nproc", "2")
    assert result.code == 2 and "drop --nproc when launching with torchrun" in result.err


def test_nproc_rolls_back_together_and_stops_together(cli):
    """Every process sees the same averaged metrics, so all of them roll back at the same step and stop together."""
    result = cli("--quiet", "train", "--preset", "quickstart", "--nproc", "2", "--steps", "4", *TINY,
                 "--set", "guard.max_energy=1e-9", "--set", "guard.max_rollbacks=1")
    assert result.code == 1  # the processes' messages go to their own stderr
    (run,) = list(cli.runs.iterdir())
    doc = json.loads((run / "run.json").read_text())
    assert doc["status"] == "diverged" and doc["rollbacks"] == 1 and "guard.max_energy" in doc["diverged_because"]
    state = read_meta(run / STATE_CKPT)
    assert state["world_size"] == 2 and state["guard"]["rollbacks"] == 1
