"""Random streams for embedded datasets: one per (dataset, split, seed), stable across runs and platforms."""

from __future__ import annotations

import zlib

import numpy as np


def split_rng(name: str, split: str, seed: int) -> np.random.Generator:
    """A generator that depends on the dataset name, the split and the seed, so splits never share draws."""
    if seed < 0:
        raise ValueError("seed must be >= 0")
    return np.random.default_rng([seed, zlib.crc32(name.encode()), zlib.crc32(split.encode())])
