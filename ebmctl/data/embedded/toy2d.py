"""2D toy densities of the EBM and normalising-flow literature, as float32 points in about [-4, 4]^2.

Definitions and scales follow the toy data of FFJORD (Grathwohl et al. 2019), which later EBM papers reuse.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ebmctl.data.base import DataRequest, TensorPointDataset
from ebmctl.data.embedded.seeding import split_rng

SPLIT_SIZES = {"train": 50000, "test": 5000}

_SQRT2 = np.sqrt(2.0)
_UNIT_8 = np.array(
    [[1, 0], [-1, 0], [0, 1], [0, -1], [1 / _SQRT2, 1 / _SQRT2], [1 / _SQRT2, -1 / _SQRT2],
     [-1 / _SQRT2, 1 / _SQRT2], [-1 / _SQRT2, -1 / _SQRT2]]
)  # fmt: skip
_EIGHT_SCALE = 4.0 / 1.414  # FFJORD: centres at radius 4, everything then divided by 1.414
_EIGHT_STD = 0.5 / 1.414


def eight_gaussians(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Eight isotropic Gaussians on a circle of radius ~2.83; labels are the mode indices."""
    mode = rng.integers(0, 8, n)
    return _UNIT_8[mode] * _EIGHT_SCALE + rng.normal(0.0, _EIGHT_STD, (n, 2)), mode


def rings(n: int, rng: np.random.Generator) -> np.ndarray:
    """Four concentric circles of radii 3, 2.25, 1.5, 0.75 with Gaussian noise 0.08."""
    radius = 0.75 * rng.integers(1, 5, n)
    angle = rng.uniform(0.0, 2 * np.pi, n)
    points = radius[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    return points + rng.normal(0.0, 0.08, (n, 2))


def moons(n: int, rng: np.random.Generator) -> np.ndarray:
    """scikit-learn's two moons with noise 0.1, scaled by 2 and shifted by (-1, -0.2)."""
    t = rng.uniform(0.0, np.pi, n)
    upper = rng.random(n) < 0.5
    x = np.where(upper, np.cos(t), 1.0 - np.cos(t))
    y = np.where(upper, np.sin(t), 0.5 - np.sin(t))
    points = np.stack([x, y], axis=1) + rng.normal(0.0, 0.1, (n, 2))
    return points * 2.0 + np.array([-1.0, -0.2])


def swissroll(n: int, rng: np.random.Generator) -> np.ndarray:
    """scikit-learn's swiss roll (noise 1.0) projected on (x, z) and divided by 5."""
    t = 1.5 * np.pi * (1.0 + 2.0 * rng.random(n))
    points = np.stack([t * np.cos(t), t * np.sin(t)], axis=1) + rng.normal(0.0, 1.0, (n, 2))
    return points / 5.0


def checkerboard(n: int, rng: np.random.Generator) -> np.ndarray:
    """Uniform on the eight dark squares of a 4x4 board spanning [-4, 4]^2."""
    x1 = rng.random(n) * 4.0 - 2.0
    x2 = rng.random(n) - rng.integers(0, 2, n) * 2.0 + np.floor(x1) % 2
    return np.stack([x1, x2], axis=1) * 2.0


def pinwheel(n: int, rng: np.random.Generator) -> np.ndarray:
    """Five curved arms (radial std 0.3, tangential std 0.1, rate 0.25), scaled by 2."""
    arms, rate = 5, 0.25
    features = rng.normal(0.0, 1.0, (n, 2)) * np.array([0.3, 0.1])
    features[:, 0] += 1.0
    angle = 2 * np.pi * rng.integers(0, arms, n) / arms + rate * np.exp(features[:, 0])
    cos, sin = np.cos(angle), np.sin(angle)
    x = features[:, 0] * cos + features[:, 1] * sin
    y = -features[:, 0] * sin + features[:, 1] * cos
    return 2.0 * np.stack([x, y], axis=1)


_SAMPLERS: dict[str, Callable[[int, np.random.Generator], np.ndarray]] = {
    "rings": rings,
    "moons": moons,
    "swissroll": swissroll,
    "checkerboard": checkerboard,
    "pinwheel": pinwheel,
}
TOY2D_NAMES = ("8gaussians", *_SAMPLERS)


def sample_toy2d(name: str, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` float32 points of the named density and their int64 labels (-1 except 8gaussians)."""
    if name == "8gaussians":
        points, labels = eight_gaussians(n, rng)
    else:
        points, labels = _SAMPLERS[name](n, rng), np.full(n, -1)
    return points.astype(np.float32), labels.astype(np.int64)


def mode_centers(name: str) -> np.ndarray | None:
    """The mode centres (8, 2) of ``8gaussians`` in the order of its labels; None for other datasets."""
    return (_UNIT_8 * _EIGHT_SCALE).astype(np.float32) if name == "8gaussians" else None


def build_toy2d(request: DataRequest) -> TensorPointDataset:
    """A split of a toy density drawn from the request's seed."""
    rng = split_rng(request.name, request.split, request.seed)
    points, labels = sample_toy2d(request.name, SPLIT_SIZES[request.split], rng)
    modes = request.name == "8gaussians"
    info = request.info(class_names=tuple(f"mode{i}" for i in range(8)) if modes else ())
    return TensorPointDataset(info, torch.from_numpy(points), torch.from_numpy(labels))
