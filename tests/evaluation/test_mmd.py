"""MMD and mode coverage on 2D points."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import ebmctl.evaluation.mmd as mmd_module
from ebmctl.evaluation.mmd import mmd_rbf, mode_coverage


def test_unbiased_estimate_by_hand():
    # x = y = {(0,0), (1,0)}, one bandwidth s = 1, k01 = exp(-1/2):
    # kxx = kyy = k01 (off-diagonal only), kxy = (2 + 2 k01) / 4 -> mmd^2 = k01 - 1 (negative: unbiased)
    pts = [[0.0, 0.0], [1.0, 0.0]]
    assert mmd_rbf(pts, pts, bandwidths=(1.0,)) == pytest.approx(math.exp(-0.5) - 1.0)


def test_same_distribution_small_shifted_large():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(600, 2)), rng.normal(size=(600, 2))
    same = mmd_rbf(x, y)
    shifted = mmd_rbf(x, y + np.array([1.0, 0.0]))
    assert abs(same) < 0.01
    assert shifted > 0.1
    assert shifted > 20 * abs(same)
    assert mmd_rbf(y + 1.0, x) == pytest.approx(mmd_rbf(x, y + 1.0))


def test_blocks_do_not_change_the_result(monkeypatch):
    rng = np.random.default_rng(1)
    x, y = torch.as_tensor(rng.normal(size=(300, 2))), torch.as_tensor(rng.normal(0.3, 1.0, size=(200, 2)))
    whole = mmd_rbf(x, y)
    monkeypatch.setattr(mmd_module, "_BLOCK_ELEMENTS", 1000)
    assert mmd_rbf(x, y) == pytest.approx(whole, rel=1e-9, abs=1e-12)


def test_bad_points_are_refused():
    with pytest.raises(ValueError, match="NaN"):
        mmd_rbf([[0.0, np.nan], [1.0, 1.0]], [[0.0, 0.0], [1.0, 1.0]])
    with pytest.raises(ValueError, match="dimension"):
        mmd_rbf(np.zeros((4, 2)), np.zeros((4, 3)))
    with pytest.raises(ValueError, match="positive"):
        mmd_rbf(np.zeros((4, 2)), np.ones((4, 2)), bandwidths=(0.0,))


def test_mode_coverage_counts():
    angles = np.arange(8) * np.pi / 4
    centers = 2.0 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    rng = np.random.default_rng(2)
    near = np.concatenate([c + 0.01 * rng.normal(size=(10, 2)) for c in centers[:6]])
    far = np.full((5, 2), 10.0)
    result = mode_coverage(np.concatenate([near, far]), centers, radius=0.1)
    assert result.covered == pytest.approx(6 / 8)
    assert result.counts.tolist() == [10] * 6 + [0, 0]
    assert result.quality == pytest.approx(60 / 65)
    assert mode_coverage(near, centers, radius=0.1, min_count=11).covered == 0.0
    covered, counts, quality = mode_coverage(near, centers, radius=0.1)
    assert (covered, quality, int(counts.sum())) == (0.75, 1.0, 60)
