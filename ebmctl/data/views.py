"""Views of a dataset whose labels are one of its binary attributes (for attribute-conditional models)."""

from __future__ import annotations

import torch

from ebmctl.data.base import DataInfo, EbmDataset


def normalise_name(name: str) -> str:
    """Attribute names compare case-insensitively, with spaces, dashes and underscores alike."""
    return name.strip().lower().replace("-", "_").replace(" ", "_")


def find_attribute(info: DataInfo, name: str) -> int | None:
    """Index of attribute ``name`` of the dataset, or None."""
    wanted = normalise_name(name)
    for i, attr in enumerate(info.attribute_names):
        if normalise_name(attr) == wanted:
            return i
    return None


class AttributeLabels(EbmDataset):
    """``dataset`` with label 1 where attribute ``index`` is present and 0 where it is absent."""

    def __init__(self, dataset: EbmDataset, index: int) -> None:
        attributes = dataset.attributes()
        if attributes is None:
            raise ValueError(f"{dataset.info.name} has no attributes")
        self.dataset = dataset
        self.column = attributes[:, index].long()
        name = dataset.info.attribute_names[index]
        self.info = DataInfo(
            name=dataset.info.name, kind=dataset.info.kind, split=dataset.info.split, shape=dataset.info.shape,
            num_classes=2, class_names=(f"not {name}", name), attribute_names=dataset.info.attribute_names,
            extra=dataset.info.extra,
        )

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.dataset[index][0], int(self.column[index])

    def labels(self) -> torch.Tensor:
        return self.column

    def attributes(self) -> torch.Tensor | None:
        return self.dataset.attributes()

    def get_batch(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, _ = self.dataset.get_batch(indices)
        return x, self.column[indices]
