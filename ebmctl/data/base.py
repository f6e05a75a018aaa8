"""The dataset interface every loader returns.

Images are uint8 tensors (C, H, W) at the requested size and channel count; the trainer turns them into
floats in [0, 1] (with dequantisation noise) itself. 2D toy densities are float points (2,).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import Dataset


@dataclass(frozen=True)
class DataInfo:
    """What a command needs to know about a dataset without reading it."""

    name: str
    kind: str  # "image" or "points"
    split: str
    shape: tuple[int, ...]  # (C, H, W) for images, (2,) for points
    num_classes: int = 0  # 0: no class labels
    class_names: tuple[str, ...] = ()
    attribute_names: tuple[str, ...] = ()  # binary attributes (shapes32: 14, celeba: 40)
    extra: dict = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class DataRequest:
    """Everything a dataset builder needs, with sizes already resolved (native where none was asked for)."""

    name: str
    kind: str  # "image" or "points"
    split: str
    image_size: int | None = None  # None for points
    channels: int | None = None  # None for points
    seed: int = 0
    root: Path | None = None
    verify_checksums: bool = True
    download: bool = False

    @property
    def shape(self) -> tuple[int, ...]:
        if self.kind == "points":
            return (2,)
        assert self.image_size is not None and self.channels is not None
        return (self.channels, self.image_size, self.image_size)

    def info(
        self,
        class_names: tuple[str, ...] = (),
        attribute_names: tuple[str, ...] = (),
        num_classes: int | None = None,
        **extra: object,
    ) -> DataInfo:
        """The DataInfo of the dataset this request builds."""
        return DataInfo(
            name=self.name,
            kind=self.kind,
            split=self.split,
            shape=self.shape,
            num_classes=len(class_names) if num_classes is None else num_classes,
            class_names=tuple(class_names),
            attribute_names=tuple(attribute_names),
            extra=dict(extra),
        )


class EbmDataset(Dataset, ABC):
    """A map-style dataset with labels and attributes available in bulk.

    ``__getitem__(i)`` returns ``(x, label)`` with ``x`` uint8 (C, H, W) for images or float32 (2,) for points,
    and ``label`` an int (class index, or -1 where the dataset has no classes).
    """

    info: DataInfo

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]: ...

    def labels(self) -> torch.Tensor:
        """All class labels as int64 (N,); -1 where there are none."""
        return torch.full((len(self),), -1, dtype=torch.long)

    def attributes(self) -> torch.Tensor | None:
        """All binary attributes as uint8 (N, A), or None."""
        return None

    def get_batch(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Stack items; in-memory datasets override this with one indexing operation."""
        items = [self[int(i)] for i in indices]
        xs = torch.stack([x for x, _ in items])
        ys = torch.tensor([y for _, y in items], dtype=torch.long)
        return xs, ys


class TensorImageDataset(EbmDataset):
    """An in-memory dataset: uint8 images (N, C, H, W), labels, optional attributes."""

    def __init__(
        self,
        info: DataInfo,
        images: torch.Tensor,
        labels: torch.Tensor | None = None,
        attributes: torch.Tensor | None = None,
    ) -> None:
        self.info = info
        self.images = images
        self._labels = labels if labels is not None else torch.full((len(images),), -1, dtype=torch.long)
        self._attributes = attributes

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index], int(self._labels[index])

    def labels(self) -> torch.Tensor:
        return self._labels

    def attributes(self) -> torch.Tensor | None:
        return self._attributes

    def get_batch(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[indices], self._labels[indices]


class TensorPointDataset(EbmDataset):
    """An in-memory dataset of float32 2D points (N, 2) with labels (-1 where there are none)."""

    def __init__(self, info: DataInfo, points: torch.Tensor, labels: torch.Tensor | None = None) -> None:
        self.info = info
        self.points = points
        self._labels = labels if labels is not None else torch.full((len(points),), -1, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.points)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.points[index], int(self._labels[index])

    def labels(self) -> torch.Tensor:
        return self._labels

    def get_batch(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.points[indices], self._labels[indices]
