"""SGLD: hand-computed steps, stationary moments on a Gaussian, frozen parameters, the differentiable tail."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from ebmctl.samplers.langevin import (
    LangevinParams,
    augmented_sgld,
    differentiable_step,
    frozen,
    sgld,
    sgld_with_differentiable_tail,
)


def quadratic(x: torch.Tensor) -> torch.Tensor:
    """E(x) = 1/2 ||x||^2 per sample, so dE/dx = x."""
    return 0.5 * x.flatten(1).pow(2).sum(1)


def test_one_step_without_noise_matches_hand_computation():
    x = torch.tensor([[0.5, -2.0]])
    out = sgld(quadratic, x, steps=1, step_size=0.1, noise=0.0, pixel_clamp=None)
    assert torch.allclose(out, torch.tensor([[0.45, -1.8]]))
    assert torch.equal(x, torch.tensor([[0.5, -2.0]])), "the input must not be modified"


def test_gradient_clamp_and_pixel_clamp():
    x = torch.tensor([[0.5, 0.9]])
    # dE/dx = x = (0.5, 0.9) clamped to +-0.2, times step 1.0 -> (0.3, 0.7)
    out = sgld(quadratic, x, steps=1, step_size=1.0, noise=0.0, grad_clamp=0.2, pixel_clamp=(0.0, 1.0))
    assert torch.allclose(out, torch.tensor([[0.3, 0.7]]))
    out = sgld(quadratic, x, steps=1, step_size=3.0, noise=0.0, pixel_clamp=(0.0, 1.0))
    assert torch.equal(out, torch.tensor([[0.0, 0.0]]))


def test_noise_first_evaluates_the_gradient_after_the_noise():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(3)
    x = torch.zeros(1, 4)
    first = sgld(quadratic, x, steps=1, step_size=0.5, noise=1.0, noise_first=True, pixel_clamp=None, generator=g)
    eps = torch.randn(1, 4, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(first, eps - 0.5 * eps)  # x + eps - 0.5 * (x + eps)
    g = torch.Generator().manual_seed(3)
    after = sgld(quadratic, x, steps=1, step_size=0.5, noise=1.0, noise_first=False, pixel_clamp=None, generator=g)
    assert torch.allclose(after, eps)  # gradient at 0 is 0, then the noise


def test_seeded_generator_reproduces_chains():
    x = torch.rand(3, 5)
    a = sgld(quadratic, x, steps=5, step_size=0.1, noise=0.3, generator=torch.Generator().manual_seed(7))
    b = sgld(quadratic, x, steps=5, step_size=0.1, noise=0.3, generator=torch.Generator().manual_seed(7))
    c = sgld(quadratic, x, steps=5, step_size=0.1, noise=0.3, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_sgld_reaches_the_gaussian_mean_and_variance():
    """E(x) = (x - mu)^2 / (2 s^2): Langevin with noise sqrt(2 eps) has stationary N(mu, s^2) up to O(eps)."""
    mu, s = 1.5, 0.5

    def energy(x: torch.Tensor) -> torch.Tensor:
        return ((x - mu) ** 2 / (2 * s * s)).sum(1)

    eps = 0.005
    x = torch.zeros(4000, 1)
    out = sgld(energy, x, steps=2000, step_size=eps, noise=math.sqrt(2 * eps), pixel_clamp=None,
               generator=torch.Generator().manual_seed(0))
    # The discretised chain's exact variance is s^2 / (1 - eps / (2 s^2)).
    expected_var = s * s / (1 - eps / (2 * s * s))
    assert abs(out.mean().item() - mu) < 0.03
    assert abs(out.var().item() - expected_var) < 0.02


def test_parameters_are_frozen_while_sampling_and_restored_after():
    net = nn.Linear(3, 1)
    seen = []

    def energy(x):
        seen.append(all(not p.requires_grad for p in net.parameters()))
        return net(x).squeeze(1)

    with frozen(net):
        sgld(energy, torch.rand(2, 3), steps=3, step_size=0.1, noise=0.0)
    assert seen == [True, True, True]
    assert all(p.requires_grad for p in net.parameters())
    assert net.weight.grad is None, "sampling must not accumulate parameter gradients"
    # An nn.Module energy is frozen by sgld itself.
    module_seen = []

    class Probe(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 1)

        def forward(self, x):
            module_seen.append(self.lin.weight.requires_grad)
            return self.lin(x).squeeze(1)

    probe = Probe()
    sgld(probe, torch.rand(2, 3), steps=2, step_size=0.1, noise=0.0)
    assert module_seen == [False, False] and probe.lin.weight.requires_grad


def test_differentiable_step_reaches_the_parameters():
    """x' = x - step * dE/dx with E = 1/2 w x^2: x' = x - step * w x, so dx'/dw = -step * x."""
    w = nn.Parameter(torch.tensor(2.0))
    x = torch.tensor([[0.3], [0.6]])
    out = differentiable_step(lambda z: 0.5 * w * z.pow(2).sum(1), x, step_size=0.1, noise=0.0, pixel_clamp=None)
    assert torch.allclose(out.detach(), x * (1 - 0.1 * 2.0))
    (grad,) = torch.autograd.grad(out.sum(), w)
    assert torch.allclose(grad, -0.1 * x.sum())


def test_differentiable_tail_matches_plain_chain_and_keeps_a_graph():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))

    def energy(x):
        return net(x).squeeze(1)

    params = LangevinParams(steps=4, step_size=0.2, noise=0.0, pixel_clamp=(0.0, 1.0))
    x0 = torch.rand(6, 4)
    final, x_diff = sgld_with_differentiable_tail(energy, x0, params, n_diff=4, module=net)
    with frozen(net):
        plain = sgld(energy, x0, steps=4, step_size=0.2, noise=0.0)
    assert torch.allclose(final, plain, atol=1e-6)
    assert x_diff.shape == (4, 4) and x_diff.requires_grad
    assert torch.allclose(x_diff.detach(), plain[:4], atol=1e-6)
    loss = x_diff.sum()
    loss.backward()
    assert net[0].weight.grad is not None and net[0].weight.grad.abs().sum() > 0


def test_augmented_schedule_augments_between_rounds_but_not_in_the_plain_tail():
    calls = []

    def transition(x):
        calls.append(x.shape[0])
        return x

    params = LangevinParams(steps=50, step_size=0.01, noise=0.0)
    steps_seen = []
    augmented_sgld(quadratic, torch.rand(2, 3), params, transition=transition, aug_every=10, plain_steps=20,
                   callback=lambda k, x: steps_seen.append(k))
    # Rounds start at 0, 10, 20, 30, 40; augmentation before rounds 10, 20 (30 and 40 are in the plain tail).
    assert len(calls) == 2
    assert steps_seen == list(range(50))


@pytest.mark.parametrize("aug_every", [0, 7])
def test_augmented_schedule_without_transition_is_plain_sgld(aug_every):
    x = torch.rand(3, 2)
    params = LangevinParams(steps=20, step_size=0.1, noise=0.05, pixel_clamp=None)
    a = augmented_sgld(quadratic, x, params, transition=None, aug_every=aug_every,
                       generator=torch.Generator().manual_seed(1))
    b = sgld(quadratic, x, steps=20, step_size=0.1, noise=0.05, pixel_clamp=None, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(a, b)
