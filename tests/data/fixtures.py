"""Tiny real datasets written in each dataset's exact on-disk format, so tests exercise the real readers.

Every ``write_*(root, ...)`` writes under the data root ``root`` and returns ``root`` (the value to pass as
``load_dataset(root=...)`` or ``--data-root``). Content is deterministic: image ``i`` of a dataset (train
images first, then test) is ``fixture_images(total, height, width, seed)[i]`` with the dataset's seed in
``SEEDS``, and its label is ``i % num_classes``. Checksums are those of these files, not the official ones,
so the datasets load only with ``verify_checksums=False``.
"""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image

SEEDS = {
    "cifar10": 10,
    "cifar100": 100,
    "svhn": 7,
    "celeba": 40,
    "mnist": 28,
    "fashion-mnist": 29,
    "dtd": 47,
    "imagenet32": 32,
    "imagenet": 1000,
}

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
CIFAR100_FINE = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle", "bowl", "boy",
    "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle", "chair", "chimpanzee",
    "clock", "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur", "dolphin", "elephant",
    "flatfish", "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard", "lamp", "lawn_mower",
    "leopard", "lion", "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain", "mouse", "mushroom",
    "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree", "plain", "plate",
    "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road", "rocket", "rose", "sea", "seal", "shark",
    "shrew", "skunk", "skyscraper", "snail", "snake", "spider", "squirrel", "streetcar", "sunflower",
    "sweet_pepper", "table", "tank", "telephone", "television", "tiger", "tractor", "train", "trout", "tulip",
    "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm",
)  # fmt: skip
CIFAR100_COARSE = (
    "aquatic_mammals", "fish", "flowers", "food_containers", "fruit_and_vegetables",
    "household_electrical_devices", "household_furniture", "insects", "large_carnivores",
    "large_man-made_outdoor_things", "large_natural_outdoor_scenes", "large_omnivores_and_herbivores",
    "medium_mammals", "non-insect_invertebrates", "people", "reptiles", "small_mammals", "trees", "vehicles_1",
    "vehicles_2",
)  # fmt: skip
CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs", "Big_Lips",
    "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows", "Chubby", "Double_Chin",
    "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones", "Male", "Mouth_Slightly_Open",
    "Mustache", "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline",
    "Rosy_Cheeks", "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat",
    "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie", "Young",
)  # fmt: skip
CELEBA_SIZE = (178, 218)  # width, height of the aligned faces
CELEBA_PARTITION = (0.6, 0.2)  # fractions of train and valid; the rest is test
DTD_CLASSES = ("banded", "blotchy", "braided")
DTD_SIZES = ((300, 240), (240, 320), (256, 256))  # (width, height) by image number, cycled
IMAGENET_WNIDS = ("n01440764", "n01443537", "n02085620")  # sorted: label = index
IMAGENET_SIZES = ((160, 120), (100, 150), (128, 128))  # (width, height) by image number, cycled
IMAGENET_VAL_WNIDS = (IMAGENET_WNIDS[0], IMAGENET_WNIDS[2])  # val lacks the middle class
MNIST_FOLDERS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}


def fixture_images(n: int, height: int = 32, width: int = 32, seed: int = 0) -> np.ndarray:
    """``n`` smooth RGB images uint8 (n, height, width, 3): a colour plus per-channel gradients along x and y.

    Different gradients per axis and channel make a transposed or channel-swapped read visible; smoothness keeps
    JPEG close to the original.
    """
    rng = np.random.default_rng(seed)
    y = np.linspace(-0.5, 0.5, height)[None, :, None, None]
    x = np.linspace(-0.5, 0.5, width)[None, None, :, None]
    base = rng.uniform(60, 195, (n, 1, 1, 3))
    gx, gy = rng.uniform(-110, 110, (2, n, 1, 1, 3))
    return np.clip(np.rint(base + gx * x + gy * y), 0, 255).astype(np.uint8)


def celeba_attributes(n: int) -> np.ndarray:
    """The 0/1 attributes (n, 40) written for the CelebA fixture."""
    return np.random.default_rng(SEEDS["celeba"] + 1).integers(0, 2, (n, 40)).astype(np.uint8)


