"""Real datasets through their real readers, from fixtures in each dataset's exact on-disk format."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
from PIL import Image

from ebmctl.data import dataset_entry, load_dataset
from ebmctl.errors import DataError

from .fixtures import (
    CELEBA_ATTRIBUTES,
    CIFAR10_CLASSES,
    DTD_CLASSES,
    IMAGENET_VAL_WNIDS,
    IMAGENET_WNIDS,
    SEEDS,
    celeba_attributes,
    celeba_partition,
    dtd_split,
    fixture_images,
    imagenet_files,
    imagenet_image,
    write_all,
    write_celeba,
    write_cifar10,
    write_imagenet,
    write_imagenet32,
    write_mnist,
    write_svhn,
)

# name -> (split sizes in file order, number of classes, channels, native size)
LOSSLESS = {
    "cifar10": ({"train": 20, "test": 10}, 10, 3, 32),
    "cifar100": ({"train": 20, "test": 10}, 100, 3, 32),
    "svhn": ({"train": 20, "test": 10, "extra": 6}, 10, 3, 32),
    "mnist": ({"train": 20, "test": 10}, 10, 1, 28),
    "fashion-mnist": ({"train": 20, "test": 10}, 10, 1, 28),
    "imagenet32": ({"train": 20, "val": 10}, 1000, 3, 32),
}


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return write_all(tmp_path_factory.mktemp("data"))


def _expected(name: str, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    sizes, classes, channels, size = LOSSLESS[name]
    total = sum(sizes.values())
    start = sum(n for s, n in sizes.items() if list(sizes).index(s) < list(sizes).index(split))
    index = np.arange(start, start + sizes[split])
    images = fixture_images(total, size, size, SEEDS[name])[index]
    x = torch.from_numpy(images).permute(0, 3, 1, 2)
    return (x if channels == 3 else x[:, :1]), torch.from_numpy(index % classes)


@pytest.mark.parametrize(("name", "split"), [(n, s) for n, v in LOSSLESS.items() for s in v[0]])
def test_in_memory_datasets_read_exactly(root, name, split):
    ds = load_dataset(name, root=root, split=split, verify_checksums=False)
    images, labels = _expected(name, split)
    _, classes, channels, size = LOSSLESS[name]
    assert ds.info.shape == (channels, size, size) and ds.info.num_classes == classes
    assert ds.images.dtype == torch.uint8
    assert torch.equal(ds.images, images)  # layout, orientation and channel order all preserved
    assert torch.equal(ds.labels(), labels) and ds.labels().dtype == torch.long
    x, y = ds.get_batch(torch.tensor([1, 0]))
    assert torch.equal(x[1], ds[0][0]) and y.tolist() == [ds[1][1], ds[0][1]]


def test_class_names(root):
    assert load_dataset("cifar10", root=root, verify_checksums=False).info.class_names == CIFAR10_CLASSES
    assert len(load_dataset("cifar100", root=root, verify_checksums=False).info.class_names) == 100
    assert load_dataset("svhn", root=root, verify_checksums=False).info.class_names[0] == "0"


def test_resized_and_converted_once(root):
    ds = load_dataset("mnist", root=root, split="test", image_size=32, channels=3, verify_checksums=False)
    assert ds.images.shape == (10, 3, 32, 32)
    assert torch.equal(ds.images[:, 0], ds.images[:, 2])
    gray = load_dataset("cifar10", root=root, split="test", channels=1, verify_checksums=False)
    assert gray.images.shape == (10, 1, 32, 32)


@pytest.mark.parametrize("split", ["train", "valid", "test"])
def test_celeba(root, split):
    ds = load_dataset("celeba", root=root, split=split, verify_checksums=False)
    part = celeba_partition(12)
    code = {"train": 0, "valid": 1, "test": 2}[split]
    assert len(ds) == int((part == code).sum())
    assert ds.info.attribute_names == CELEBA_ATTRIBUTES and len(CELEBA_ATTRIBUTES) == 40
    attrs = ds.attributes()
    assert attrs.dtype == torch.uint8 and torch.equal(
        attrs, torch.from_numpy(celeba_attributes(12)[part == code])
    )
    assert bool((ds.labels() == -1).all()) and ds.info.num_classes == 0
    x, y = ds[0]
    assert x.shape == (3, 64, 64) and x.dtype == torch.uint8 and y == -1
    # centre 140x140 crop of the 178x218 face, then resized
    source = fixture_images(12, 218, 178, SEEDS["celeba"])[int(np.flatnonzero(part == code)[0])]
    crop = Image.fromarray(source).crop((19, 39, 159, 179)).resize((64, 64), Image.Resampling.BILINEAR)
    expected = torch.from_numpy(np.array(crop)).permute(2, 0, 1).float()
    assert (x.float() - expected).abs().mean() < 3


def test_celeba_at_another_size_and_in_gray(root):
    ds = load_dataset("celeba", root=root, image_size=32, channels=1, verify_checksums=False)
    x, _ = ds[0]
    assert x.shape == (1, 32, 32)
    assert ds.get_batch(torch.tensor([0, 1]))[0].shape == (2, 1, 32, 32)


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_dtd_partition_one(root, split):
    ds = load_dataset("dtd", root=root, split=split, verify_checksums=False)
    numbers = [j for j in range(1, 7) if dtd_split(j, 1) == split]
    assert len(ds) == len(numbers) * len(DTD_CLASSES)
    assert ds.info.class_names == DTD_CLASSES and ds.info.shape == (3, 32, 32)
    assert sorted(ds.labels().tolist()) == sorted(list(range(3)) * len(numbers))
    x, y = ds[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.uint8 and 0 <= y < 3
    big = load_dataset("dtd", root=root, split=split, image_size=48, verify_checksums=False)
    assert big[len(big) - 1][0].shape == (3, 48, 48)


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "svhn", "celeba"])
def test_checksums_are_verified_by_default(root, name):
    with pytest.raises(DataError) as info:
        load_dataset(name, root=root)
    assert "do not match their checksums" in info.value.message
    assert info.value.setting[0] == "data.verify_checksums=false"  # the command line offers it in its own syntax
    assert "\n" not in info.value.message


@pytest.mark.parametrize(
    "name",
    ["cifar10", "cifar100", "svhn", "celeba", "mnist", "fashion-mnist", "dtd", "imagenet32", "imagenet"],
)
def test_missing_dataset_names_directory_and_files(tmp_path, name):
    entry = dataset_entry(name)
    with pytest.raises(DataError) as info:
        load_dataset(name, root=tmp_path, split="train")
    message = info.value.message
    assert str(tmp_path / entry.directory) in message
    assert all(f in message for f in entry.expected_files("train"))
    assert "\n" not in message and info.value.hint == entry.how_to_get
    assert (info.value.setting is not None) == entry.downloadable  # `train` offers --download


def test_incomplete_dataset_names_the_missing_file(tmp_path):
    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "test_batch").unlink()
    with pytest.raises(DataError, match=r"lacks test_batch"):
        load_dataset("cifar10", root=tmp_path, verify_checksums=False)


def test_svhn_needs_only_the_split_it_reads(tmp_path):
    write_svhn(tmp_path)
    (tmp_path / "svhn" / "extra_32x32.mat").unlink()
    assert len(load_dataset("svhn", root=tmp_path, split="test", verify_checksums=False)) == 10
    with pytest.raises(DataError, match=r"extra_32x32\.mat"):
        load_dataset("svhn", root=tmp_path, split="extra", verify_checksums=False)


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@pytest.mark.parametrize(
    ("name", "writer", "relative"),
    [
        ("cifar10", write_cifar10, "cifar-10-batches-py/data_batch_3"),
        ("cifar10", write_cifar10, "cifar-10-batches-py/batches.meta"),
        ("svhn", write_svhn, "svhn/train_32x32.mat"),
        ("mnist", write_mnist, "MNIST/raw/train-images-idx3-ubyte"),
        ("mnist", write_mnist, "MNIST/raw/train-labels-idx1-ubyte"),
        ("imagenet32", write_imagenet32, "imagenet32/train_data_batch_2.npz"),
        ("celeba", write_celeba, "celeba/list_attr_celeba.txt"),
    ],
)
def test_truncated_files_raise_data_errors(tmp_path, name, writer, relative):
    writer(tmp_path)
    _truncate(tmp_path / relative, 0.3)
    with pytest.raises(DataError) as info:
        load_dataset(name, root=tmp_path, verify_checksums=False)
    assert "\n" not in info.value.message and info.value.hint


def test_garbage_files_raise_data_errors(tmp_path):
    write_svhn(tmp_path)
    (tmp_path / "svhn" / "train_32x32.mat").write_bytes(b"not a matlab file at all" * 10)
    with pytest.raises(DataError, match="cannot read"):
        load_dataset("svhn", root=tmp_path, verify_checksums=False)
    write_mnist(tmp_path)
    (tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte").write_bytes(b"\x00\x00\x0d\x03" + bytes(40))
    with pytest.raises(DataError):
        load_dataset("mnist", root=tmp_path, split="test", verify_checksums=False)


def test_imagenet32_rejects_pickles_and_wrong_contents(tmp_path):
    write_imagenet32(tmp_path)
    folder = tmp_path / "imagenet32"
    np.savez(folder / "val_data.npz", data=np.array([{"a": 1}], dtype=object), labels=np.array([1]))
    with pytest.raises(DataError, match=r"val_data\.npz"):
        load_dataset("imagenet32", root=tmp_path, split="val")
    np.savez(folder / "val_data.npz", data=np.zeros((3, 100), np.uint8), labels=np.array([1, 2, 3]))
    with pytest.raises(DataError, match="expected uint8"):
        load_dataset("imagenet32", root=tmp_path, split="val")
    np.savez(folder / "val_data.npz", data=np.zeros((1, 3072), np.uint8), labels=np.array([0]))
    with pytest.raises(DataError, match=r"outside 1\.\.1000"):
        load_dataset("imagenet32", root=tmp_path, split="val")
    np.savez(folder / "val_data.npz", images=np.zeros((1, 3072), np.uint8))
    with pytest.raises(DataError, match="'data' and 'labels'"):
        load_dataset("imagenet32", root=tmp_path, split="val")
    with zipfile.ZipFile(folder / "val_data.npz", "w") as z:
        z.writestr("data.npy", b"garbage")
        z.writestr("labels.npy", b"garbage")
    with pytest.raises(DataError):
        load_dataset("imagenet32", root=tmp_path, split="val")


def test_corrupt_image_is_reported_when_read(tmp_path):
    write_celeba(tmp_path)
    ds = load_dataset("celeba", root=tmp_path, verify_checksums=False)
    _truncate(ds.paths[0], 0.1)
    with pytest.raises(DataError, match=ds.paths[0].name):
        ds[0]
    shutil.rmtree(tmp_path / "celeba" / "img_align_celeba")
    with pytest.raises(DataError, match="img_align_celeba/"):
        load_dataset("celeba", root=tmp_path, verify_checksums=False)


def test_download_failure_is_a_data_error(tmp_path, monkeypatch):
    import torchvision.datasets.cifar as cifar

    def offline(*args, **kwargs):
        raise URLError("no network")

    monkeypatch.setattr(cifar, "download_and_extract_archive", offline)
    with pytest.raises(DataError) as info:
        load_dataset("cifar10", root=tmp_path, download=True)
    assert "download" in info.value.message and "no network" in info.value.message
    assert "cifar.html" in info.value.hint


def test_imagenet32_is_never_downloaded(tmp_path):
    with pytest.raises(DataError, match="not found") as info:
        load_dataset("imagenet32", root=tmp_path, download=True, split="val")
    assert "cannot download" in info.value.hint


def test_present_files_are_read_even_with_download(root):
    ds = load_dataset("mnist", root=root, download=True, split="test")
    assert len(ds) == 10


def _square_resized(image: np.ndarray, size: int) -> torch.Tensor:
    """The largest centred square of ``image`` (H, W, 3) resized to ``size``, as float (3, size, size)."""
    h, w = image.shape[:2]
    side = min(h, w)
    left, top = (w - side) // 2, (h - side) // 2
    square = Image.fromarray(image).crop((left, top, left + side, top + side))
    resized = square.resize((size, size), Image.Resampling.BILINEAR)
    return torch.from_numpy(np.array(resized)).permute(2, 0, 1).float()


@pytest.mark.parametrize(("split", "per_class"), [("train", 3), ("val", 2)])
def test_imagenet_class_folders(root, split, per_class):
    ds = load_dataset("imagenet", root=root, split=split)
    files = imagenet_files(split, per_class)
    assert len(ds) == len(files)
    assert (
        ds.info.shape == (3, 128, 128) and ds.info.class_names == IMAGENET_WNIDS and ds.info.num_classes == 3
    )
    assert [(p.parent.name, p.name) for p in ds.paths] == [(w, n) for w, n, _ in files]
    # a label is the index of the wnid among train's sorted class folders, in val too
    assert ds.labels().tolist() == [IMAGENET_WNIDS.index(w) for w, _, _ in files]
    if split == "val":
        assert sorted(set(ds.labels().tolist())) == [IMAGENET_WNIDS.index(w) for w in IMAGENET_VAL_WNIDS]
    for i, (wnid, _, number) in enumerate(files):
        x, y = ds[i]
        assert x.shape == (3, 128, 128) and x.dtype == torch.uint8 and y == IMAGENET_WNIDS.index(wnid)
        assert (x.float() - _square_resized(imagenet_image(split, wnid, number), 128)).abs().mean() < 3
    xs, ys = ds.get_batch(torch.tensor([1, 0]))
    assert xs.shape == (2, 3, 128, 128) and ys.tolist() == [ds[1][1], ds[0][1]]


def test_imagenet_at_another_size_and_in_gray(root):
    ds = load_dataset("imagenet", root=root, image_size=64)
    assert ds.info.shape == (3, 64, 64) and ds[0][0].shape == (3, 64, 64)
    wnid, _, number = imagenet_files("train", 3)[1]
    assert (ds[1][0].float() - _square_resized(imagenet_image("train", wnid, number), 64)).abs().mean() < 3
    gray = load_dataset("imagenet", root=root, split="val", image_size=32, channels=1)
    assert gray.get_batch(torch.tensor([0, 3]))[0].shape == (2, 1, 32, 32)


@pytest.mark.parametrize("wide", [True, False])
def test_imagenet_crops_the_centre_square(tmp_path, wide):
    write_imagenet(tmp_path)
    pattern = np.zeros((96, 288, 3), np.uint8)  # red bands either side of a blue centre square
    pattern[:, :96] = pattern[:, 192:] = (255, 0, 0)
    pattern[:, 96:192] = (0, 0, 255)
    if not wide:
        pattern = pattern.transpose(1, 0, 2).copy()  # bands above and below
    wnid, name, _ = imagenet_files("train", 3)[0]
    # 4:4:4 and band edges on 8x8 block boundaries: no colour bleeds across them
    Image.fromarray(pattern).save(
        tmp_path / "imagenet" / "train" / wnid / name, "JPEG", quality=95, subsampling=0
    )
    x, _ = load_dataset("imagenet", root=tmp_path)[0]
    assert x.shape == (3, 128, 128)
    assert int(x[2].min()) > 230 and int(x[0].max()) < 25  # blue everywhere, the red bands cropped away


def test_imagenet_ignores_hidden_entries_and_other_files(tmp_path):
    write_imagenet(tmp_path)
    train = tmp_path / "imagenet" / "train"
    (train / ".cache").mkdir()
    (train / IMAGENET_WNIDS[0] / ".DS_Store").write_bytes(b"\x00")
    (train / IMAGENET_WNIDS[0] / "notes.txt").write_text("not an image")
    (train / "LOC_synset_mapping.txt").write_text("n01440764 tench")
    ds = load_dataset("imagenet", root=tmp_path)
    assert len(ds) == 9 and ds.info.class_names == IMAGENET_WNIDS


def test_imagenet_path_table_is_a_sequence(root):
    paths = load_dataset("imagenet", root=root, split="val").paths
    assert len(paths) == 4 and paths[-1] == list(paths)[3]
    assert [p.name for p in paths[1:3]] == [paths[1].name, paths[2].name] and len(paths[1:3]) == 2
    assert paths[0].is_file() and paths[0].parent.parent.name == "val"


def test_imagenet_truncated_image_is_reported_when_read(tmp_path):
    write_imagenet(tmp_path)
    ds = load_dataset("imagenet", root=tmp_path, split="val")
    _truncate(ds.paths[1], 0.5)
    ds[0]  # the others still read
    with pytest.raises(DataError, match=ds.paths[1].name) as info:
        ds[1]
    assert "\n" not in info.value.message and info.value.hint


def test_imagenet_missing_root_or_split(tmp_path):
    with pytest.raises(DataError) as info:
        load_dataset("imagenet", root=tmp_path / "nowhere", split="val")
    assert info.value.message.startswith("imagenet not found") and "\n" not in info.value.message
    assert "ILSVRC2012_img_train.tar" in info.value.hint and "valprep" in info.value.hint
    write_imagenet(tmp_path)
    shutil.rmtree(tmp_path / "imagenet" / "train")
    with pytest.raises(DataError, match=r"imagenet is incomplete: .* lacks train/"):
        load_dataset("imagenet", root=tmp_path, split="val")  # val is labelled by train's class folders


def _imagenet_error(root: Path, split: str = "train") -> DataError:
    with pytest.raises(DataError) as info:
        load_dataset("imagenet", root=root, split=split)
    assert info.value.message.startswith("imagenet: ") and "\n" not in info.value.message and info.value.hint
    return info.value


def test_imagenet_empty_or_unsorted_splits(tmp_path):
    write_imagenet(tmp_path)
    folder = tmp_path / "imagenet"
    val = folder / "val"
    for path in sorted(val.rglob("*.JPEG")):
        path.rename(val / path.name)  # the val tar as extracted: images not yet sorted into class folders
    for wnid in IMAGENET_VAL_WNIDS:
        (val / wnid).rmdir()
    error = _imagenet_error(tmp_path, "val")
    assert "no class folders" in error.message and "valprep.sh" in error.hint
    for path in val.iterdir():
        path.unlink()
    assert "no class folders" in _imagenet_error(tmp_path, "val").message
    (val / IMAGENET_WNIDS[1]).mkdir()
    error = _imagenet_error(tmp_path, "val")
    assert "no images" in error.message and str(val) in error.message
    (val / "n99999999").mkdir()
    assert "n99999999" in _imagenet_error(tmp_path, "val").message
    shutil.rmtree(folder / "train")
    (folder / "train").mkdir()
    for wnid in IMAGENET_WNIDS:
        (folder / "train" / f"{wnid}.tar").write_bytes(b"")  # the train tar as extracted: one tar per class
    assert "<wnid>.tar" in _imagenet_error(tmp_path).hint


def test_imagenet_is_never_downloaded(tmp_path):
    with pytest.raises(DataError, match="not found") as info:
        load_dataset("imagenet", root=tmp_path, download=True)
    assert "cannot download" in info.value.hint
