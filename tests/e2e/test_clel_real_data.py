"""CLEL's real-data presets on fixtures in the datasets' exact formats: clel-base on CIFAR-10 (then OOD against
SVHN) and clel-celeba64 on CelebA (then an attribute composition)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from data.fixtures import write_celeba, write_cifar10, write_svhn

from ebmctl.checkpoints import load_tensors
from ebmctl.nets import count_parameters
from ebmctl.runs import resolve_run
from ebmctl.services.runtime.loading import load_run

ONE_STEP = ["--set", "data.verify_checksums=false", "--set", "train.steps=1", "--set", "train.batch_size=4",
            "--set", "sampler.steps=1", "--set", "buffer.size=16"]


def _train(root, runs, preset: str, *extra: str) -> None:
    from ebmctl.cli.main import main_entry

    code = main_entry(["--runs-dir", str(runs), "--data-root", str(root), "--device", "cpu", "--quiet", "train",
                       "--preset", preset, *ONE_STEP, *extra])
    assert code == 0


@pytest.fixture(scope="module")
def cifar_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_cifar10(root, n_train=8, n_test=8)
    write_svhn(root, n_train=4, n_test=8)
    runs = tmp_path_factory.mktemp("runs")
    _train(root, runs, "clel-base")
    return root, runs


@pytest.fixture(scope="module")
def celeba_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_celeba(root, n=12)
    runs = tmp_path_factory.mktemp("runs")
    _train(root, runs, "clel-celeba64", "--set", "method.latent_examples=4", "--set", "eval.judge_steps=10", "--set", "eval.attribute_judge_steps=2")
    return root, runs


def test_clel_base_trains_the_released_model_sizes(cifar_run):
    _, runs = cifar_run
    (run_dir,) = list(runs.iterdir())
    doc = json.loads((run_dir / "run.json").read_text())
    assert doc["status"] == "completed" and doc["preset"] == "clel-base"
    run = load_run(resolve_run(None, runs), torch.device("cpu"))
    assert run.info.name == "cifar10" and run.info.shape == (3, 32, 32)
    assert count_parameters(run.method.net) == 6_955_648  # CLEL-Base, as documented in ebmctl/nets/clel.py
    assert count_parameters(run.method.encoder.net) == 12_483_776  # ResNet-18 + MLP head (ebmctl/nets/encoders.py)


def test_ood_cifar10_against_svhn_reports_energy_and_joint(cifar_run, cli):
    root, runs = cifar_run
    result = cli("--runs-dir", str(runs), "--data-root", str(root), "--json", "--quiet", "ood", "--in", "cifar10",
                 "--out", "svhn", "--n", "8", runs_dir=False)
    assert result.code == 0, result.err
    rows = json.loads(result.out)["results"]
    assert [(r["out"], r["score"]) for r in rows] == [("svhn", "energy"), ("svhn", "joint")]
    for row in rows:
        assert 0.0 <= row["auroc"] <= 1.0 and row["n_in"] == row["n_out"] == 8


def test_clel_celeba64_composes_attributes(celeba_run, cli):
    root, runs = celeba_run
    run = load_run(resolve_run(None, runs), torch.device("cpu"))
    assert run.info.shape == (3, 64, 64) and count_parameters(run.method.net) == 6_955_648
    assert run.method.encoder.net.conv1.kernel_size == (7, 7)
    # The attribute judge is the ResNet-18 of paper 002's Table 4, trained for 2 steps here (eval.attribute_judge_steps)
    result = cli("--runs-dir", str(runs), "--data-root", str(root), "--json", "--quiet", "compose", "--attrs",
                 "young,female", "--n", "4", "--steps", "2", "--no-baseline", runs_dir=False)
    assert result.code == 0, result.err
    doc = json.loads(result.out)
    assert doc["route"] == "latents" and doc["concepts"] == ["Young", "not Male"] and doc["n"] == 4
    assert doc["settings"]["examples_per_attribute"] == 4 and "baseline" not in doc["files"]
    samples = load_tensors(Path(doc["files"]["samples"]))[0]["samples"]
    assert samples.shape == (4, 3, 64, 64) and torch.isfinite(samples).all()
    assert [(r["attribute"], r["present"]) for r in doc["results"]] == [("Young", True), ("Male", False), ("all", None)]
