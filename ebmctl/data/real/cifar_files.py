"""CIFAR-10/100 in their official "python version" layout, read without running a pickle's code.

Those batches are Python pickles. Instead of torchvision's ``pickle.load``, which would build whatever a file
names, :class:`ArraysOnly` builds only what the official files hold: dicts, lists, strings, numbers and numpy
arrays. A file naming anything else (``os.system``, a class of some library) is refused before it is built,
with checksums on or off. Integrity checks and downloads still use torchvision's lists and helpers.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
from torchvision.datasets import cifar as tv_cifar
from torchvision.datasets.utils import check_integrity

# The globals a pickled numpy array needs (numpy 1 and 2 names), and the one a Python 2 pickle of bytes needs.
ALLOWED_GLOBALS = frozenset({
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
})


class ArraysOnly(pickle.Unpickler):
    """An unpickler that refuses every global but those building numpy arrays and bytes."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refused to build {module}.{name}: a CIFAR batch holds only arrays")
        return super().find_class(module, name)


def read_batch(path: Path) -> dict[str, Any]:
    """One CIFAR batch or meta file as a dict (keys decoded as latin-1, as the official files need)."""
    with open(path, "rb") as fh:
        doc = ArraysOnly(fh, encoding="latin1").load()
    if not isinstance(doc, dict):
        raise ValueError(f"{path.name} holds a {type(doc).__name__}, not a CIFAR batch")
    return doc


def read_cifar(cls: type[tv_cifar.CIFAR10], root: Path, *, train: bool, verify: bool,
               download: bool) -> tuple[np.ndarray, list[int], list[str]]:
    """Images (N, 3, 32, 32) uint8, labels and class names of ``cls`` (torchvision's CIFAR10 or CIFAR100)."""
    folder = Path(root) / cls.base_folder
    files = cls.train_list if train else cls.test_list
    meta = cls.meta

    def intact() -> bool:
        return all(check_integrity(str(folder / name), md5 if verify else None)
                   for name, md5 in [*files, (meta["filename"], meta["md5"])])

    if download and not intact():
        tv_cifar.download_and_extract_archive(cls.url, str(root), filename=cls.filename, md5=cls.tgz_md5)
    if not intact():
        raise RuntimeError("Dataset not found or corrupted. You can use download=True to download it")
    data, labels = [], []
    for name, _ in files:
        batch = read_batch(folder / name)
        data.append(np.asarray(batch["data"]).reshape(-1, 3, 32, 32))
        labels.extend(int(v) for v in batch["labels" if "labels" in batch else "fine_labels"])
    classes = [str(c) for c in read_batch(folder / meta["filename"])[meta["key"]]]
    return np.concatenate(data), labels, classes