def celeba_partition(n: int) -> np.ndarray:
    """The partition (0 train, 1 valid, 2 test) of each CelebA fixture image, in file order."""
    n_train, n_valid = round(n * CELEBA_PARTITION[0]), round(n * CELEBA_PARTITION[1])
    return np.repeat([0, 1, 2], [n_train, n_valid, n - n_train - n_valid])


def _planar(images: np.ndarray) -> np.ndarray:
    return images.transpose(0, 3, 1, 2).reshape(len(images), -1)


def _pickle(path: Path, obj: dict) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)  # the official files are Python 2 pickles


def write_cifar10(root: Path, n_train: int = 20, n_test: int = 10) -> Path:
    """``cifar-10-batches-py/``: data_batch_1..5, test_batch, batches.meta."""
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    images = fixture_images(n_train + n_test, seed=SEEDS["cifar10"])
    labels = np.arange(n_train + n_test) % 10
    batches = [*np.array_split(np.arange(n_train), 5), np.arange(n_train, n_train + n_test)]
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    titles = [f"training batch {i} of 5" for i in range(1, 6)] + ["testing batch 1 of 1"]
    for name, title, idx in zip(names, titles, batches, strict=True):
        _pickle(
            folder / name,
            {
                "batch_label": title,
                "labels": [int(v) for v in labels[idx]],
                "data": _planar(images[idx]),
                "filenames": [f"fixture_{i:05d}.png" for i in idx],
            },
        )
    _pickle(
        folder / "batches.meta",
        {"num_cases_per_batch": 10000, "label_names": list(CIFAR10_CLASSES), "num_vis": 3072},
    )
    return Path(root)


def write_cifar100(root: Path, n_train: int = 20, n_test: int = 10) -> Path:
    """``cifar-100-python/``: train, test, meta (fine and coarse labels)."""
    folder = Path(root) / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    images = fixture_images(n_train + n_test, seed=SEEDS["cifar100"])
    labels = np.arange(n_train + n_test) % 100
    for name, idx in (("train", np.arange(n_train)), ("test", np.arange(n_train, n_train + n_test))):
        _pickle(
            folder / name,
            {
                "filenames": [f"fixture_{i:05d}.png" for i in idx],
                "batch_label": f"{'training' if name == 'train' else 'testing'} batch 1 of 1",
                "fine_labels": [int(v) for v in labels[idx]],
                "coarse_labels": [int(v) % 20 for v in labels[idx]],
                "data": _planar(images[idx]),
            },
        )
    _pickle(
        folder / "meta",
        {"fine_label_names": list(CIFAR100_FINE), "coarse_label_names": list(CIFAR100_COARSE)},
    )
    return Path(root)


def write_svhn(root: Path, n_train: int = 20, n_test: int = 10, n_extra: int = 6) -> Path:
    """``svhn/{train,test,extra}_32x32.mat`` (MATLAB v5): X (32, 32, 3, N) uint8, y (N, 1) with 10 for 0."""
    folder = Path(root) / "svhn"
    folder.mkdir(parents=True, exist_ok=True)
    sizes = {"train": n_train, "test": n_test, "extra": n_extra}
    images = fixture_images(sum(sizes.values()), seed=SEEDS["svhn"])
    labels = np.arange(len(images)) % 10
    start = 0
    for split, n in sizes.items():
        digits = labels[start : start + n]
        mat = {
            "X": np.ascontiguousarray(images[start : start + n].transpose(1, 2, 3, 0)),
            "y": np.where(digits == 0, 10, digits).astype(np.uint8).reshape(-1, 1),
        }
        scipy.io.savemat(folder / f"{split}_32x32.mat", mat, format="5")
        start += n
    return Path(root)


