"""The SGLD family as pure functions.

One step, in the order the IGEBM/ICD code takes it (``noise_first``)::

    x <- x + noise * N(0, I)
    x <- clamp(x - step_size * clip(dE/dx, +-grad_clamp), pixel_clamp)

or, with ``noise_first=False`` (CLEL), the gradient is taken at x and the noise added after it.
``noise`` is the standard deviation of the added Gaussian: textbook Langevin dynamics with step eps is
``step_size=eps, noise=sqrt(2 * eps)``. Parameters are frozen while sampling and gradients are taken with
respect to the input only; device and dtype follow ``x``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn

Energy = Callable[[Tensor], Tensor]
StepCallback = Callable[[int, Tensor], None]


@dataclass(frozen=True)
class LangevinParams:
    """The parameters of one SGLD chain (names match the ``sampler`` spec section)."""

    steps: int
    step_size: float
    noise: float
    noise_first: bool = True
    grad_clamp: float | None = None
    pixel_clamp: tuple[float, float] | None = (0.0, 1.0)

    def step_kwargs(self) -> dict:
        """The keyword arguments of one step (everything but ``steps``) for :func:`sgld` and friends."""
        return {"step_size": self.step_size, "noise": self.noise, "grad_clamp": self.grad_clamp,
                "pixel_clamp": self.pixel_clamp, "noise_first": self.noise_first}


@contextmanager
def frozen(*modules: nn.Module | None) -> Iterator[None]:
    """Switch off ``requires_grad`` of every parameter for the duration of the block."""
    params = [p for m in modules if m is not None for p in m.parameters()]
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(params, flags, strict=True):
            p.requires_grad_(flag)


def input_grad(energy: Energy, x: Tensor) -> Tensor:
    """dE/dx of the summed energy, without keeping a graph."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(energy(x).sum(), x)
    return grad


def sgld(
    energy: Energy,
    x: Tensor,
    *,
    steps: int,
    step_size: float,
    noise: float | Tensor,
    grad_clamp: float | None = None,
    pixel_clamp: tuple[float, float] | None = (0.0, 1.0),
    noise_first: bool = True,
    generator: torch.Generator | None = None,
    callback: StepCallback | None = None,
) -> Tensor:
    """Run ``steps`` SGLD steps from ``x`` (not modified) and return the final state.

    ``noise`` is one standard deviation, or one per chain (a (B,) tensor: EBCLR's multi-stage SGLD).

    ``energy`` maps a batch to per-sample energies (B,) or per-scale energies (B, S), which are summed. If it
    is an ``nn.Module`` its parameters are frozen for the run; otherwise freeze them with :func:`frozen`.
    ``callback(k, x)`` sees the state after step k (0-based); it must not modify it.
    """
    module = energy if isinstance(energy, nn.Module) else None
    x = x.detach().clone()
    if isinstance(noise, Tensor):
        scale: float | Tensor = noise.to(x).view(-1, *([1] * (x.dim() - 1)))
        eps = torch.empty_like(x)
    else:
        scale = noise
        eps = torch.empty_like(x) if noise > 0 else None

    def add_noise() -> None:
        assert eps is not None
        eps.normal_(generator=generator)
        x.add_(eps.mul_(scale) if isinstance(scale, Tensor) else eps, alpha=1.0 if isinstance(scale, Tensor) else scale)

    with frozen(module), torch.enable_grad():
        for k in range(steps):
            if noise_first and eps is not None:
                add_noise()
            x.requires_grad_(True)
            (grad,) = torch.autograd.grad(energy(x).sum(), x)
            x = x.detach()
            if grad_clamp is not None:
                grad.clamp_(-grad_clamp, grad_clamp)
            x.add_(grad, alpha=-step_size)
            if not noise_first and eps is not None:
                add_noise()
            if pixel_clamp is not None:
                x.clamp_(pixel_clamp[0], pixel_clamp[1])
            if callback is not None:
                callback(k, x)
    return x


def msgld_noise(visits: Tensor, sigma_min: float, sigma_max: float, decay: float) -> Tensor:
    """EBCLR's multi-stage noise (eq. 22): sigma_min + (sigma_max - sigma_min) [1 - visits / decay]_+ per chain,
    ``visits`` counting how often each chain has already started an SGLD run."""
    ramp = (1.0 - visits.float() / decay).clamp_min(0.0)
    return sigma_min + (sigma_max - sigma_min) * ramp


