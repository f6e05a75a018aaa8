"""``load_dataset``: one entry point for every dataset, embedded or real."""

from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib
from collections.abc import Callable, Sequence
from pathlib import Path

from ebmctl.data.base import DataRequest, EbmDataset
from ebmctl.data.classes import select_classes
from ebmctl.data.real.guard import dataset_dir, missing_files, reading, require_files
from ebmctl.data.registry import DatasetEntry, dataset_entry
from ebmctl.errors import DataError, SpecError


def load_dataset(
    name: str,
    *,
    root: str | Path | None = None,
    split: str = "train",
    image_size: int | None = None,
    channels: int | None = None,
    verify_checksums: bool = True,
    download: bool = False,
    seed: int = 0,
    classes: Sequence[str | int] | None = None,
) -> EbmDataset:
    """Load a split of a dataset, resized to ``image_size`` and converted to ``channels`` (None: native).

    Embedded datasets are generated from ``seed`` (train and test from different streams) and cached for the
    process; real ones are read from ``root`` and never downloaded unless ``download`` is true. ``classes``
    (names or indices) keeps the items of those classes only, with their labels unchanged.
    """
    return select_classes(_load(name, root, split, image_size, channels, verify_checksums, download, seed), classes)


def _load(name: str, root: str | Path | None, split: str, image_size: int | None, channels: int | None,
          verify_checksums: bool, download: bool, seed: int) -> EbmDataset:
    entry = dataset_entry(name)
    _check_split(entry, split)
    request = _request(entry, split, image_size, channels, seed)
    if entry.embedded:
        return _load_embedded(request)
    if root is None:
        raise DataError(
            f"{name} is read from a data root, and none was given",
            hint=f"pass --data-root DIR or set EBMCTL_DATA=DIR; {name} is expected in DIR/{entry.directory}",
        )
    root = Path(root).expanduser()
    request = dataclasses.replace(request, root=root, verify_checksums=verify_checksums, download=download)
    absent = bool(missing_files(dataset_dir(entry, root), entry.expected_files(split)))
    if absent and not (download and entry.downloadable):
        require_files(entry, root, split)
    with reading(entry, root, verify_checksums=verify_checksums, downloading=absent):
        dataset = _builder(entry)(request)
    if len(dataset) == 0:
        raise DataError(f"{name}: the {split} split in {dataset_dir(entry, root)} holds no images",
                        hint=f"the files look truncated or empty; {entry.how_to_get}")
    return _described(dataset, entry, dataset_dir(entry, root))


def _check_split(entry: DatasetEntry, split: str) -> None:
    if split in entry.splits:
        return
    close = difflib.get_close_matches(str(split), entry.splits, n=1, cutoff=0.5)
    suggestion = f"; did you mean '{close[0]}'?" if close else ""
    raise SpecError(
        f"{entry.name} has no split '{split}' (valid splits: {', '.join(entry.splits)}){suggestion}",
        hint=f"use one of: {', '.join(entry.splits)}",
    )


def _request(
    entry: DatasetEntry, split: str, image_size: int | None, channels: int | None, seed: int
) -> DataRequest:
    """Validate the size, channels and seed, and resolve None to the native shape."""
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise SpecError(f"seed must be an integer >= 0, got {seed!r}", hint="pass a seed such as 0")
    if entry.kind == "points":
        if image_size is not None or channels is not None:
            raise SpecError(
                f"{entry.name} is a dataset of 2D points: image_size and channels do not apply",
                hint="leave data.image_size and data.channels unset for 2D toy densities",
            )
        return DataRequest(entry.name, entry.kind, split, seed=seed)
    if image_size is not None and (
        not isinstance(image_size, int) or isinstance(image_size, bool) or image_size < 1
    ):
        raise SpecError(f"image_size must be a positive integer, got {image_size!r}", hint="e.g. 32 or 64")
    if channels is not None and channels not in (1, 3):
        raise SpecError(f"channels must be 1 or 3, got {channels!r}", hint="1 for gray, 3 for RGB")
    native_c, native_size, _ = entry.shape
    return DataRequest(
        entry.name,
        entry.kind,
        split,
        image_size=native_size if image_size is None else image_size,
        channels=native_c if channels is None else channels,
        seed=seed,
    )


@functools.lru_cache(maxsize=16)
def _load_embedded(request: DataRequest) -> EbmDataset:
    # Regenerating is deterministic, so one copy per (name, split, seed, size, channels) serves the process.
    entry = dataset_entry(request.name)
    return _described(_builder(entry)(request), entry)


def _described(dataset: EbmDataset, entry: DatasetEntry, directory: Path | None = None) -> EbmDataset:
    """Record where the dataset came from in ``info.extra``."""
    extra = {"source": entry.source, "native_shape": entry.shape, "description": entry.description}
    if directory is not None:
        extra["directory"] = str(directory)
    dataset.info = dataclasses.replace(dataset.info, extra={**dataset.info.extra, **extra})
    return dataset


def _builder(entry: DatasetEntry) -> Callable[[DataRequest], EbmDataset]:
    module, function = entry.builder.split(":")
    return getattr(importlib.import_module(module), function)
