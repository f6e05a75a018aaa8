"""ImageNet (ILSVRC-2012) from JPEGs in class folders, decoded on demand.

The layout is the one torchvision's ``ImageNet`` class writes: ``imagenet/train/<wnid>/*.JPEG`` and
``imagenet/val/<wnid>/*.JPEG``. Each image has its largest centred square cropped and resized to the requested
size, which equals resizing its shorter side to that size and centre-cropping.

Classes are the class folders found in ``train/`` (sorted wnids, as torchvision's ``ImageFolder`` sorts them),
and a label is the index of its image's wnid among them; val is labelled by train's folders, so reading it
needs ``train/`` too. The dataset reports the classes it found (``num_classes = len(class_names)``, as every
other labelled dataset does): 1000 for the full data, as the registry says, and fewer for a subset in the same
layout, whose labels then still lie in ``0..num_classes-1``.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ebmctl.data.base import DataRequest
from ebmctl.data.real.image_files import ImageFileDataset, PathTable
from ebmctl.errors import DataError

IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")
_LAYOUT = "expected <split>/<wnid>/*.JPEG, e.g. train/n01440764/n01440764_10026.JPEG"


def _entries(folder: Path) -> list[os.DirEntry[str]]:
    """The non-hidden entries of ``folder``; DataError when it cannot be listed."""
    try:
        with os.scandir(folder) as it:
            return [e for e in it if not e.name.startswith(".")]
    except OSError as exc:
        raise DataError(
            f"imagenet: cannot list {folder} ({type(exc).__name__})", hint="check that the folder is readable"
        ) from exc


def _is_image(entry: os.DirEntry[str]) -> bool:
    return entry.name.lower().endswith(IMAGE_SUFFIXES) and entry.is_file()


def class_folders(split_dir: Path) -> list[str]:
    """The sorted class folder names of a split; DataError, saying what is there instead, when it has none."""
    entries = _entries(split_dir)
    wnids = sorted(e.name for e in entries if e.is_dir())
    if wnids:
        return wnids
    if any(e.name.endswith(".tar") for e in entries):
        hint = f"extract each <wnid>.tar of ILSVRC2012_img_train.tar into a folder <wnid>/ ({_LAYOUT})"
    elif any(_is_image(e) for e in entries):
        hint = "sort the validation images into <wnid>/ folders (torchvision's ImageNet class or valprep.sh do it)"
    else:
        hint = _LAYOUT
    raise DataError(f"imagenet: no class folders in {split_dir}", hint=hint)


def build_imagenet(request: DataRequest) -> ImageFileDataset:
    """The split's images in (wnid, file name) order, labelled by the sorted class folders of ``train/``."""
    assert request.root is not None
    directory = request.root / "imagenet"
    wnids = class_folders(directory / "train")
    split_dir = directory / request.split
    folders = wnids if request.split == "train" else class_folders(split_dir)
    index = {wnid: i for i, wnid in enumerate(wnids)}
    unknown = [w for w in folders if w not in index]
    if unknown:
        raise DataError(
            f"imagenet: {split_dir} has class folders that {directory / 'train'} lacks: {', '.join(unknown[:5])}"
            + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""),
            hint="both splits must be sorted into the same <wnid>/ class folders",
        )
    names: list[str] = []
    labels: list[int] = []
    for wnid in folders:
        files = sorted(e.name for e in _entries(split_dir / wnid) if _is_image(e))
        names += [f"{wnid}/{name}" for name in files]
        labels += [index[wnid]] * len(files)
    if not names:
        raise DataError(
            f"imagenet: no images in the class folders of {split_dir}",
            hint=f"{_LAYOUT} (.JPEG, .jpg or .png)",
        )
    return ImageFileDataset(
        request.info(class_names=tuple(wnids)),
        PathTable(split_dir, names),
        torch.tensor(labels, dtype=torch.long),
    )
