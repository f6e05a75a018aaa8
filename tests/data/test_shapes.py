"""shapes32: attribute structure and balance, and that each attribute is visible in the pixels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ebmctl.data import load_dataset
from ebmctl.data.embedded.shapes import ATTRIBUTES
from ebmctl.data.load import _load_embedded

NAMES = ("circle", "square", "triangle", "diamond", "red", "green", "blue", "yellow", "magenta", "cyan", "large",
         "left", "top", "light")  # fmt: skip


@pytest.fixture(scope="module")
def train():
    return load_dataset("shapes32", split="train")


@pytest.fixture(scope="module")
def pixels(train):
    """Images (N, 32, 32, 3) as int, attributes, and a foreground mask from the corner (background) colour."""
    x = train.images.permute(0, 2, 3, 1).numpy().astype(np.int32)
    a = train.attributes().numpy()
    corner = x[:, :1, :1, :]
    fg = np.abs(x - corner).max(axis=3) > 60
    return x, a, fg


def test_sizes_names_and_types(train):
    test = load_dataset("shapes32", split="test")
    assert len(train) == 20000 and len(test) == 2000
    assert train.info.attribute_names == NAMES == ATTRIBUTES
    assert train.info.class_names == ("circle", "square", "triangle", "diamond")
    assert train.images.shape == (20000, 3, 32, 32) and train.images.dtype == torch.uint8
    attributes = train.attributes()
    assert attributes.shape == (20000, 14) and attributes.dtype == torch.uint8


def test_one_hot_groups_and_label(train):
    a = train.attributes()
    assert bool((a[:, :4].sum(1) == 1).all()) and bool((a[:, 4:10].sum(1) == 1).all())
    assert torch.equal(train.labels(), a[:, :4].argmax(1))
    assert set(a.unique().tolist()) == {0, 1}


def test_attributes_are_balanced(train):
    mean = train.attributes().float().mean(0).numpy()
    np.testing.assert_allclose(mean[:4], 1 / 4, atol=0.02)
    np.testing.assert_allclose(mean[4:10], 1 / 6, atol=0.02)
    np.testing.assert_allclose(mean[10:], 1 / 2, atol=0.02)


def test_background_matches_light(pixels):
    x, a, _ = pixels
    corner = x[:, 0, 0, :].mean(1)
    light = a[:, 13] == 1
    assert corner[light].min() > 180 and corner[~light].max() < 75


def test_position_and_size_match_the_pixels(pixels):
    _, a, fg = pixels
    cols, rows = np.arange(32)[None, None, :], np.arange(32)[None, :, None]
    area = fg.sum((1, 2))
    cx = (fg * cols).sum((1, 2)) / area
    cy = (fg * rows).sum((1, 2)) / area
    assert np.array_equal(cx < 16, a[:, 11] == 1)
    # the triangle's centroid sits below its centre, so "top" is checked on the other shapes
    not_triangle = a[:, 2] == 0
    assert np.array_equal((cy < 16)[not_triangle], (a[:, 12] == 1)[not_triangle])
    large = a[:, 10] == 1
    assert area[large].min() > area[~large].max()


def test_colour_matches_the_foreground(pixels):
    x, a, fg = pixels
    expected = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1], [0, 1, 1]])
    for i in range(0, 20000, 97):
        rgb = x[i][fg[i]].mean(0)
        assert np.array_equal(rgb > 128, expected[a[i, 4:10].argmax()] == 1), i


def test_shapes_are_recognisable_from_their_silhouette(pixels):
    """Fill of the bounding box: square ~1, circle ~pi/4, triangle and diamond ~1/2 (triangle bottom-heavy)."""
    _, a, fg = pixels
    stats = {k: [] for k in range(4)}
    for i in np.flatnonzero(a[:, 10] == 1)[:2000]:
        rows, cols = np.nonzero(fg[i])
        h, w = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
        low = (rows.mean() - rows.min()) / h  # where the mass sits, from the top of the box
        stats[int(a[i, :4].argmax())].append((len(rows) / (h * w), low))
    fill = {k: np.median([s[0] for s in v]) for k, v in stats.items()}
    low = {k: np.median([s[1] for s in v]) for k, v in stats.items()}
    assert fill[1] > 0.9 and 0.7 < fill[0] < 0.86 and fill[2] < 0.62 and fill[3] < 0.62
    assert low[2] > 0.55 and abs(low[3] - 0.47) < 0.05


def test_same_seed_same_images_other_seed_or_split_other_images():
    a = load_dataset("shapes32", split="test", seed=0)
    _load_embedded.cache_clear()  # regenerate rather than get the cached copy
    assert torch.equal(load_dataset("shapes32", split="test", seed=0).images, a.images)
    assert not torch.equal(load_dataset("shapes32", split="test", seed=1).images, a.images)
    train_head = load_dataset("shapes32", split="train", seed=0).images[:2000]
    assert not torch.equal(train_head, a.images)
