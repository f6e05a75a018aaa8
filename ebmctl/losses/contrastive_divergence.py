"""Contrastive-divergence losses as pure functions: IGEBM's and ICD's with energy regularisation, ICD's
nearest-neighbour entropy term, and the Hat EBM's tempered loss."""

from __future__ import annotations

import torch
from torch import Tensor


def cd_loss(e_pos: Tensor, e_neg: Tensor, l2: float) -> Tensor:
    """Contrastive divergence with energy regularisation, as IGEBM and ICD write it:
    mean E+ - mean E- + l2 * (mean E+^2 + mean E-^2), the means taken over every sample and scale."""
    return e_pos.mean() - e_neg.mean() + l2 * (e_pos.pow(2).mean() + e_neg.pow(2).mean())


def nn_entropy(x: Tensor, refs: Tensor, floor: float = 1e-12) -> Tensor:
    """ICD's nearest-neighbour entropy estimate (up to constants): mean_i log min_j ||x_i - r_j||_2.

    An exact tie (two chains clamped to the same corner of the box) is floored at ``floor`` instead of -inf."""
    dist = torch.cdist(x.flatten(1), refs.flatten(1))
    return dist.min(dim=1).values.clamp_min(floor).log().mean()


def hat_loss(h_pos: Tensor, h_neg: Tensor, temperature: float) -> Tensor:
    """(mean H(x+) - mean H(x-)) / T."""
    return (h_pos.mean() - h_neg.mean()) / temperature
