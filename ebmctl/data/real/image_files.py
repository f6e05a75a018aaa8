"""A dataset of image files decoded on demand (CelebA, DTD): too large, or too varied in size, to preload."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from ebmctl.data.base import DataInfo, EbmDataset
from ebmctl.data.convert import center_square, pil_to_tensor
from ebmctl.errors import DataError


class ImageFileDataset(EbmDataset):
    """Decode, centre-crop to a square (``crop`` pixels, or the largest square when None), resize, convert."""

    def __init__(
        self,
        info: DataInfo,
        paths: list[Path],
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
