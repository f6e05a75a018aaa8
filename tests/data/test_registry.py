"""The registry, name and split validation, and the options every dataset shares."""

from __future__ import annotations

import pytest
import torch

from ebmctl.data import dataset_entry, dataset_names, load_dataset
from ebmctl.errors import DataError, SpecError

EMBEDDED = ["shapes32", "digits", "mnist5k", "textures", "photos", "constant", "8gaussians", "rings", "moons",
            "swissroll", "checkerboard", "pinwheel"]  # fmt: skip
REAL = ["cifar10", "cifar10-interp", "cifar100", "svhn", "celeba", "mnist", "fashion-mnist", "dtd", "dtd-topleft",
        "imagenet32", "imagenet"]  # fmt: skip


def test_every_dataset_is_registered_once():
    assert dataset_names() == EMBEDDED + REAL


@pytest.mark.parametrize("name", EMBEDDED + REAL)
def test_entries_are_complete(name):
    entry = dataset_entry(name)
    assert entry.name == name
    assert entry.kind in ("image", "points")
    assert len(entry.shape) == (3 if entry.kind == "image" else 1)
    assert entry.eval_split in entry.splits and "train" in entry.splits
    assert entry.description
    if entry.embedded:
        assert entry.directory is None and not entry.files
        return
    assert entry.directory and entry.how_to_get
    assert set(entry.split_files) == set(entry.splits)
    assert all(entry.expected_files(split) for split in entry.splits)
    assert "http" in entry.how_to_get
    assert "--" not in entry.how_to_get  # no command's option: each command offers its own (tests/cli/test_hints.py)


@pytest.mark.parametrize("name", ["imagenet32", "imagenet"])
def test_imagenet_says_it_cannot_be_downloaded(name):
    entry = dataset_entry(name)
    assert not entry.downloadable and "cannot download" in entry.how_to_get


def test_unknown_name_suggests_the_closest():
    with pytest.raises(SpecError) as info:
        load_dataset("cifar-10")
    assert "did you mean 'cifar10'" in info.value.message
    assert "shapes32" in info.value.hint and "imagenet32" in info.value.hint


def test_unknown_name_without_a_close_match_still_lists_names():
    with pytest.raises(SpecError) as info:
        dataset_entry("zzzzzz")
    assert "did you mean" not in info.value.message
    assert "8gaussians" in info.value.hint


def test_unknown_split_names_valid_splits_and_suggests():
    with pytest.raises(SpecError) as info:
        load_dataset("svhn", split="tset", root="/nonexistent")
    assert "train, test, extra" in info.value.message
    assert "did you mean 'test'" in info.value.message


def test_split_is_checked_before_reading_anything():
    with pytest.raises(SpecError, match="valid, test"):
        load_dataset("celeba", split="val")


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"image_size": 0}, "image_size"),
        ({"image_size": 32.0}, "image_size"),
        ({"channels": 2}, "channels"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_options_raise_spec_errors(kwargs, fragment):
    with pytest.raises(SpecError, match=fragment):
        load_dataset("digits", **kwargs)


def test_points_reject_image_options():
    with pytest.raises(SpecError, match="2D points"):
        load_dataset("moons", image_size=32)


@pytest.mark.parametrize("name", REAL)
def test_real_dataset_without_root_says_how_to_give_one(name):
    with pytest.raises(DataError) as info:
        load_dataset(name)
    assert "--data-root" in info.value.hint and "EBMCTL_DATA" in info.value.hint
    assert dataset_entry(name).directory in info.value.hint


@pytest.mark.parametrize("name", ["shapes32", "digits", "mnist5k", "constant", "8gaussians"])
def test_num_classes_in_registry_match_the_data(name):
    ds = load_dataset(name, split="test")
    assert ds.info.num_classes == dataset_entry(name).num_classes
    if ds.info.num_classes:
        assert int(ds.labels().max()) == ds.info.num_classes - 1


def test_info_records_the_source():
    info = load_dataset("digits").info
    assert info.extra["source"] == "embedded" and info.extra["native_shape"] == (1, 32, 32)


def test_embedded_datasets_are_cached_per_request():
    a = load_dataset("8gaussians", split="test", seed=3)
    assert load_dataset("8gaussians", split="test", seed=3) is a
    b = load_dataset("8gaussians", split="test", seed=4)
    assert b is not a and not torch.equal(a.points, b.points)
