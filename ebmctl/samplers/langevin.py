"""The SGLD family as pure functions.

One step, in the order the IGEBM/ICD code takes it (``noise_first``)::

    x <- x + noise * N(0, I)
    x <- clamp(x - step_size * clip(dE/dx, +-grad_clamp), pixel_clamp)

or, with ``noise_first=False`` (CLEL), the gradient is taken at x and the noise added after it.
``noise`` is the standard deviation of the added Gaussian: textbook Langevin dynamics with step eps is
``step_size=eps, noise=sqrt(2 * eps)``. Parameters are frozen while sampling and gradients are taken with
respect to the input only; device and dtype follow ``x``. How fast a step runs (memory layout, bf16 energy,
cached derived weights, CUDA graphs) is :mod:`ebmctl.samplers.fastpath`'s business and never changes its maths.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ebmctl.samplers.fastpath import cached_weights, chain_layout, energy_precision, replay_cuda_graph

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
    channels_last: bool = False
    precision: str = "fp32"
    cuda_graph: bool = False

    def step_kwargs(self) -> dict:
        """The keyword arguments of one step (everything but ``steps`` and the speed options)."""
        return {"step_size": self.step_size, "noise": self.noise, "grad_clamp": self.grad_clamp,
                "pixel_clamp": self.pixel_clamp, "noise_first": self.noise_first}

    def speed_kwargs(self) -> dict:
        """How :func:`sgld` runs the steps: layout, energy precision, CUDA graph capture."""
        return {"channels_last": self.channels_last, "precision": self.precision, "cuda_graph": self.cuda_graph}

    def sgld_kwargs(self) -> dict:
        """Everything :func:`sgld` takes from these parameters but ``steps``."""
        return {**self.step_kwargs(), **self.speed_kwargs()}


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
    channels_last: bool = False,
    precision: str = "fp32",
    cuda_graph: bool = False,
) -> Tensor:
    """Run ``steps`` SGLD steps from ``x`` (not modified) and return the final state.

    ``noise`` is one standard deviation, or one per chain (a (B,) tensor: EBCLR's multi-stage SGLD).

    ``energy`` maps a batch to per-sample energies (B,) or per-scale energies (B, S), which are summed. If it
    is an ``nn.Module`` its parameters are frozen for the run; otherwise freeze them with :func:`frozen`.
    ``callback(k, x)`` sees the state after step k (0-based); it must not modify it.

    The speed options never change the step's arithmetic beyond float rounding: ``channels_last`` runs the
    chains in NHWC, ``precision="bf16"`` evaluates the energy under bf16 autocast (chains, gradients and
    updates stay in ``x``'s dtype), ``cuda_graph`` captures the step once and replays it on a GPU.
    Derived weights (spectral norm, weight standardisation) are computed once per call.
    """
    module = energy if isinstance(energy, nn.Module) else None
    shape_like = x
    x = chain_layout(x.detach().clone(), channels_last)
    # The noise buffer keeps the caller's layout so a seeded run draws the same numbers in the same places.
    eps = torch.empty_like(shape_like, memory_format=torch.contiguous_format)
    scale = noise.to(x).view(-1, *([1] * (x.dim() - 1))) if isinstance(noise, Tensor) else noise
    has_noise = isinstance(noise, Tensor) or noise > 0

    def add_noise() -> None:
        eps.normal_(generator=generator)
        if isinstance(scale, Tensor):
            x.add_(eps.mul_(scale))
        else:
            x.add_(eps, alpha=scale)

    def step() -> None:
        if noise_first and has_noise:
            add_noise()
        leaf = x.detach().requires_grad_(True)
        with autocast:
            e = energy(leaf).sum()
        (grad,) = torch.autograd.grad(e, leaf)
        if grad_clamp is not None:
            grad.clamp_(-grad_clamp, grad_clamp)
        x.add_(grad, alpha=-step_size)
        if not noise_first and has_noise:
            add_noise()
        if pixel_clamp is not None:
            x.clamp_(pixel_clamp[0], pixel_clamp[1])

    autocast = energy_precision(precision, x.device)
    with frozen(module), cached_weights(), torch.enable_grad():
        report = (lambda k: callback(k, x)) if callback is not None else None
        graphed = (cuda_graph and x.is_cuda and steps > 0
                   and replay_cuda_graph(step, steps, report, generator))
        if not graphed:
            for k in range(steps):
                step()
                if report is not None:
                    report(k)
    return x.contiguous() if channels_last else x


def msgld_noise(visits: Tensor, sigma_min: float, sigma_max: float, decay: float) -> Tensor:
    """EBCLR's multi-stage noise (eq. 22): sigma_min + (sigma_max - sigma_min) [1 - visits / decay]_+ per chain,
    ``visits`` counting how often each chain has already started an SGLD run."""
    ramp = (1.0 - visits.float() / decay).clamp_min(0.0)
    return sigma_min + (sigma_max - sigma_min) * ramp


def sgld_params(energy: Energy, x: Tensor, params: LangevinParams, **kwargs) -> Tensor:
    """:func:`sgld` with a :class:`LangevinParams` bundle."""
    return sgld(energy, x, steps=params.steps, **params.sgld_kwargs(), **kwargs)


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
    (a conditional net with one label per chain). The differentiable step always runs in float32.
    """
    step = {**params.step_kwargs(), "generator": generator}
    with frozen(module):
        x = sgld(energy, x, steps=params.steps - 1, callback=callback, **step, **params.speed_kwargs())
    n_diff = min(n_diff, x.shape[0])
    head = energy if rows_energy is None else rows_energy(slice(0, n_diff))
    x_diff = differentiable_step(head, x[:n_diff], **step)
    parts = [x_diff.detach()]
    if n_diff < x.shape[0]:
        tail = energy if rows_energy is None else rows_energy(slice(n_diff, None))
        with frozen(module):
            parts.append(sgld(tail, x[n_diff:], steps=1, **step, **params.speed_kwargs()))
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
            **params.sgld_kwargs(),
            generator=generator,
            callback=(lambda k, s, o=offset: callback(o + k, s)) if callback else None,
        )
        done += n
    return x
