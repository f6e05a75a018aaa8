"""constant: images of one colour each, the "Constant" OOD set of CEBM's Table 5 (paper 001).

The paper does not define the set, and the released code loads it from files (``rgb.pt``, ``grayscale.pt``) it
does not ship. ebmctl follows the Constant set of Serrà et al. (2020): every image is one colour, each of its
channel levels drawn independently and uniformly from 0..255. Levels are drawn at the requested channel count,
so gray images (for MNIST-like models, 1x28x28 in the released loader) are uniform in gray level too.
"""

from __future__ import annotations

import torch

from ebmctl.data.base import DataRequest, TensorImageDataset
from ebmctl.data.embedded.seeding import split_rng

SPLIT_SIZES = {"train": 10000, "test": 10000}


def constant_levels(n: int, channels: int, name: str, split: str, seed: int) -> torch.Tensor:
    """uint8 (n, channels) levels, uniform on 0..255, from the (dataset, split, seed) stream."""
    rng = split_rng(name, split, seed)
    return torch.from_numpy(rng.integers(0, 256, (n, channels), dtype="uint8"))


def build_constant(request: DataRequest) -> TensorImageDataset:
    """The requested split at the requested size and channels (no class labels)."""
    assert request.image_size is not None and request.channels is not None
    size = request.image_size
    levels = constant_levels(
        SPLIT_SIZES[request.split], request.channels, request.name, request.split, request.seed
    )
    # A broadcast view: batches drawn from it are materialised, the whole set is never held at full size.
    images = levels[:, :, None, None].expand(-1, -1, size, size)
    return TensorImageDataset(request.info(), images)