def write_celeba(root: Path, n: int = 12) -> Path:
    """``celeba/img_align_celeba/*.jpg`` (178x218) and the five annotation files in their exact formats."""
    folder = Path(root) / "celeba"
    (folder / "img_align_celeba").mkdir(parents=True, exist_ok=True)
    width, height = CELEBA_SIZE
    names = [f"{i:06d}.jpg" for i in range(1, n + 1)]
    for name, image in zip(names, fixture_images(n, height, width, SEEDS["celeba"]), strict=True):
        Image.fromarray(image).save(folder / "img_align_celeba" / name, quality=95)
    attributes = celeba_attributes(n).astype(np.int64) * 2 - 1
    rng = np.random.default_rng(SEEDS["celeba"] + 2)
    _write_lines(
        folder / "list_eval_partition.txt",
        [f"{f} {p}" for f, p in zip(names, celeba_partition(n), strict=True)],
    )
    _write_lines(folder / "identity_CelebA.txt", [f"{f} {rng.integers(1, 10178)}" for f in names])
    # The attribute header ends with a space, and values are padded to two characters, as in the original.
    _write_lines(
        folder / "list_attr_celeba.txt",
        [str(n), " ".join(CELEBA_ATTRIBUTES) + " "]
        + [f"{f} " + " ".join(f"{v:2d}" for v in row) for f, row in zip(names, attributes, strict=True)],
    )
    boxes = rng.integers(20, 300, (n, 4))
    _write_lines(
        folder / "list_bbox_celeba.txt",
        [str(n), "image_id x_1 y_1 width height"]
        + [f"{f}    {b[0]:3d} {b[1]:3d} {b[2]:3d} {b[3]:3d}" for f, b in zip(names, boxes, strict=True)],
    )
    marks = rng.integers(60, 160, (n, 10))
    header = "lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y rightmouth_x rightmouth_y"
    _write_lines(
        folder / "list_landmarks_align_celeba.txt",
        [str(n), header]
        + [f"{f} " + " ".join(f"{v:4d}" for v in row) for f, row in zip(names, marks, strict=True)],
    )
    return Path(root)


def _write_lines(path: Path, lines: list[str]) -> None:
    path.write_text("".join(line + "\n" for line in lines))


def _idx(path: Path, array: np.ndarray) -> None:
    """An uncompressed IDX file of uint8 (type code 0x08), dimensions as big-endian int32."""
    header = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def _write_idx_dataset(root: Path, name: str, n_train: int, n_test: int) -> Path:
    folder = Path(root) / MNIST_FOLDERS[name] / "raw"
    folder.mkdir(parents=True, exist_ok=True)
    images = fixture_images(n_train + n_test, 28, 28, SEEDS[name])[..., 0]
    labels = np.arange(n_train + n_test) % 10
    for prefix, idx in (("train", slice(0, n_train)), ("t10k", slice(n_train, n_train + n_test))):
        _idx(folder / f"{prefix}-images-idx3-ubyte", images[idx])
        _idx(folder / f"{prefix}-labels-idx1-ubyte", labels[idx])
    return Path(root)


def write_mnist(root: Path, n_train: int = 20, n_test: int = 10) -> Path:
    """``MNIST/raw/`` with the four uncompressed IDX files."""
    return _write_idx_dataset(root, "mnist", n_train, n_test)


def write_fashion_mnist(root: Path, n_train: int = 20, n_test: int = 10) -> Path:
    """``FashionMNIST/raw/`` with the four uncompressed IDX files."""
    return _write_idx_dataset(root, "fashion-mnist", n_train, n_test)


def dtd_split(image_number: int, partition: int) -> str:
    """The split of image ``image_number`` (from 1) of each class in ``partition`` (1..10)."""
    return ("train", "val", "test")[(image_number + partition) % 3]


