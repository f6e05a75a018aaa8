"""Class subsets of a labelled dataset: ``data.classes`` and the ``DATASET@CLASS+CLASS`` sets of ``ebmctl ood``.

A subset keeps the items of the chosen classes with their original labels, so a class keeps its index and name
(``circle`` is 0 of shapes32 whether or not ``square`` is kept too).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch

from ebmctl.data.base import DataInfo, EbmDataset
from ebmctl.errors import DataError, SpecError

CLASS_MARK = "@"  # DATASET@CLASS: ':' already addresses items (sample --like DATASET:INDEX)
CLASS_JOIN = "+"  # DATASET@A+B: ',' already separates datasets in option lists


def allowed_classes(info: DataInfo) -> str:
    """The classes of ``info`` in words: its names, or the range of its indices."""
    if info.class_names:
        return ", ".join(info.class_names)
    return f"0..{info.num_classes - 1}"


def class_indices(info: DataInfo, wanted: Sequence[str | int]) -> tuple[int, ...]:
    """The indices of the ``wanted`` classes of ``info``, in the order given: names (case-insensitive) or indices.

    SpecError for a dataset without class labels, an unknown class, a repeated one or an empty list."""
    if info.num_classes < 1:
        raise SpecError(f"{info.name} has no class labels to choose classes from",
                        "classes apply to labelled datasets only, e.g. shapes32, digits, mnist5k, cifar10")
    if not wanted:
        raise SpecError(f"no class of {info.name} chosen", f"name at least one of: {allowed_classes(info)}")
    names = [n.lower() for n in info.class_names]
    out: list[int] = []
    for item in wanted:
        text = str(item).strip()
        if text.lower() in names:
            index = names.index(text.lower())
        elif text.isdigit() and int(text) < info.num_classes:
            index = int(text)
        else:
            raise SpecError(f"{info.name} has no class {item!r}", f"choose from its classes: {allowed_classes(info)}")
        if index in out:
            raise SpecError(f"class {class_name(info, index)!r} of {info.name} is named twice", "name each class once")
        out.append(index)
    return tuple(out)


def class_name(info: DataInfo, index: int) -> str:
    return info.class_names[index] if index < len(info.class_names) else str(index)


def set_label(info: DataInfo) -> str:
    """What a dataset holds, in words: ``shapes32`` with every class, ``shapes32 (circle, square)`` a subset."""
    classes = info.extra.get("classes")
    return f"{info.name} ({', '.join(classes)})" if classes else info.name


def parse_class_set(text: str) -> tuple[str, tuple[str, ...] | None]:
    """``shapes32@diamond+square`` -> ("shapes32", ("diamond", "square")); ``shapes32`` -> ("shapes32", None)."""
    name, mark, rest = text.partition(CLASS_MARK)
    if not mark:
        return text, None
    classes = tuple(c.strip() for c in rest.split(CLASS_JOIN))
    if not name or not all(classes):
        raise SpecError(f"{text!r} is not DATASET{CLASS_MARK}CLASS", f"e.g. shapes32{CLASS_MARK}diamond or "
                        f"shapes32{CLASS_MARK}diamond{CLASS_JOIN}square")
    return name, classes


class ClassSubset(EbmDataset):
    """The items of ``dataset`` whose label is one of ``classes`` (indices), labels unchanged."""

    def __init__(self, dataset: EbmDataset, classes: Sequence[int]) -> None:
        self.dataset = dataset
        self.classes = tuple(classes)
        labels = dataset.labels()
        self.index = torch.nonzero(torch.isin(labels, torch.tensor(self.classes, dtype=labels.dtype))).flatten()
        self._labels = labels[self.index]
        names = [class_name(dataset.info, k) for k in self.classes]
        self.info = dataclasses.replace(dataset.info, extra={**dataset.info.extra, "classes": names})
        if len(self.index) == 0:
            raise DataError(f"the {self.info.split} split of {set_label(self.info)} holds no items",
                            f"choose other classes of {self.info.name}: {allowed_classes(self.info)}")

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.dataset[int(self.index[index])]

    def labels(self) -> torch.Tensor:
        return self._labels

    def attributes(self) -> torch.Tensor | None:
        attributes = self.dataset.attributes()
        return None if attributes is None else attributes[self.index]

    def get_batch(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.dataset.get_batch(self.index[torch.as_tensor(indices, dtype=torch.long)])


def select_classes(dataset: EbmDataset, classes: Sequence[str | int] | None) -> EbmDataset:
    """``dataset`` restricted to ``classes`` (names or indices; None keeps every class)."""
    if classes is None:
        return dataset
    return ClassSubset(dataset, class_indices(dataset.info, classes))
