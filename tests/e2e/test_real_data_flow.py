"""The real loaders end to end: train icd-cifar10 on a CIFAR-10 fixture, then `ood --in cifar10 --out svhn`."""

from __future__ import annotations

import json

import pytest
from data.fixtures import write_cifar10, write_svhn

from ebmctl.checkpoints import load_tensors, save_tensors


@pytest.fixture(scope="module")
def cifar_run(tmp_path_factory):
    from ebmctl.cli.main import main_entry

    root = tmp_path_factory.mktemp("data")
    write_cifar10(root, n_train=24, n_test=16)
    write_svhn(root, n_train=8, n_test=16)
    runs = tmp_path_factory.mktemp("runs")
    code = main_entry(["--runs-dir", str(runs), "--data-root", str(root), "--device", "cpu", "--quiet", "train",
                       "--preset", "icd-cifar10", "--set", "data.verify_checksums=false", "--set", "train.steps=2",
                       "--set", "train.batch_size=8", "--set", "sampler.steps=2", "--set", "method.kl_chains=4"])
    assert code == 0
    return root, runs


def test_icd_cifar10_preset_trains_on_the_fixture(cifar_run):
    _, runs = cifar_run
    (run,) = list(runs.iterdir())
    doc = json.loads((run / "run.json").read_text())
    assert doc["status"] == "completed" and doc["preset"] == "icd-cifar10"
    tensors, meta = load_tensors(run / "checkpoints" / "model.safetensors")
    n_params = sum(v.numel() for k, v in tensors.items() if k.startswith("model.") and "running" not in k)
    assert n_params == 6_643_044
    assert meta["data"]["name"] == "cifar10"


def test_ood_cifar10_vs_svhn_exactly_as_written(cifar_run, cli):
    root, runs = cifar_run
    result = cli("--runs-dir", str(runs), "--data-root", str(root), "ood", "--in", "cifar10", "--out", "svhn",
                 runs_dir=False)
    assert result.code == 0, result.err
    assert "svhn" in result.out and "AUROC" in result.out


def test_a_checkpoint_of_another_shape_is_a_clear_error(cifar_run, cli, tmp_path):
    _, runs = cifar_run
    (run,) = list(runs.iterdir())
    tensors, meta = load_tensors(run / "checkpoints" / "model.safetensors")
    meta["spec"]["net"]["width"] = 32  # the weights are width 64
    bad = tmp_path / "checkpoints" / "model.safetensors"
    save_tensors(bad, tensors, meta)
    result = cli("sample", "--run", str(bad), "--steps", "1", "--n", "2")
    assert result.code == 1 and "does not match" in result.err and len(result.err.strip().splitlines()) == 1


def test_a_truncated_checkpoint_is_a_clear_error(cifar_run, cli, tmp_path):
    _, runs = cifar_run
    (run,) = list(runs.iterdir())
    bad = tmp_path / "checkpoints" / "model.safetensors"
    bad.parent.mkdir(parents=True)
    bad.write_bytes((run / "checkpoints" / "model.safetensors").read_bytes()[:5000])
    result = cli("sample", "--run", str(bad), "--steps", "1", "--n", "2")
    assert result.code == 1 and "not a readable safetensors file" in result.err
    assert "Traceback" not in result.err
