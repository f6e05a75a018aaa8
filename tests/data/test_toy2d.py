"""2D toy densities: scales, structure and determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ebmctl.data import load_dataset, mode_centers
from ebmctl.data.embedded.seeding import split_rng
from ebmctl.data.embedded.toy2d import sample_toy2d

TOYS = ["8gaussians", "rings", "moons", "swissroll", "checkerboard", "pinwheel"]


@pytest.mark.parametrize("name", TOYS)
def test_points_sizes_types_and_scale(name):
    train, test = load_dataset(name), load_dataset(name, split="test")
    assert len(train) == 50000 and len(test) == 5000
    assert train.info.kind == "points" and train.info.shape == (2,)
    x, y = train[0]
    assert x.dtype == torch.float32 and x.shape == (2,) and isinstance(y, int)
    pts = train.points.numpy()
    assert np.isfinite(pts).all()
    assert np.abs(pts).max() < 6.0 and np.quantile(np.abs(pts), 0.99) < 4.5
    assert pts.std(0).min() > 0.5  # spread over the plane, not collapsed
    if name != "8gaussians":
        assert bool((train.labels() == -1).all())


@pytest.mark.parametrize("name", TOYS)
def test_deterministic_per_seed_and_split(name):
    a = load_dataset(name, split="test", seed=5).points
    b = load_dataset(name, split="test", seed=6).points
    c = load_dataset(name, split="train", seed=5).points[:5000]
    assert not torch.equal(a, b) and not torch.equal(a, c)
    again, _ = sample_toy2d(name, 5000, split_rng(name, "test", 5))
    assert np.array_equal(again, a.numpy())


def test_eight_gaussians_modes():
    ds = load_dataset("8gaussians")
    centres = mode_centers("8gaussians")
    assert centres.shape == (8, 2)
    np.testing.assert_allclose(np.linalg.norm(centres, axis=1), 4 / 1.414, rtol=1e-5)
    pts, labels = ds.points.numpy(), ds.labels().numpy()
    nearest = np.linalg.norm(pts[:, None] - centres[None], axis=2).argmin(1)
    assert (nearest == labels).mean() > 0.995  # neighbouring modes are 3 std from their midpoint
    np.testing.assert_allclose(np.bincount(labels, minlength=8) / len(labels), 1 / 8, atol=0.01)
    offsets = pts - centres[labels]
    np.testing.assert_allclose(offsets.std(0), 0.5 / 1.414, rtol=0.03)
    assert mode_centers("rings") is None


def test_rings_radii():
    r = np.linalg.norm(load_dataset("rings").points.numpy(), axis=1)
    dist = np.abs(r[:, None] - np.array([0.75, 1.5, 2.25, 3.0])[None]).min(1)
    assert np.quantile(dist, 0.99) < 0.3


def test_checkerboard_uses_one_colour_of_squares():
    pts = load_dataset("checkerboard").points.numpy()
    parity = (np.floor(pts[:, 0] / 2) + np.floor(pts[:, 1] / 2)) % 2
    assert np.all(parity == parity[0]) and np.abs(pts).max() <= 4.0


def test_moons_and_swissroll_are_not_blobs():
    for name in ("moons", "swissroll", "pinwheel"):
        pts = load_dataset(name).points.numpy()
        # a curved 1D structure leaves the region around its mean nearly empty compared with a Gaussian
        near_mean = (np.linalg.norm(pts - pts.mean(0), axis=1) < 0.3).mean()
        assert near_mean < 0.02, name
