"""The CUDA speed paths (run with `pytest -m gpu` on a machine with a GPU)."""

from __future__ import annotations

import pytest
import torch

from ebmctl.nets import IcdResNet
from ebmctl.samplers.langevin import sgld

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


def _energy(net):
    return lambda x: net(x).sum(1)


@pytest.mark.parametrize("noise", [0.0, 0.001])
def test_cuda_graph_replay_equals_eager_steps(noise):
    torch.manual_seed(0)
    net = IcdResNet(width=16).cuda().eval()
    x0 = torch.rand(8, 3, 32, 32, device="cuda")
    kw = {"steps": 6, "step_size": 100.0, "noise": noise}
    seen: list[int] = []
    eager = sgld(_energy(net), x0, **kw, generator=torch.Generator("cuda").manual_seed(2))
    graphed = sgld(_energy(net), x0, **kw, generator=torch.Generator("cuda").manual_seed(2), cuda_graph=True,
                   callback=lambda k, x: seen.append(k))
    assert seen == list(range(6))
    assert (graphed - eager).abs().max().item() < 1e-4


def test_bf16_and_channels_last_on_cuda_keep_fp32_chains():
    torch.manual_seed(0)
    net = IcdResNet(width=16).cuda().eval()
    x0 = torch.rand(8, 3, 32, 32, device="cuda")
    fp32 = sgld(_energy(net), x0, steps=3, step_size=10.0, noise=0.0)
    fast = sgld(_energy(net), x0, steps=3, step_size=10.0, noise=0.0, precision="bf16", channels_last=True,
                cuda_graph=True)
    assert fast.dtype == torch.float32 and fast.is_contiguous()
    assert 0 < (fast - fp32).abs().max().item() < 0.1
