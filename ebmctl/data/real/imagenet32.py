"""ImageNet 32x32 (Chrabaszcz et al. 2017) from its official npz batches, which torchvision does not read.

Each batch holds ``data``, uint8 (N, 3072) planar RGB, and ``labels`` in 1..1000 (train batches also hold a
``mean`` image, unused). Files are opened with ``allow_pickle=False``: a file asking to unpickle is rejected.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from ebmctl.data.base import DataRequest, TensorImageDataset
from ebmctl.data.convert import convert_images
from ebmctl.errors import DataError

SPLIT_FILES = {
    "train": tuple(f"train_data_batch_{i}.npz" for i in range(1, 11)),
    "val": ("val_data.npz",),
}
_PIXELS = 3 * 32 * 32
_HINT = "the file looks corrupt or truncated; re-download the ImageNet 32x32 npz batches"


def _open(path: Path) -> np.lib.npyio.NpzFile:
    try:
        batch = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"imagenet32: cannot read {path} ({type(exc).__name__})", hint=_HINT) from exc
    if not isinstance(batch, np.lib.npyio.NpzFile) or not {"data", "labels"} <= set(batch.files):
        raise DataError(f"imagenet32: {path} is not an npz batch with 'data' and 'labels'", hint=_HINT)
    return batch


def _array(batch: np.lib.npyio.NpzFile, key: str, path: Path) -> np.ndarray:
    try:
        return batch[key]
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(
            f"imagenet32: cannot read '{key}' in {path} ({type(exc).__name__})", hint=_HINT
        ) from exc


def read_imagenet32(directory: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """All images of a split as uint8 (N, 3, 32, 32) and labels as int64 in 0..999.

    Labels are read first to size the output, so the whole split is never held twice in memory.
    """
    paths = [directory / name for name in SPLIT_FILES[split]]
    label_parts = []
    for path in paths:
        with _open(path) as batch:
            labels = _array(batch, "labels", path).reshape(-1).astype(np.int64)
        if labels.size and (labels.min() < 1 or labels.max() > 1000):
            raise DataError(f"imagenet32: labels in {path} are outside 1..1000", hint=_HINT)
        label_parts.append(labels - 1)

    images = torch.empty((sum(len(p) for p in label_parts), 3, 32, 32), dtype=torch.uint8)
    start = 0
    for path, labels in zip(paths, label_parts, strict=True):
        with _open(path) as batch:
            data = _array(batch, "data", path)
        if data.dtype != np.uint8 or data.shape != (len(labels), _PIXELS):
            raise DataError(
                f"imagenet32: 'data' in {path} is {data.dtype} {data.shape}, expected uint8 ({len(labels)}, {_PIXELS})",
                hint=_HINT,
            )
        images[start : start + len(labels)] = torch.from_numpy(data).view(-1, 3, 32, 32)
        start += len(labels)
    return images, torch.from_numpy(np.concatenate(label_parts))


def build_imagenet32(request: DataRequest) -> TensorImageDataset:
    assert request.root is not None
    images, labels = read_imagenet32(request.root / "imagenet32", request.split)
    images = convert_images(images, request.image_size, request.channels)
    return TensorImageDataset(request.info(num_classes=1000), images, labels)