def sgld_params(energy: Energy, x: Tensor, params: LangevinParams, **kwargs) -> Tensor:
    """:func:`sgld` with a :class:`LangevinParams` bundle."""
    return sgld(energy, x, steps=params.steps, **params.step_kwargs(), **kwargs)


def differentiable_step(
    energy: Energy,
    x: Tensor,
    *,
    step_size: float,
    noise: float,
    grad_clamp: float | None = None,
    pixel_clamp: tuple[float, float] | None = (0.0, 1.0),
    noise_first: bool = True,
    generator: torch.Generator | None = None,
) -> Tensor:
    """One SGLD step whose result stays differentiable with respect to the energy's parameters.

    The gradient dE/dx is taken with ``create_graph=True`` while the parameters require grad, so a loss on
    the returned state reaches them through the step (ICD's L_opt). The starting state is a leaf: nothing
    flows into earlier steps.
    """
    start = x.detach().clone()
    if noise_first and noise > 0:
        start = start + noise * torch.randn(start.shape, generator=generator, device=start.device, dtype=start.dtype)
    start.requires_grad_(True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(energy(start).sum(), start, create_graph=True)
        if grad_clamp is not None:
            grad = grad.clamp(-grad_clamp, grad_clamp)
        out = start - step_size * grad
        if not noise_first and noise > 0:
            out = out + noise * torch.randn(out.shape, generator=generator, device=out.device, dtype=out.dtype)
        if pixel_clamp is not None:
            out = out.clamp(pixel_clamp[0], pixel_clamp[1])
    return out


def sgld_with_differentiable_tail(
    energy: Energy,
    x: Tensor,
    params: LangevinParams,
    *,
    n_diff: int,
    module: nn.Module,
    generator: torch.Generator | None = None,
    callback: StepCallback | None = None,
    rows_energy: Callable[[slice], Energy] | None = None,
) -> tuple[Tensor, Tensor]:
    """ICD's training chain: ``steps - 1`` steps with ``module`` frozen, then a last step kept
    differentiable on the first ``n_diff`` chains. Returns (all final states, detached; the differentiable
    final states of those ``n_diff`` chains).

    ``rows_energy(rows)`` gives the energy of a subset of the chains when the energy depends on the chain
    (a conditional net with one label per chain).
    """
    step = {**params.step_kwargs(), "generator": generator}
    with frozen(module):
        x = sgld(energy, x, steps=params.steps - 1, callback=callback, **step)
    n_diff = min(n_diff, x.shape[0])
    head = energy if rows_energy is None else rows_energy(slice(0, n_diff))
    x_diff = differentiable_step(head, x[:n_diff], **step)
    parts = [x_diff.detach()]
    if n_diff < x.shape[0]:
        tail = energy if rows_energy is None else rows_energy(slice(n_diff, None))
        with frozen(module):
            parts.append(sgld(tail, x[n_diff:], steps=1, **step))
    x_final = torch.cat(parts)
    if callback is not None:
        callback(params.steps - 1, x_final)
    return x_final, x_diff


def augmented_sgld(
    energy: Energy,
    x: Tensor,
    params: LangevinParams,
    *,
    transition: Callable[[Tensor], Tensor] | None,
    aug_every: int,
    plain_steps: int = 0,
    generator: torch.Generator | None = None,
    callback: StepCallback | None = None,
) -> Tensor:
    """ICD's test-time sampler (Algorithm 2): rounds of ``aug_every`` SGLD steps with a random augmentation
    of every chain between rounds; the last ``plain_steps`` steps run without augmentation.
    With ``aug_every == 0`` or no transition this is plain :func:`sgld`.
    """
    total = params.steps
    chunk = aug_every if (aug_every > 0 and transition is not None) else total
    done = 0
    while done < total:
        if done > 0 and chunk < total and done < total - plain_steps:
            x = transition(x)
        n = min(chunk, total - done)
        offset = done
        x = sgld(
            energy,
            x,
            steps=n,
            **params.step_kwargs(),
            generator=generator,
            callback=(lambda k, s, o=offset: callback(o + k, s)) if callback else None,
        )
        done += n
    return x
