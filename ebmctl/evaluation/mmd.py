"""Sample-quality measures for low-dimensional data (2D toy densities): MMD and mode coverage."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch

DEFAULT_BANDWIDTHS = (0.1, 0.25, 0.5, 1.0, 2.0)
_BLOCK_ELEMENTS = 1 << 22  # kernel entries per block (32 MB in float64)


def _points(x: object, name: str, min_rows: int = 2) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x.detach().cpu())
    t = t.to(torch.float64).reshape(len(t), -1)
    if len(t) < min_rows:
        raise ValueError(f"{name}: need at least {min_rows} points, got {len(t)}")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name}: points contain NaN or infinite values")
    return t


def _kernel_sum(a: torch.Tensor, b: torch.Tensor, gammas: torch.Tensor, same: bool) -> float:
    """Sum of k(a_i, b_j) over all pairs (i != j when ``same``), k a sum of RBF kernels."""
    total = 0.0
    rows = max(1, _BLOCK_ELEMENTS // len(b))
    for start in range(0, len(a), rows):
        d2 = torch.cdist(a[start : start + rows], b).square_()
        total += sum(float(torch.exp(-g * d2).sum()) for g in gammas.tolist())
    if same:
        total -= len(a) * len(gammas)  # k(x, x) = 1 per bandwidth
    return total


def mmd_rbf(x: object, y: object, bandwidths: Sequence[float] = DEFAULT_BANDWIDTHS) -> float:
    """Unbiased estimate of the squared MMD between samples ``x`` (N, D) and ``y`` (M, D).

    The kernel is a sum of RBF kernels exp(-|a - b|^2 / (2 s^2)) over ``bandwidths`` s. Being unbiased, the
    estimate can be slightly negative when both samples come from one distribution."""
    a, b = _points(x, "x"), _points(y, "y")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"x has dimension {a.shape[1]}, y has {b.shape[1]}")
    if not bandwidths or min(bandwidths) <= 0:
        raise ValueError("bandwidths must be positive")
    gammas = 1.0 / (2.0 * torch.tensor(bandwidths, dtype=torch.float64) ** 2)
    n, m = len(a), len(b)
    kxx = _kernel_sum(a, a, gammas, same=True) / (n * (n - 1))
    kyy = _kernel_sum(b, b, gammas, same=True) / (m * (m - 1))
    kxy = _kernel_sum(a, b, gammas, same=False) / (n * m)
    return kxx + kyy - 2.0 * kxy


class ModeCoverage(NamedTuple):
    """``covered``: fraction of modes with at least ``min_count`` samples within the radius; ``counts``:
    samples per mode (each sample counted at its nearest mode, when within the radius); ``quality``:
    fraction of samples within the radius of some mode."""

    covered: float
    counts: np.ndarray
    quality: float


def mode_coverage(samples: object, centers: object, radius: float, min_count: int = 1) -> ModeCoverage:
    """How many modes of a mixture the samples reach, and how many samples land near a mode."""
    s, c = _points(samples, "samples", 1), _points(centers, "centers", 1)
    if s.shape[1] != c.shape[1]:
        raise ValueError(f"samples have dimension {s.shape[1]}, centers {c.shape[1]}")
    if radius <= 0 or min_count < 1:
        raise ValueError("radius must be positive and min_count >= 1")
    dist, nearest = torch.cdist(s, c).min(dim=1)
    near = dist <= radius
    counts = torch.bincount(nearest[near], minlength=len(c)).numpy().astype(np.int64)
    return ModeCoverage(
        covered=float(np.mean(counts >= min_count)),
        counts=counts,
        quality=float(near.double().mean()),
    )
