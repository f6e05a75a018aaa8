"""Energies of a net as one number per sample, and the OOD scores an energy gives."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from ebmctl.samplers.langevin import frozen, input_grad


def summed_energy(net: nn.Module, y: Tensor | None = None) -> Callable[[Tensor], Tensor]:
    """E(x) as one number per sample: the net's per-scale energies (B, S) summed over S."""
    return lambda x: net(x, y).sum(dim=1)


def energy_scores(energy: Callable[[Tensor], Tensor], module: nn.Module, x: Tensor, names: list[str]) -> dict[str, Tensor]:
    """OOD scores with one sign convention, higher = more in-distribution:
    ``energy`` = -E(x); ``grad_norm`` = -||dE/dx||_2 (small gradients where the model puts its mass)."""
    out: dict[str, Tensor] = {}
    with frozen(module):
        if "energy" in names:
            with torch.no_grad():
                out["energy"] = -energy(x).detach()
        if "grad_norm" in names:
            out["grad_norm"] = -input_grad(energy, x).flatten(1).norm(dim=1)
    return out
