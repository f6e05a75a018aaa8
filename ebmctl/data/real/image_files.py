"""Image files decoded on demand (CelebA, DTD, ImageNet): too many, or too varied in size, to preload."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import overload

import numpy as np
import torch
from PIL import Image

from ebmctl.data.base import DataInfo, EbmDataset
from ebmctl.data.convert import center_square, pil_to_tensor, top_left_square
from ebmctl.data.real.guard import one_line
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
    """Decode, centre-crop to a square (``crop`` pixels, or the largest square when None), resize, convert.

    With ``top_left`` the square is instead the output size's own square at the top-left corner, at native
    resolution (the crop ICD's and CLEL's released OOD code take of DTD)."""

    def __init__(
        self,
        info: DataInfo,
        paths: Sequence[Path],
        labels: torch.Tensor,
        attributes: torch.Tensor | None = None,
        crop: int | None = None,
        top_left: bool = False,
    ) -> None:
        self.info = info
        self.paths = paths
        self._labels = labels
        self._attributes = attributes
        self.crop = crop
        self.top_left = top_left

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        channels, size, _ = self.info.shape
        path = self.paths[index]
        try:
            with warnings.catch_warnings():
                # PIL warns of images over ~89M pixels (a decompression bomb, or a damaged header): refuse them
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(path) as img:
                    rgb = img.convert("RGB")
                    square = top_left_square(rgb, size) if self.top_left else center_square(rgb, self.crop)
        except FileNotFoundError as exc:
            raise DataError(f"{self.info.name}: image {path} is missing",
                            hint="the dataset is incomplete; re-download it") from exc
        except Exception as exc:  # decoding a damaged file can raise almost anything (SyntaxError, zlib.error...)
            raise DataError(
                f"{self.info.name}: cannot read image {path} ({one_line(exc, 100)})",
                hint="the file is corrupt or not an image; re-download the dataset",
            ) from exc
        return pil_to_tensor(square, size, channels), int(self._labels[index])

    def labels(self) -> torch.Tensor:
        return self._labels

    def attributes(self) -> torch.Tensor | None:
        return self._attributes