def write_dtd(root: Path, per_class: int = 6) -> Path:
    """``dtd/dtd/images/<class>/<class>_NNNN.jpg`` of varied sizes and ``labels/{train,val,test}{1..10}.txt``."""
    folder = Path(root) / "dtd" / "dtd"
    (folder / "labels").mkdir(parents=True, exist_ok=True)
    rng_seed = SEEDS["dtd"]
    entries = []
    for c, cls in enumerate(DTD_CLASSES):
        (folder / "images" / cls).mkdir(parents=True, exist_ok=True)
        for j in range(1, per_class + 1):
            width, height = DTD_SIZES[(j - 1) % len(DTD_SIZES)]
            image = fixture_images(1, height, width, rng_seed + 100 * c + j)[0]
            Image.fromarray(image).save(folder / "images" / cls / f"{cls}_{j:04d}.jpg", quality=95)
            entries.append((j, f"{cls}/{cls}_{j:04d}.jpg"))
    for partition in range(1, 11):
        for split in ("train", "val", "test"):
            lines = [path for j, path in entries if dtd_split(j, partition) == split]
            _write_lines(folder / "labels" / f"{split}{partition}.txt", lines)
    _write_lines(folder / "labels" / "labels_joint_anno.txt", [f"{p} {p.split('/')[0]} " for _, p in entries])
    return Path(root)


def write_imagenet32(root: Path, n_train: int = 20, n_val: int = 10) -> Path:
    """``imagenet32/train_data_batch_1..10.npz`` and ``val_data.npz``: data (N, 3072) planar RGB, labels 1..1000."""
    folder = Path(root) / "imagenet32"
    folder.mkdir(parents=True, exist_ok=True)
    images = fixture_images(n_train + n_val, seed=SEEDS["imagenet32"])
    labels = np.arange(n_train + n_val) % 1000 + 1
    for i, idx in enumerate(np.array_split(np.arange(n_train), 10), 1):
        mean = _planar(images[:n_train]).mean(axis=0)
        np.savez(
            folder / f"train_data_batch_{i}.npz", data=_planar(images[idx]), labels=labels[idx], mean=mean
        )
    val = np.arange(n_train, n_train + n_val)
    np.savez(folder / "val_data.npz", data=_planar(images[val]), labels=labels[val])
    return Path(root)


def imagenet_image(split: str, wnid: str, number: int) -> np.ndarray:
    """The uint8 (height, width, 3) image ``number`` (from 0) of class ``wnid`` in ``split`` (``write_imagenet``)."""
    width, height = IMAGENET_SIZES[number % len(IMAGENET_SIZES)]
    seed = SEEDS["imagenet"] + 100 * (split == "val") + 10 * IMAGENET_WNIDS.index(wnid) + number
    return fixture_images(1, height, width, seed)[0]


def imagenet_files(split: str, per_class: int) -> list[tuple[str, str, int]]:
    """(wnid, file name, image number) of each image of ``split``, in the reader's (wnid, name) order."""
    wnids = IMAGENET_WNIDS if split == "train" else IMAGENET_VAL_WNIDS
    files = []
    for c, wnid in enumerate(wnids):
        for j in range(per_class):
            name = (
                f"{wnid}_{j + 1}.JPEG"
                if split == "train"
                else f"ILSVRC2012_val_{c * per_class + j + 1:08d}.JPEG"
            )
            files.append((wnid, name, j))
    return files


def write_imagenet(root: Path, n_train: int = 3, n_val: int = 2) -> Path:
    """``imagenet/{train,val}/<wnid>/*.JPEG``, the class-folder layout torchvision's ImageNet class writes.

    ``n_train`` and ``n_val`` images per class, of the varied sizes ``IMAGENET_SIZES``; val holds only
    ``IMAGENET_VAL_WNIDS``.
    """
    folder = Path(root) / "imagenet"
    for split, per_class in (("train", n_train), ("val", n_val)):
        for wnid, name, number in imagenet_files(split, per_class):
            (folder / split / wnid).mkdir(parents=True, exist_ok=True)
            Image.fromarray(imagenet_image(split, wnid, number)).save(
                folder / split / wnid / name, "JPEG", quality=95
            )
    return Path(root)


def write_all(root: Path) -> Path:
    """Every real dataset's fixture under ``root``; returns ``root``."""
    for write in (
        write_cifar10,
        write_cifar100,
        write_svhn,
        write_celeba,
        write_mnist,
        write_fashion_mnist,
        write_dtd,
        write_imagenet32,
        write_imagenet,
    ):
        write(root)
    return Path(root)
