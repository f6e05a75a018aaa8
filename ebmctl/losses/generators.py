"""Losses of generators as pure functions: SN-GAN's hinge losses, and the regression of a Hat EBM's generator
onto its past samples."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def hinge_discriminator_loss(d_real: Tensor, d_fake: Tensor) -> Tensor:
    """mean relu(1 - D(x)) + mean relu(1 + D(G(z)))."""
    return F.relu(1.0 - d_real).mean() + F.relu(1.0 + d_fake).mean()


def hinge_generator_loss(d_fake: Tensor) -> Tensor:
    """-mean D(G(z))."""
    return -d_fake.mean()


def generator_loss(fake: Tensor, target: Tensor, factor: float) -> Tensor:
    """factor * mean (G(z) - x)^2: the generator regresses onto past Hat EBM samples (eq. 12)."""
    return factor * (fake - target).pow(2).mean()
