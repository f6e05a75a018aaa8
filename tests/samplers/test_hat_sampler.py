"""Hat EBM's joint (y, z) Langevin sampler against steps worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from ebmctl.samplers.hat import HatLangevinParams, clip_step, hat_langevin


class Quadratic(nn.Module):
    """H(x) = 1/2 sum x^2 per sample, shaped (B, 1) like the hat network."""

    def forward(self, x: Tensor) -> Tensor:
        return 0.5 * x.flatten(1).pow(2).sum(dim=1, keepdim=True)


class Linear(nn.Module):
    """G(z) = (z, 2z) for a one-dimensional z, as a (B, 1, 1, 2) image; counts its calls."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.tensor([1.0, 2.0]))
        self.calls = 0

    def forward(self, z: Tensor) -> Tensor:
        self.calls += 1
        return (z * self.a).view(-1, 1, 1, 2)


def _run(params: HatLangevinParams, z0: float = 1.0, y0: tuple[float, float] = (0.0, 0.0)) -> tuple[Tensor, Tensor]:
    z = torch.tensor([[z0]])
    y = torch.tensor(y0).view(1, 1, 1, 2)
    out = hat_langevin(Quadratic(), Linear(), z, y, params)
    return out.z, out.y


def test_one_joint_step_by_hand():
    # T = 0.5, eps_y = 0.2 (step 0.02), eps_z = 0.1 (step 0.005), z0 = 1, y0 = 0:
    # y1 = -0.02 * (G(z0) + y0) / T = -0.02 * (2, 4) = (-0.04, -0.08)
    # z1 = 1 - 0.005 * [1 * 0.96 + 2 * 1.92] / 0.5 = 1 - 0.005 * 9.6 = 0.952
    p = HatLangevinParams(steps=1, epsilon=0.2, epsilon_latent=0.1, temperature=0.5, max_residual_step=None,
                          noise=False)
    z, y = _run(p)
    assert y.flatten().tolist() == pytest.approx([-0.04, -0.08], abs=1e-7)
    assert z.item() == pytest.approx(0.952, abs=1e-7)


def test_the_prior_on_y_enters_outside_the_temperature():
    # y0 = (1, 1), tau = 1: grad_y = (G + y) / T + 2 tau y = (2, 3) / 0.5 + (2, 2) = (6, 8); y1 = (0.88, 0.84)
    # z sees y1 only through H: grad_z = [1 * 1.88 + 2 * 2.84] / 0.5 = 15.12; z1 = 1 - 0.005 * 15.12 = 0.9244
    p = HatLangevinParams(steps=1, epsilon=0.2, epsilon_latent=0.1, temperature=0.5, max_residual_step=None,
                          prior_tau=1.0, noise=False)
    z, y = _run(p, y0=(1.0, 1.0))
    assert y.flatten().tolist() == pytest.approx([0.88, 0.84], abs=1e-7)
    assert z.item() == pytest.approx(0.9244, abs=1e-7)


def test_the_residual_step_is_capped_per_sample():
    # the uncapped step 0.02 * (2, 4) is 0.0894 long; capped at 0.05 it keeps its direction
    p = HatLangevinParams(steps=1, epsilon=0.2, epsilon_latent=0.0, temperature=0.5, max_residual_step=0.05,
                          noise=False)
    _, y = _run(p)
    length = math.hypot(0.04, 0.08)
    assert y.flatten().tolist() == pytest.approx([-0.04 * 0.05 / length, -0.08 * 0.05 / length], abs=1e-7)
    assert y.norm().item() == pytest.approx(0.05, abs=1e-7)


def test_clip_step_leaves_short_steps_alone_and_caps_long_ones():
    grad = torch.tensor([[3.0, 4.0], [0.3, 0.4]])  # norms 5 and 0.5
    out = clip_step(grad, step=0.1, max_norm=0.1)  # limit on the gradient: 1
    assert out[0].tolist() == pytest.approx([0.6, 0.8])
    assert out[1].tolist() == pytest.approx([0.3, 0.4])
    assert clip_step(grad, 0.1, None) is grad


def test_noise_follows_the_update_y_then_z():
    p = HatLangevinParams(steps=1, epsilon=0.2, epsilon_latent=0.1, temperature=0.5, max_residual_step=None)
    torch.manual_seed(3)
    z, y = _run(p)
    torch.manual_seed(3)
    ny, nz = torch.randn(1, 1, 1, 2), torch.randn(1, 1)
    y_expected = torch.tensor([-0.04, -0.08]).view(1, 1, 1, 2) + 0.2 * ny
    grad_z = (torch.tensor([1.0, 2.0]) * (torch.tensor([1.0, 2.0]) + y_expected.flatten())).sum() / 0.5
    assert torch.allclose(y, y_expected, atol=1e-7)
    assert z.item() == pytest.approx(1.0 - 0.005 * grad_z.item() + 0.1 * nz.item(), abs=1e-6)


def test_fixed_latents_call_the_generator_once_and_parameters_stay_frozen():
    hat, gen = Quadratic(), Linear()
    p = HatLangevinParams(steps=5, epsilon=0.1, epsilon_latent=0.0, temperature=1.0)
    z0 = torch.randn(3, 1)
    z = hat_langevin(hat, gen, z0, torch.zeros(3, 1, 1, 2), p).z
    assert torch.equal(z, z0) and gen.calls == 1
    assert gen.a.requires_grad and gen.a.grad is None  # frozen while sampling, restored after


def test_the_callback_sees_every_step_and_inputs_are_not_modified():
    seen: list[int] = []
    z0, y0 = torch.ones(2, 1), torch.zeros(2, 1, 1, 2)
    p = HatLangevinParams(steps=4, epsilon=0.1, epsilon_latent=0.1, temperature=1.0)
    hat_langevin(Quadratic(), Linear(), z0, y0, p, callback=lambda k, z, y, g: seen.append(k))
    assert seen == [0, 1, 2, 3]
    assert torch.equal(z0, torch.ones(2, 1)) and torch.equal(y0, torch.zeros(2, 1, 1, 2))


def _shapes_nets() -> tuple[nn.Module, nn.Module]:
    from ebmctl.nets.sngan import SnganDiscriminator, SnganGenerator

    torch.manual_seed(0)
    return SnganDiscriminator(32, ndf=16, spectral_norm=False).eval(), SnganGenerator(32, nz=8, ngf=16).eval()


def _joint(hat: nn.Module, gen: nn.Module, **speed) -> tuple[Tensor, Tensor]:
    torch.manual_seed(1)
    z = torch.randn(4, 8)
    out = hat_langevin(hat, gen, z, None, HatLangevinParams(3, 1e-2, 1e-2, temperature=1.0, **speed))
    return out.z, out.y


def test_nhwc_chains_change_nothing_but_rounding():
    hat, gen = _shapes_nets()
    z, y = _joint(hat, gen)
    z_fast, y_fast = _joint(hat, gen, channels_last=True)
    assert y_fast.is_contiguous() and torch.allclose(y_fast, y, atol=1e-5) and torch.allclose(z_fast, z, atol=1e-5)


def test_bf16_energy_keeps_the_chains_in_float32_and_close():
    hat, gen = _shapes_nets()
    _, y = _joint(hat, gen)
    z_bf16, y_bf16 = _joint(hat, gen, precision="bf16")
    assert y_bf16.dtype == z_bf16.dtype == torch.float32
    assert (y_bf16 - y).abs().max() < 0.05 * y.abs().max() + 1e-3 and torch.isfinite(z_bf16).all()
