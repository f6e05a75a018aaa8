"""IGEBM's released Adam (per-element clip to 3 sqrt(v_hat) + 0.1 before the update) on a hand-computed case."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from ebmctl.methods.energy_model import EnergyModel
from ebmctl.methods.optimizers import ClippedAdam
from ebmctl.methods.state import load_optimizer, optimizer_meta, optimizer_tensors


def _two_steps_by_hand(g1: float, g2: float, p: float, lr: float, b1: float, b2: float) -> float:
    """custom_adam.py's _apply_dense written out: the bound uses v before the current gradient and the bias
    correction 1 - beta2^t of the current update."""
    m = v = 0.0
    for t, g in ((1, g1), (2, g2)):
        bound = 3 * math.sqrt(v / (1 - b2**t)) + 0.1
        g = max(-bound, min(bound, g))
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        p -= lr * math.sqrt(1 - b2**t) / (1 - b1**t) * m / math.sqrt(v)
    return p


def test_two_steps_match_the_hand_computed_update():
    # element 0: step 1 clipped 2.0 -> 0.1 (v = 0), step 2 clipped 1.0 -> 3 sqrt(0.0025 / 0.4375) + 0.1;
    # element 1: small gradients the bound never touches
    p = nn.Parameter(torch.tensor([1.0, 1.0], dtype=torch.float64))
    opt = ClippedAdam([p], lr=0.1, betas=(0.5, 0.75), eps=0.0)
    for g in ((2.0, 0.05), (1.0, -0.01)):
        p.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
    assert p[0].item() == pytest.approx(0.8017066, abs=1e-6)  # by hand: 1 - 0.1 - 0.0882 * 0.18839 / 0.16903
    assert p[0].item() == pytest.approx(_two_steps_by_hand(2.0, 1.0, 1.0, 0.1, 0.5, 0.75), rel=1e-12)
    assert p[1].item() == pytest.approx(_two_steps_by_hand(0.05, -0.01, 1.0, 0.1, 0.5, 0.75), rel=1e-12)


def test_the_bound_uses_the_previous_second_moment_with_the_current_correction():
    p = nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    opt = ClippedAdam([p], lr=0.1, betas=(0.5, 0.75), eps=0.0)
    p.grad = torch.tensor([2.0], dtype=torch.float64)
    opt.step()
    assert p.item() == pytest.approx(0.9)  # the first step sees g = 0.1: Adam's first step is lr * sign
    assert opt.state[p]["exp_avg"].item() == pytest.approx(0.05)  # m holds the clipped gradient
    assert opt.state[p]["exp_avg_sq"].item() == pytest.approx(0.0025)
    p.grad = torch.tensor([1.0], dtype=torch.float64)
    opt.step()
    clipped = 3 * math.sqrt(0.0025 / (1 - 0.75**2)) + 0.1
    assert opt.state[p]["exp_avg"].item() == pytest.approx(0.5 * 0.05 + 0.5 * clipped)
    # other readings of v_hat would clip elsewhere: uncorrected v, or v after the current gradient
    for wrong in (3 * math.sqrt(0.0025) + 0.1, 3 * math.sqrt((0.75 * 0.0025 + 0.25) / (1 - 0.75**2)) + 0.1):
        assert opt.state[p]["exp_avg"].item() != pytest.approx(0.5 * 0.05 + 0.5 * wrong, rel=1e-3)


def test_energy_model_builds_it_and_its_state_round_trips():
    torch.manual_seed(0)
    net = nn.Linear(3, 1)
    model = EnergyModel(net, lr=1e-2, betas=(0.0, 0.999), optimizer="adam_clip")
    assert isinstance(model.optimizer, ClippedAdam)
    for _ in range(2):
        model.step(net(torch.randn(4, 3)).pow(2).mean())
    tensors, meta = optimizer_tensors(model.optimizer, "o."), optimizer_meta(model.optimizer)
    twin_net = nn.Linear(3, 1)
    twin_net.load_state_dict(net.state_dict())
    twin = EnergyModel(twin_net, lr=1e-2, betas=(0.0, 0.999), optimizer="adam_clip")
    load_optimizer(twin.optimizer, tensors, meta, "o.")
    x = torch.randn(4, 3)
    model.step(net(x).pow(2).mean())
    twin.step(twin_net(x).pow(2).mean())
    assert all(torch.equal(a, b) for a, b in zip(net.parameters(), twin_net.parameters(), strict=True))


def test_invalid_hyper_parameters():
    with pytest.raises(ValueError, match="betas"):
        ClippedAdam([nn.Parameter(torch.zeros(1))], betas=(1.0, 0.5))
    with pytest.raises(ValueError, match="lr"):
        ClippedAdam([nn.Parameter(torch.zeros(1))], lr=0.0)
