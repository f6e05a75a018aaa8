"""Hat EBM's Langevin sampler on the pair (y, z) of U(y, z) = H(G(z) + y) / T (paper 003, eqs. 6-7).

One step updates the residual image first, then the latent, each with the other held at its newest value::

    y <- y - (eps_y^2 / 2) * clip(d/dy [H(G(z) + y) / T + tau * ||y||^2]) + eps_y * N(0, I)
    z <- z - (eps_z^2 / 2) * d/dz H(G(z) + y) / T + eps_z * N(0, I)

``clip`` rescales, per sample, a residual gradient whose step (eps_y^2 / 2) * g is longer than
``max_residual_step`` in L2 norm to exactly that length (the released code's clip_by_norm; the latent step is
never clipped). ``tau`` is the optional Gaussian prior on y, tau = 1 / (2 sigma^2), added outside the
temperature as the released code adds it. ``eps_z = 0`` keeps z fixed: the conditional Hat EBM of
synthesis. The released code updates z before y within a step; this follows the paper's order. Parameters of
H and G are frozen while sampling and gradients are taken with respect to y and z only. The speed options are
``sgld``'s (:mod:`ebmctl.samplers.fastpath`): derived weights computed once per run, NHWC image chains, and the
hat network under bf16 autocast; they never change the arithmetic beyond float rounding.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor, nn

from ebmctl.samplers.fastpath import cached_weights, chain_layout, energy_precision
from ebmctl.samplers.langevin import frozen

HatCallback = Callable[[int, Tensor, Tensor, Tensor], None]


class HatChains(NamedTuple):
    """Where the chains end: latents z, residuals y and the generator's output g = G(z) (x = g + y)."""

    z: Tensor
    y: Tensor
    g: Tensor


@dataclass(frozen=True)
class HatLangevinParams:
    """Settings of the joint (y, z) sampler."""

    steps: int
    epsilon: float
    epsilon_latent: float = 0.0
    temperature: float = 1.0
    max_residual_step: float | None = 2.5
    prior_tau: float = 0.0
    noise: bool = True
    channels_last: bool = False  # image chains (y, G(z)) in NHWC (ebmctl.samplers.fastpath)
    precision: str = "fp32"  # the hat network runs under bf16 autocast when "bf16"; chains and updates stay fp32


def clip_step(grad: Tensor, step: float, max_norm: float | None) -> Tensor:
    """Rescale each sample's gradient so that ``step * grad`` is at most ``max_norm`` long (L2)."""
    if max_norm is None:
        return grad
    limit = max_norm / step
    norms = grad.flatten(1).norm(dim=1).clamp_min(limit)
    return grad * (limit / norms).view(-1, *([1] * (grad.dim() - 1)))


def residual_energy_grad(hat: nn.Module, g: Tensor, y: Tensor, temperature: float, prior_tau: float,
                         autocast: AbstractContextManager | None = None) -> Tensor:
    """d/dy [sum H(g + y) / T + tau * ||y||^2] with g = G(z) held fixed."""
    with torch.enable_grad():
        y = y.detach().requires_grad_(True)
        with autocast or nullcontext():
            h = hat(g + y)
        energy = h.float().sum() / temperature
        if prior_tau > 0:
            energy = energy + prior_tau * y.pow(2).sum()
        (grad,) = torch.autograd.grad(energy, y)
    return grad


def latent_energy_grad(hat: nn.Module, gen: nn.Module, z: Tensor, y: Tensor, temperature: float,
                       autocast: AbstractContextManager | None = None) -> Tensor:
    """d/dz sum H(G(z) + y) / T."""
    with torch.enable_grad():
        z = z.detach().requires_grad_(True)
        g = gen(z)
        with autocast or nullcontext():
            h = hat(g + y)
        (grad,) = torch.autograd.grad(h.float().sum() / temperature, z)
    return grad


def hat_langevin(
    hat: nn.Module,
    gen: nn.Module,
    z: Tensor,
    y: Tensor | None,
    params: HatLangevinParams,
    *,
    callback: HatCallback | None = None,
) -> HatChains:
    """Run ``params.steps`` joint steps from (z, y) (not modified; y = None starts from 0) and return the final
    state with G(z). ``callback(k, z, y, g)`` sees the state after step k (0-based), g = G(z)."""
    eps_y, eps_z = params.epsilon, params.epsilon_latent
    step_y, step_z = eps_y**2 / 2, eps_z**2 / 2
    z = z.detach().clone()
    autocast = energy_precision(params.precision, z.device)
    with frozen(hat, gen), cached_weights(), torch.no_grad():
        g = chain_layout(gen(z), params.channels_last)
        y = torch.zeros_like(g) if y is None else chain_layout(y.detach().clone(), params.channels_last)
        for k in range(params.steps):
            grad = clip_step(residual_energy_grad(hat, g, y, params.temperature, params.prior_tau, autocast), step_y,
                             params.max_residual_step)
            y.add_(grad, alpha=-step_y)
            if params.noise:
                y.add_(torch.randn(y.shape, dtype=y.dtype, device=y.device), alpha=eps_y)  # drawn in NCHW order
            if eps_z > 0:
                z.add_(latent_energy_grad(hat, gen, z, y, params.temperature, autocast), alpha=-step_z)
                if params.noise:
                    z.add_(torch.randn_like(z), alpha=eps_z)
                g = chain_layout(gen(z), params.channels_last)
            if callback is not None:
                callback(k, z, y, g)
    if params.channels_last:
        y, g = y.contiguous(), g.contiguous()
    return HatChains(z, y, g)
