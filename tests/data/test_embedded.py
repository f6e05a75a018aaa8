"""digits, textures and photos: sizes, labels, content and determinism."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ebmctl.data import load_dataset
from ebmctl.data.embedded.crops import PHOTOS, TEXTURES


def test_digits_split_is_fixed_stratified_and_disjoint():
    from sklearn.datasets import load_digits

    train, test = load_dataset("digits"), load_dataset("digits", split="test")
    assert (len(train), len(test)) == (1500, 297)
    assert train.info.shape == (1, 32, 32) and train.images.dtype == torch.uint8
    counts = np.bincount(test.labels().numpy(), minlength=10)
    assert counts.min() >= 29 and counts.max() <= 30
    assert torch.equal(load_dataset("digits", split="test", seed=7).images, test.images)  # a fixed split
    # every image is one of scikit-learn's digits (upsampled) with its label; no digit is in both splits
    bunch = load_digits()
    small = torch.from_numpy(bunch.images * (255 / 16)).float().unsqueeze(1)
    reference = F.interpolate(small, size=(32, 32), mode="bilinear", align_corners=False).flatten(1)
    loaded = torch.cat([train.images, test.images]).float().flatten(1)
    distance, nearest = torch.cdist(loaded, reference, p=1).min(1)
    assert float(distance.max()) <= 1024 * 0.5 and len(set(nearest.tolist())) == 1797
    np.testing.assert_array_equal(
        bunch.target[nearest.numpy()], torch.cat([train.labels(), test.labels()]).numpy()
    )


def test_digits_values_span_the_range():
    x = load_dataset("digits", split="test").images
    assert int(x.min()) == 0 and int(x.max()) >= 250


def test_textures_and_photos():
    for name, sources in (("textures", TEXTURES), ("photos", PHOTOS)):
        test = load_dataset(name, split="test")
        assert len(test) == 1000 and test.info.shape == (3, 32, 32)
        assert test.info.class_names == sources
        counts = np.bincount(test.labels().numpy(), minlength=len(sources))
        assert counts.min() > 1000 / len(sources) * 0.7
        x = test.images.float()
        assert x.std() > 20  # crops are not flat
        gray = bool((x[:, 0] == x[:, 1]).all() and (x[:, 1] == x[:, 2]).all())
        assert gray == (name == "textures")  # the textures are grayscale sources repeated to RGB


def test_crops_differ_by_seed_and_split():
    a = load_dataset("textures", split="test", seed=0).images
    b = load_dataset("textures", split="test", seed=1).images
    assert a.shape == b.shape and not torch.equal(a, b)
    assert len(load_dataset("photos", split="train")) == 5000
