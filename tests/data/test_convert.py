"""Resizing and channel conversion."""

from __future__ import annotations

import torch

from ebmctl.data import load_dataset
from ebmctl.data.convert import convert_images


def test_unchanged_request_returns_the_same_tensor():
    x = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)
    assert convert_images(x, 8, 3) is x


def test_rgb_to_gray_uses_luminance():
    colours = torch.tensor([[255, 0, 0], [0, 255, 0], [0, 0, 255], [200, 200, 200]], dtype=torch.uint8)
    x = colours[:, :, None, None].expand(4, 3, 4, 4).contiguous()
    gray = convert_images(x, None, 1)
    assert gray.shape == (4, 1, 4, 4) and gray.dtype == torch.uint8
    assert gray[:, 0, 0, 0].tolist() == [76, 150, 29, 200]


def test_gray_to_rgb_repeats_the_channel():
    x = torch.randint(0, 256, (3, 1, 8, 8), dtype=torch.uint8)
    rgb = convert_images(x, None, 3)
    assert rgb.shape == (3, 3, 8, 8)
    assert all(torch.equal(rgb[:, c], x[:, 0]) for c in range(3))


def test_downsampling_is_antialiased():
    x = torch.zeros(1, 1, 32, 32, dtype=torch.uint8)
    x[..., ::4, :] = 255  # one bright row in four: plain bilinear sampling would miss every one of them
    small = convert_images(x, 8, 1)
    assert small.shape == (1, 1, 8, 8)
    assert 50 <= small.float().mean() <= 78 and small.float().std() < 12


def test_resizing_keeps_constants_and_works_in_chunks():
    x = torch.full((5, 3, 10, 10), 123, dtype=torch.uint8)
    out = convert_images(x, 24, 3, chunk=2)
    assert out.shape == (5, 3, 24, 24) and bool((out == 123).all())


def test_every_embedded_image_dataset_feeds_any_model_shape():
    for name in ("shapes32", "digits"):
        ds = load_dataset(name, split="test", image_size=16, channels=1 if name == "shapes32" else 3)
        x, _ = ds[0]
        assert tuple(x.shape) == ds.info.shape == ((1, 16, 16) if name == "shapes32" else (3, 16, 16))
        assert x.dtype == torch.uint8
