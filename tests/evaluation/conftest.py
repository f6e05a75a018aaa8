"""Synthetic labelled images drawn with torch, and a judge trained on them once per session."""

from __future__ import annotations

import pytest
import torch

from ebmctl.data.base import DataInfo, TensorImageDataset
from ebmctl.evaluation.judges import Judge, train_judge

SHAPE_NAMES = ("square", "circle", "triangle", "cross")


def _draw_shapes(
    n: int, seed: int, *, classes: int = 2, size: int = 16, channels: int = 3, name: str = "toyshapes"
) -> TensorImageDataset:
    """``n`` images of one bright shape (class = shape) on a dark background, random colour, size, place."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (n,), generator=g)
    r = size * (0.18 + 0.12 * torch.rand(n, 1, 1, generator=g))
    cx = r + 1 + (size - 2 * r - 2) * torch.rand(n, 1, 1, generator=g)
    cy = r + 1 + (size - 2 * r - 2) * torch.rand(n, 1, 1, generator=g)
    grid = torch.arange(size, dtype=torch.float32) + 0.5
    dx, dy = grid[None, None, :] - cx, grid[None, :, None] - cy
    masks = torch.stack(
        [
            torch.maximum(dx.abs(), dy.abs()) <= 0.85 * r,
            dx**2 + dy**2 <= r**2,
            (dy <= 0.8 * r) & (dy >= -0.9 * r + 1.9 * dx.abs()),
            ((dx.abs() <= 0.3 * r) & (dy.abs() <= r)) | ((dy.abs() <= 0.3 * r) & (dx.abs() <= r)),
        ]
    )[labels, torch.arange(n)]
    colour = 0.5 + 0.5 * torch.rand(n, channels, 1, 1, generator=g)
    background = 0.3 * torch.rand(n, channels, 1, 1, generator=g)
    images = background + masks[:, None].float() * (colour - background)
    info = DataInfo(name, "image", "train", (channels, size, size), classes, SHAPE_NAMES[:classes])
    return TensorImageDataset(info, (images * 255).round().to(torch.uint8), labels)


@pytest.fixture(scope="session")
def draw_shapes():
    """The drawing function: ``draw_shapes(n, seed, classes=2, size=16, channels=3, name="toyshapes")``."""
    return _draw_shapes


@pytest.fixture(scope="session")
def toy_judge() -> Judge:
    """A 3-class judge on 16x16 shapes, trained for a few seconds."""
    train = _draw_shapes(600, seed=1, classes=3)
    test = _draw_shapes(300, seed=2, classes=3)
    return train_judge(train, test_dataset=test, steps=80, batch_size=32, seed=0)
