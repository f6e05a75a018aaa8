"""Image files decoded on demand (CelebA, DTD, ImageNet): too many, or too varied in size, to preload."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import overload

import numpy as np
import torch
from PIL import Image

from ebmctl.data.base import DataInfo, EbmDataset
from ebmctl.data.convert import center_square, pil_to_tensor
from ebmctl.errors import DataError


class PathTable(Sequence[Path]):
    """Paths under ``folder`` kept as one fixed-width bytes array: compact for a million files, and shared by
    forked DataLoader workers without the copy-on-access a list of Python objects suffers."""

    def __init__(self, folder: Path, names: Iterable[str] | np.ndarray) -> None:
        self.folder = folder
        self._names = (
            names if isinstance(names, np.ndarray) else np.array([os.fsencode(n) for n in names], bytes)
        )

    def __len__(self) -> int:
        return len(self._names)

    @overload
    def __getitem__(self, index: int) -> Path: ...

    @overload
    def __getitem__(self, index: slice) -> PathTable: ...

    def __getitem__(self, index: int | slice) -> Path | PathTable:
        if isinstance(index, slice):
            return PathTable(self.folder, self._names[index])
        return self.folder / os.fsdecode(self._names[index])


class ImageFileDataset(EbmDataset):
    """Decode, centre-crop to a square (``crop`` pixels, or the largest square when None), resize, convert."""

    def __init__(
        self,
        info: DataInfo,
        paths: Sequence[Path],
        labels: torch.Tensor,
        attributes: torch.Tensor | None = None,
        crop: int | None = None,
    ) -> None:
        self.info = info
        self.paths = paths
        self._labels = labels
        self._attributes = attributes
        self.crop = crop

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        channels, size, _ = self.info.shape
        path = self.paths[index]
        try:
            with Image.open(path) as img:
                square = center_square(img.convert("RGB"), self.crop)
        except (OSError, ValueError) as exc:
            raise DataError(
                f"{self.info.name}: cannot read image {path} ({type(exc).__name__})",
                hint="the file is missing or corrupt; re-download the dataset",
            ) from exc
        return pil_to_tensor(square, size, channels), int(self._labels[index])

    def labels(self) -> torch.Tensor:
        return self._labels

    def attributes(self) -> torch.Tensor | None:
        return self._attributes
