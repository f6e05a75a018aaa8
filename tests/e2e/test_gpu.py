"""The CUDA path end to end (run with `pytest -m gpu` on a machine with a GPU)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


def test_train_sample_ood_on_cuda(cli):
    result = cli("--device", "cuda", "--json", "train", "--preset", "quickstart", "--steps", "4", "--set",
                 "train.batch_size=16", "--set", "sampler.steps=3", "--set", "method.kl_chains=8")
    assert result.code == 0, result.err
    run = json.loads(result.out)["run"]
    assert json.loads(Path(run, "run.json").read_text())["device"].startswith("cuda")
    sampled = cli("--device", "cuda", "--json", "sample", "--steps", "5", "--n", "8")
    assert sampled.code == 0, sampled.err
    ood = cli("--device", "cuda", "--json", "ood", "--in", "shapes32", "--out", "textures", "--n", "32",
              "--score", "energy,grad_norm")
    assert ood.code == 0, ood.err
    assert all(0.0 <= row["auroc"] <= 1.0 for row in json.loads(ood.out)["results"])


def test_cuda_and_cpu_chains_agree():
    from ebmctl.nets import IcdResNet
    from ebmctl.samplers.langevin import sgld

    torch.manual_seed(0)
    net = IcdResNet(width=16).eval()
    x = torch.rand(4, 3, 32, 32)

    def energy(m):
        return lambda z: m(z).sum(1)

    cpu = sgld(energy(net), x, steps=5, step_size=100.0, noise=0.0)
    gpu = sgld(energy(net.cuda()), x.cuda(), steps=5, step_size=100.0, noise=0.0).cpu()
    assert torch.allclose(cpu, gpu, atol=1e-3)
