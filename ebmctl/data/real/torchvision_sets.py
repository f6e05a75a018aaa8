"""Real datasets read by torchvision's own classes (never downloading unless asked); CIFAR's pickled batches
by :mod:`ebmctl.data.real.cifar_files`, which builds nothing but arrays.

With checksums off, a small subclass per dataset sets torchvision's md5 entries to None: its
``check_integrity(path, None)`` then only requires the file to exist, and all of its reading code is kept.
MNIST, Fashion-MNIST and DTD only check that their files exist, so they need no such subclass.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from torchvision import datasets as tvd

from ebmctl.data.base import DataRequest, TensorImageDataset
from ebmctl.data.convert import convert_images
from ebmctl.data.real.cifar_files import read_cifar
from ebmctl.data.real.image_files import ImageFileDataset
from ebmctl.errors import DataError

CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs", "Big_Lips",
    "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows", "Chubby", "Double_Chin",
    "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones", "Male", "Mouth_Slightly_Open",
    "Mustache", "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline",
    "Rosy_Cheeks", "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat",
    "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie", "Young",
)  # fmt: skip
CELEBA_CROP = 140  # the centre crop of the 178x218 aligned faces used by the EBM papers before resizing


def _without_md5(files: Sequence[Sequence[str]]) -> list[list[str | None]]:
    return [[name, None] for name, _ in files]


class SVHNUnverified(tvd.SVHN):
    """SVHN requiring its split's .mat file but not its md5 sum."""

    split_list: ClassVar[dict] = {
        split: [url, filename, None] for split, (url, filename, _) in tvd.SVHN.split_list.items()
    }


class CelebAUnverified(tvd.CelebA):
    """CelebA requiring its annotation files but not their md5 sums."""

    file_list: ClassVar[list] = [(file_id, None, filename) for file_id, _, filename in tvd.CelebA.file_list]


def _in_memory(
    request: DataRequest,
    images: torch.Tensor,
    labels: Sequence[int] | torch.Tensor,
    class_names: Sequence[str],
) -> TensorImageDataset:
    """uint8 (N, C, H, W) images resized and converted once, with int64 labels in 0..len(class_names)-1."""
    hint = "the files look corrupt; re-download the dataset"
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] not in (1, 3) or 0 in images.shape[2:]:
        raise DataError(f"{request.name}: the images in {request.root} are {images.dtype} {tuple(images.shape)}, "
                        "not 8-bit gray or RGB pictures", hint=hint)
    labels = torch.as_tensor(labels, dtype=torch.long).reshape(-1)
    if len(labels) != len(images):
        raise DataError(f"{request.name}: {len(images)} images but {len(labels)} labels in {request.root}", hint=hint)
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= len(class_names)):
        raise DataError(f"{request.name}: labels in {request.root} lie outside 0..{len(class_names) - 1} "
                        f"({int(labels.min())}..{int(labels.max())})", hint=hint)
    images = convert_images(images.contiguous(), request.image_size, request.channels)
    return TensorImageDataset(request.info(class_names=tuple(class_names)), images, labels)


def _build_cifar(request: DataRequest, cls: type[tvd.CIFAR10]) -> TensorImageDataset:
    images, labels, classes = read_cifar(cls, request.root, train=request.split == "train",
                                         verify=request.verify_checksums, download=request.download)
    return _in_memory(request, torch.from_numpy(images), labels, classes)


def build_cifar10(request: DataRequest) -> TensorImageDataset:
    return _build_cifar(request, tvd.CIFAR10)


def build_cifar100(request: DataRequest) -> TensorImageDataset:
    return _build_cifar(request, tvd.CIFAR100)


def build_svhn(request: DataRequest) -> TensorImageDataset:
    cls = tvd.SVHN if request.verify_checksums else SVHNUnverified
    assert request.root is not None
    ds = cls(str(request.root / "svhn"), split=request.split, download=request.download)
    images = torch.from_numpy(ds.data)  # torchvision already gives (N, C, H, W)
    return _in_memory(request, images, torch.from_numpy(ds.labels), [str(d) for d in range(10)])


def build_mnist(request: DataRequest) -> TensorImageDataset:
    ds = tvd.MNIST(str(request.root), train=request.split == "train", download=request.download)
    return _in_memory(request, ds.data.unsqueeze(1), ds.targets, ds.classes)


def build_fashion_mnist(request: DataRequest) -> TensorImageDataset:
    ds = tvd.FashionMNIST(str(request.root), train=request.split == "train", download=request.download)
    return _in_memory(request, ds.data.unsqueeze(1), ds.targets, ds.classes)


def build_celeba(request: DataRequest) -> ImageFileDataset:
    """CelebA aligned faces decoded on demand; attributes as uint8 0/1 (N, 40); no class label."""
    cls = tvd.CelebA if request.verify_checksums else CelebAUnverified
    ds = cls(str(request.root), split=request.split, target_type="attr", download=request.download)
    names = tuple(n for n in ds.attr_names if n)  # the header line ends with a space: drop the empty name
    if names != CELEBA_ATTRIBUTES:
        raise DataError(
            f"celeba: list_attr_celeba.txt in {request.root}/celeba does not name the 40 CelebA attributes",
            hint="the file is not the official one; re-download it",
        )
    if not bool(((ds.attr == 0) | (ds.attr == 1)).all()):
        raise DataError(
            f"celeba: list_attr_celeba.txt in {request.root}/celeba has values other than -1 and 1",
            hint="the file is not the official one; re-download it",
        )
    folder = request.root / "celeba" / "img_align_celeba"  # type: ignore[operator]
    return ImageFileDataset(
        request.info(attribute_names=names),
        [folder / name for name in ds.filename],
        torch.full((len(ds.filename),), -1, dtype=torch.long),
        ds.attr.to(torch.uint8),
        crop=CELEBA_CROP,
    )


def build_dtd(request: DataRequest, top_left: bool = False) -> ImageFileDataset:
    """DTD partition 1 decoded on demand, centre-cropped to a square (or cropped at the top-left corner)."""
    ds = tvd.DTD(str(request.root), split=request.split, partition=1, download=request.download)
    # DTD exposes its file list and labels only through these attributes.
    return ImageFileDataset(
        request.info(class_names=tuple(ds.classes)),
        list(ds._image_files),
        torch.tensor(ds._labels, dtype=torch.long),
        top_left=top_left,
    )


def build_dtd_topleft(request: DataRequest) -> ImageFileDataset:
    """DTD partition 1 as ICD's and CLEL's released OOD code reads it: the top-left square of the output size
    (32x32 at 32 px) at native resolution, never resized."""
    return build_dtd(request, top_left=True)
