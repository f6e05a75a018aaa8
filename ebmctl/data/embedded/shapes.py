"""shapes32: procedural 32x32 RGB shapes with 14 balanced binary attributes.

Each image is one shape (circle, square, triangle, diamond) in one of six colours, large (~20 px) or small
(~12 px), centred in the left or right and top or bottom half of the image (jittered inside that half), on a
light or dark background. Rendered in vectorised numpy at twice the resolution and averaged down, so edges are
antialiased.
"""

from __future__ import annotations

import numpy as np
import torch

from ebmctl.data.base import DataRequest, TensorImageDataset
from ebmctl.data.convert import convert_images
from ebmctl.data.embedded.seeding import split_rng

SHAPES = ("circle", "square", "triangle", "diamond")
COLOURS = ("red", "green", "blue", "yellow", "magenta", "cyan")
ATTRIBUTES = (*SHAPES, *COLOURS, "large", "left", "top", "light")
SIZE = 32
SPLIT_SIZES = {"train": 20000, "test": 2000}

_RGB = np.array(
    [[220, 40, 40], [40, 180, 60], [50, 80, 230], [230, 210, 40], [210, 50, 200], [40, 200, 210]],
    dtype=np.float32,
)
_RADIUS = {True: 10.0, False: 6.0}  # large: ~20 px across; small: ~12 px
_SUPER = 2  # supersampling factor; _coverage averages 2x2 blocks
_CHUNK = 2048


def render_shapes(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``n`` images: uint8 (n, 32, 32, 3) and their uint8 (n, 14) attributes."""
    shape = rng.integers(0, len(SHAPES), n)
    colour = rng.integers(0, len(COLOURS), n)
    large, left, top, light = (rng.random((4, n)) < 0.5).astype(bool)
    radius = np.where(large, _RADIUS[True], _RADIUS[False]) * rng.uniform(0.92, 1.08, n)
    cx = _centre_in_half(left, radius, rng).astype(np.float32)
    cy = _centre_in_half(top, radius, rng).astype(np.float32)
    radius = radius.astype(np.float32)
    fg = np.clip(_RGB[colour] + rng.uniform(-15, 15, (n, 3)), 0, 255).astype(np.float32)
    bg_level = np.where(light, rng.uniform(205, 240, n), rng.uniform(15, 50, n))
    bg = np.clip(bg_level[:, None] + rng.uniform(-8, 8, (n, 3)), 0, 255).astype(np.float32)

    images = np.empty((n, SIZE, SIZE, 3), dtype=np.uint8)
    for start in range(0, n, _CHUNK):
        sl = slice(start, start + _CHUNK)
        alpha = _coverage(shape[sl], cx[sl], cy[sl], radius[sl])[..., None]
        pixels = bg[sl, None, None, :] + (fg[sl, None, None, :] - bg[sl, None, None, :]) * alpha
        images[sl] = np.rint(pixels, out=pixels).astype(np.uint8)

    attributes = np.zeros((n, len(ATTRIBUTES)), dtype=np.uint8)
    attributes[np.arange(n), shape] = 1
    attributes[np.arange(n), len(SHAPES) + colour] = 1
    attributes[:, -4:] = np.stack([large, left, top, light], axis=1)
    return images, attributes


def _centre_in_half(first_half: np.ndarray, radius: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A centre coordinate inside the chosen half, keeping the whole shape inside the image."""
    lo = np.where(first_half, radius + 1.0, SIZE / 2 + 1.0)
    hi = np.where(first_half, SIZE / 2 - 1.0, SIZE - radius - 1.0)
    return lo + (hi - lo) * rng.random(len(radius))


def _coverage(shape: np.ndarray, cx: np.ndarray, cy: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Fraction of each pixel covered by the shape, float32 (n, 32, 32)."""
    n = len(shape)
    grid = (np.arange(SIZE * _SUPER, dtype=np.float32) + 0.5) / _SUPER
    mask = np.zeros((n, SIZE * _SUPER, SIZE * _SUPER), dtype=bool)
    for index in range(len(SHAPES)):
        sel = np.flatnonzero(shape == index)
        if len(sel) == 0:
            continue
        dx = (grid[None, None, :] - cx[sel, None, None]) / r[sel, None, None]
        dy = (grid[None, :, None] - cy[sel, None, None]) / r[sel, None, None]
        mask[sel] = _inside(SHAPES[index], dx, dy)
    m = mask.view(np.uint8)
    counts = m[:, 0::2, 0::2] + m[:, 1::2, 0::2] + m[:, 0::2, 1::2] + m[:, 1::2, 1::2]
    return counts.astype(np.float32) * np.float32(1 / _SUPER**2)


def _inside(name: str, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Membership on coordinates relative to the centre in units of the radius (y points down)."""
    if name == "circle":
        return dx * dx + dy * dy <= 1.0
    if name == "square":  # side 1.7 r: about the area of the circle, reads as a square at small sizes
        return np.maximum(np.abs(dx), np.abs(dy)) <= 0.85
    if name == "triangle":  # apex up, base at the bottom, as wide as it is tall
        return (dy <= 0.9) & (np.abs(dx) <= (dy + 1.0) / 1.9)
    return np.abs(dx) + np.abs(dy) <= 1.05  # diamond


def build_shapes32(request: DataRequest) -> TensorImageDataset:
    """The shapes32 split drawn from the request's seed (train and test from different streams)."""
    images, attributes = render_shapes(
        SPLIT_SIZES[request.split], split_rng("shapes32", request.split, request.seed)
    )
    tensor = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    tensor = convert_images(tensor, request.image_size, request.channels)
    labels = torch.from_numpy(attributes[:, : len(SHAPES)].argmax(axis=1)).long()
    return TensorImageDataset(
        request.info(class_names=SHAPES, attribute_names=ATTRIBUTES),
        tensor,
        labels,
        torch.from_numpy(attributes),
    )
