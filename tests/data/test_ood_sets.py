"""The OOD sets the papers' tables name: CIFAR-10 interpolations, constant images, DTD's top-left crop."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ebmctl.data import dataset_entry, load_dataset

from .fixtures import SEEDS, fixture_images, write_cifar10, write_dtd

N_TRAIN, N_TEST = 20, 10


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_cifar10(root, N_TRAIN, N_TEST)
    write_dtd(root)
    return root


def _interp(root: Path, split: str = "test", seed: int = 0, **kwargs):
    return load_dataset("cifar10-interp", root=root, split=split, seed=seed, verify_checksums=False, **kwargs)


def _cifar_split(split: str) -> np.ndarray:
    images = fixture_images(N_TRAIN + N_TEST, seed=SEEDS["cifar10"]).astype(np.int64)
    return images[:N_TRAIN] if split == "train" else images[N_TRAIN:]


@pytest.mark.parametrize("split", ["train", "test"])
def test_interp_is_the_rounded_mean_of_pairs_forming_one_cycle(root, split):
    ds = _interp(root, split)
    source = _cifar_split(split)
    n = len(source)
    assert len(ds) == n and ds.info.shape == (3, 32, 32) and ds.info.num_classes == 0
    assert bool((ds.labels() == -1).all())
    mixed = ds.images.permute(0, 2, 3, 1).numpy().astype(np.int64)
    successor = {}
    for k in range(n):
        # the one ordered pair (i, j), i != j, whose mean rounded half up is this image
        matches = [
            (i, j)
            for i in range(n)
            for j in range(n)
            if i != j and np.array_equal(mixed[k], (source[i] + source[j] + 1) // 2)
        ]
        assert len(matches) == 2 and matches[0][::-1] == matches[1]  # (i, j) and (j, i): one unordered pair
        exact = (source[matches[0][0]] + source[matches[0][1]]) / 2
        assert np.abs(mixed[k] - exact).max() <= 0.5
        successor.setdefault(matches[0][0], set()).add(matches[0][1])
        successor.setdefault(matches[0][1], set()).add(matches[0][0])
    # random pairs of a permutation, each image mixed with its two neighbours: every image in exactly two mixes
    assert sorted(len(v) for v in successor.values()) == [2] * n
    start, previous, current, seen = 0, None, 0, {0}
    for _ in range(n - 1):
        previous, current = current, next(v for v in successor[current] if v != previous)
        seen.add(current)
    assert seen == set(range(n)) and start in successor[current]  # one cycle through all images


def test_interp_is_deterministic_by_seed_and_converts(root):
    a = _interp(root, seed=0)
    assert torch.equal(_interp(root, seed=0).images, a.images)
    assert not torch.equal(_interp(root, seed=1).images, a.images)
    gray = _interp(root, seed=0, image_size=28, channels=1)
    assert gray.images.shape == (N_TEST, 1, 28, 28)
    entry = dataset_entry("cifar10-interp")
    assert entry.directory == dataset_entry("cifar10").directory and entry.eval_split == "test"


@pytest.mark.parametrize(("channels", "size"), [(3, 32), (1, 28)])
def test_constant_images_are_constant_and_uniform(channels, size):
    ds = load_dataset("constant", split="test", image_size=size, channels=channels)
    assert len(ds) == 10000 and ds.info.shape == (channels, size, size) and ds.info.num_classes == 0
    x, y = ds.get_batch(torch.arange(len(ds)))
    assert x.shape == (10000, channels, size, size) and x.dtype == torch.uint8 and bool((y == -1).all())
    levels = x[:, :, 0, 0]
    assert torch.equal(x, levels[:, :, None, None].expand_as(x))  # one colour an image
    assert torch.equal(ds[17][0], x[17])
    # levels uniform on 0..255: 16 bins of 16 levels each hold 1/16 of them
    counts = torch.bincount(levels.flatten().long() // 16, minlength=16).float()
    assert int(levels.min()) <= 2 and int(levels.max()) >= 253
    assert float((counts / counts.mean() - 1).abs().max()) < 0.15
    if channels == 3:  # channels drawn independently: colours, not grays
        assert float((levels[:, 0] == levels[:, 1]).float().mean()) < 0.02
        corr = torch.corrcoef(levels.T.float())
        assert float((corr - torch.eye(3)).abs().max()) < 0.05


def test_constant_is_deterministic_by_seed_and_split():
    a = load_dataset("constant", split="test", seed=0).get_batch(torch.arange(50))[0]
    assert torch.equal(load_dataset("constant", split="test", seed=0).get_batch(torch.arange(50))[0], a)
    assert not torch.equal(load_dataset("constant", split="test", seed=1).get_batch(torch.arange(50))[0], a)
    assert not torch.equal(load_dataset("constant", split="train", seed=0).get_batch(torch.arange(50))[0], a)


def _position_coded(width: int, height: int) -> np.ndarray:
    """R grows with x, G with y, B constant: any other crop than the top-left one shows."""
    x = np.arange(width)[None, :] * 4
    y = np.arange(height)[:, None] * 4
    r, g = np.broadcast_to(x, (height, width)), np.broadcast_to(y, (height, width))
    return np.stack([r, g, np.full((height, width), 128)], axis=-1).clip(0, 255).astype(np.uint8)


def test_dtd_topleft_takes_the_top_left_crop_at_native_resolution(tmp_path):
    write_dtd(tmp_path)
    ds = load_dataset("dtd-topleft", root=tmp_path, split="test", verify_checksums=False)
    path = ds.paths[0]
    Image.fromarray(_position_coded(300, 240)).save(path, quality=100)
    x, _ = ds[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.uint8
    with Image.open(path) as img:
        released = np.array(img.convert("RGB"))[:32, :32]  # what the released OOD code reads
    assert np.array_equal(x.permute(1, 2, 0).numpy(), released)
    assert np.abs(x.permute(1, 2, 0).numpy().astype(int) - _position_coded(32, 32)).max() <= 4
    centred = load_dataset("dtd", root=tmp_path, split="test", verify_checksums=False)[0][0]
    assert float((centred.float() - x.float()).abs().mean()) > 50  # the default centre crop is elsewhere
    gray = load_dataset(
        "dtd-topleft", root=tmp_path, split="test", image_size=28, channels=1, verify_checksums=False
    )[0][0]
    with Image.open(path) as img:
        expected = np.array(img.convert("RGB").crop((0, 0, 28, 28)).convert("L"))
    assert gray.shape == (1, 28, 28) and np.array_equal(gray[0].numpy(), expected)


def test_dtd_topleft_reads_partition_one_like_dtd(root):
    for split in ("train", "val", "test"):
        a = load_dataset("dtd", root=root, split=split, verify_checksums=False)
        b = load_dataset("dtd-topleft", root=root, split=split, verify_checksums=False)
        assert list(a.paths) == list(b.paths) and torch.equal(a.labels(), b.labels())
        assert b.info.class_names == a.info.class_names
