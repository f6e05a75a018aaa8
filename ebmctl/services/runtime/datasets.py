"""The datasets a run's spec names: where they live, which split, which classes, which labels."""

from __future__ import annotations

import os
from pathlib import Path

from ebmctl.data import DataInfo, EbmDataset, load_dataset
from ebmctl.data.registry import dataset_entry
from ebmctl.data.views import AttributeLabels, find_attribute
from ebmctl.runs import user_path
from ebmctl.specs import DataSpec


def data_root(spec_root: str | None, cli_root: str | None = None) -> Path | None:
    """data.root, else --data-root, else $EBMCTL_DATA."""
    root = spec_root or cli_root or os.environ.get("EBMCTL_DATA")
    return user_path(root) if root else None


def dataset_from(data: DataSpec, *, split: str | None = None, root: Path | None = None, image_size: int | None = None,
                 channels: int | None = None) -> EbmDataset:
    return load_dataset(
        data.name,
        root=root,
        split=split or data.split,
        image_size=image_size if image_size is not None else data.image_size,
        channels=channels if channels is not None else data.channels,
        verify_checksums=data.verify_checksums,
        download=data.download,
        classes=data.classes,
    )


def every_class(data: DataSpec) -> DataSpec:
    """``data`` with all of its classes: what the cached judges of a dataset are trained and tested on."""
    return data if data.classes is None else data.model_copy(update={"classes": None})


def conditioned_dataset(dataset: EbmDataset, condition: str | None) -> EbmDataset:
    """The dataset whose labels a conditional run trains on."""
    if condition is None or condition == "class":
        return dataset
    index = find_attribute(dataset.info, condition)
    assert index is not None
    return AttributeLabels(dataset, index)


def described(data: DataSpec) -> DataInfo:
    """What ``data`` describes, from the dataset registry alone (the files need not be there): its kind, the
    shape after ``image_size`` and ``channels``, and its number of classes."""
    entry = dataset_entry(data.name)
    shape = tuple(entry.shape)
    if entry.kind == "image":
        side = (data.image_size, data.image_size) if data.image_size else shape[1:]
        shape = (data.channels or shape[0], *side)
    return DataInfo(name=data.name, kind=entry.kind, split=data.split, shape=shape, num_classes=entry.num_classes)
