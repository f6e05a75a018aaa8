"""cifar10-interp: CIFAR-10 interpolations, the "CIFAR10 Interp" OOD column of papers 002 (ICD) and 000 (CLEL).

Each image is the 0.5/0.5 mix of two images of the same CIFAR-10 split. IGEBM's released OOD code (which
ICD's keeps, commented out) pairs every image of a shuffled test batch with the next one, cyclically;
CLEL's pairs test image i with image i + 100. ebmctl pairs image k of a seeded permutation of the whole
split with image k + 1 (cyclically): random pairs, every image in exactly two of them, N mixes.
"""

from __future__ import annotations

import numpy as np
import torch
from torchvision import datasets as tvd

from ebmctl.data.base import DataRequest, TensorImageDataset
from ebmctl.data.convert import convert_images
from ebmctl.data.embedded.seeding import split_rng
from ebmctl.data.real.cifar_files import read_cifar


def interp_pairs(n: int, name: str, split: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (a, b) of the n pairs: a is a permutation drawn from (name, split, seed), b is a rolled by one."""
    a = split_rng(name, split, seed).permutation(n)
    return a, np.roll(a, -1)


def mix_half(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The uint8 mean of two uint8 arrays, halves rounded up (within 0.5/255 of the exact mean)."""
    return ((x.astype(np.uint16) + y + 1) // 2).astype(np.uint8)


def build_cifar10_interp(request: DataRequest) -> TensorImageDataset:
    """Mixes of the requested CIFAR-10 split at native size, then resized and converted; no class labels."""
    assert request.root is not None
    images, _, _ = read_cifar(
        tvd.CIFAR10,
        request.root,
        train=request.split == "train",
        verify=request.verify_checksums,
        download=request.download,
    )
    a, b = interp_pairs(len(images), request.name, request.split, request.seed)
    mixed = torch.from_numpy(mix_half(images[a], images[b]))
    return TensorImageDataset(request.info(), convert_images(mixed, request.image_size, request.channels))
