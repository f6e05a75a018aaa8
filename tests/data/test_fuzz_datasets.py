"""Fuzzing the real-dataset readers: truncated, corrupted and wrong files in each dataset's on-disk layout, fed
through `ebmctl ood`, `probe` and `train`. Every bad input gives one ``error: ... (hint: ...)`` line, exit 1 or 2,
no traceback, and leaves the runs directory as it was; an input that may still be readable may also succeed."""

from __future__ import annotations

import io
import pickle
import shutil
import struct
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.io
from fuzz_outcome import assert_one_line_failure, runs_tree, tidy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from ebmctl.cli.main import main_entry
from ebmctl.data import load_dataset
from ebmctl.data.real.image_files import ImageFileDataset
from ebmctl.data.stream import BatchStream
from ebmctl.errors import DataError

from .fixtures import (
    CIFAR10_CLASSES,
    IMAGENET_WNIDS,
    celeba_partition,
    dtd_split,
    fixture_images,
    imagenet_files,
    write_all,
)

INPUTS: Counter[str] = Counter()  # generated inputs fed through, by category

TINY_RUN = [arg for item in ("train.steps=1", "train.batch_size=4", "sampler.steps=1", "buffer.size=8", "net.width=4",
                             "method.kl_chains=2", "method.entropy_min_buffer=4", "method.entropy_refs=2",
                             "train.log_every=1") for arg in ("--set", item)]


def fuzz(n: int) -> settings:
    return settings(max_examples=n, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.data_too_large])


class Env:
    """Pristine fixtures of every real dataset, a tiny run to score and probe with, and a scratch data root."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.pristine = write_all(root / "pristine")
        self.runs = root / "runs"
        self.work = root / "work"
        self.marker = root / "unpickled"
        argv = ["--runs-dir", str(self.runs), "--device", "cpu", "-q", "--json", "train", "--preset", "quickstart",
                *TINY_RUN, "--set", "data.verify_checksums=false"]
        assert main_entry(argv) == 0
        self.run = next(self.runs.iterdir())

    def __repr__(self) -> str:
        return f"Env({self.root})"


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> Env:
    return Env(tmp_path_factory.mktemp("fuzz-data"))


# Where each dataset lives under the data root, and the split `ood` reads.
FOLDERS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST", "cifar10": "cifar-10-batches-py",
           "cifar100": "cifar-100-python", "svhn": "svhn", "celeba": "celeba", "dtd": "dtd",
           "imagenet32": "imagenet32", "imagenet": "imagenet"}
EVAL = {"imagenet32": "val", "imagenet": "val"}


def reads(name: str, split: str) -> list[str]:
    """The files (relative to the data root) that reading ``split`` of ``name`` opens."""
    if name in ("mnist", "fashion-mnist"):
        prefix = "train" if split == "train" else "t10k"
        return [f"{FOLDERS[name]}/raw/{prefix}-images-idx3-ubyte", f"{FOLDERS[name]}/raw/{prefix}-labels-idx1-ubyte"]
    if name == "cifar10":
        batches = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
        return [f"cifar-10-batches-py/{b}" for b in [*batches, "batches.meta"]]
    if name == "cifar100":
        return [f"cifar-100-python/{split}", "cifar-100-python/meta"]
    if name == "svhn":
        return [f"svhn/{split}_32x32.mat"]
    if name == "celeba":
        part = {"train": 0, "valid": 1, "test": 2}[split]
        images = [f"celeba/img_align_celeba/{i + 1:06d}.jpg" for i, p in enumerate(celeba_partition(12)) if p == part]
        return [f"celeba/{f}" for f in ("list_attr_celeba.txt", "identity_CelebA.txt", "list_bbox_celeba.txt",
                                        "list_landmarks_align_celeba.txt", "list_eval_partition.txt")] + images
    if name == "dtd":
        images = [f"dtd/dtd/images/{c}/{c}_{j:04d}.jpg" for c in ("banded", "blotchy", "braided") for j in range(1, 7)
                  if dtd_split(j, 1) == split]
        return [f"dtd/dtd/labels/{split}1.txt", *images]
    if name == "imagenet32":
        return [f"imagenet32/{f}" for f in (["val_data.npz"] if split == "val"
                                            else [f"train_data_batch_{i}.npz" for i in range(1, 11)])]
    if name == "imagenet":
        per_class = 3 if split == "train" else 2  # write_imagenet's defaults
        return [f"imagenet/{split}/{wnid}/{file}" for wnid, file, _ in imagenet_files(split, per_class)]
    raise KeyError(name)


IMAGE_FOLDERS = ("celeba", "dtd", "imagenet")  # decoded one image at a time, while a command runs
ALL = ("mnist", "fashion-mnist", "cifar10", "cifar100", "svhn", "celeba", "dtd", "imagenet32", "imagenet")


# ------------------------------------------------------------------------------------------------ checks


def command_for(env: Env, name: str, command: str) -> list[str]:
    if command == "ood":
        split = EVAL.get(name, "test")
        return ["ood", "--run", str(env.run), "--in", name, "--out", name, "--split", split]
    if command == "probe":
        return ["probe", "--run", str(env.run), "--dataset", name, "--shots", "1", "--seeds", "1", "--knn", "0"]
    return ["train", "--preset", "quickstart", *TINY_RUN, "--set", f"data.name={name}",
            "--set", "data.verify_checksums=false", "--set", "data.image_size=8"]


def splits_of(name: str, command: str) -> list[str]:
    held_out = EVAL.get(name, "test")
    return {"ood": [held_out], "probe": ["train", held_out], "train": ["train"]}[command]


def run_cli(capsys: Any, env: Env, argv: list[str], *, expect: str, what: str) -> None:
    capsys.readouterr()
    before = runs_tree(env.runs)
    code = main_entry(["--runs-dir", str(env.runs), "--device", "cpu", "-q", "--data-root", str(env.work), *argv])
    out, err = capsys.readouterr()
    assert not env.marker.exists(), f"{what}: a pickle was unpickled"
    if code == 0 and expect == "any":
        tidy(env.runs, before)
        return
    context = f"{what}: {argv} -> exit {code}\nstderr: {err!r}"
    assert_one_line_failure(code, out, err, context, argv)
    after = runs_tree(env.runs)
    assert after == before, f"{context}\nchanged: {sorted(set(after.items()) ^ set(before.items()))[:6]}"


def feed(capsys: Any, env: Env, name: str, command: str, damage: Any, *, expect: str, what: str,
         category: str) -> None:
    """Copy ``name``'s pristine files into a fresh data root, let ``damage(root)`` spoil them, run ``command``."""
    INPUTS[category] += 1
    shutil.rmtree(env.work, ignore_errors=True)
    shutil.copytree(env.pristine / FOLDERS[name], env.work / FOLDERS[name])
    damage(env.work)
    try:
        run_cli(capsys, env, command_for(env, name, command), expect=expect, what=f"{name} {command}: {what}")
    finally:
        shutil.rmtree(env.work, ignore_errors=True)


def _commands(name: str) -> list[str]:
    out = ["ood"]
    if name != "celeba":  # no class labels to probe with
        out.append("probe")
    if name not in IMAGE_FOLDERS:  # see test_image_folders_are_checked_while_training
        out.append("train")
    return out


# ------------------------------------------------------------------------------------------- byte damage


def _png(width: int, height: int, mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (width, height)).save(buf, "PNG")
    return buf.getvalue()


def _declared_png(width: int, height: int) -> bytes:
    """A PNG header declaring width x height pixels, followed by almost no image data."""
    data = bytearray(_png(2, 2))
    data[16:24] = struct.pack(">II", width, height)  # IHDR width and height (its CRC is left wrong)
    return bytes(data)


@fuzz(90)
@given(data=st.data())
def test_damaged_files(env, capsys, data):
    """A file the command reads is cut, zeroed, overwritten, flipped, removed or replaced by a folder."""
    name = data.draw(st.sampled_from(ALL))
    command = data.draw(st.sampled_from(_commands(name)))
    files = [f for split in splits_of(name, command) for f in reads(name, split)]
    target = data.draw(st.sampled_from(files))
    size = (env.pristine / target).stat().st_size
    is_image = target.lower().endswith((".jpg", ".jpeg"))
    is_text = target.endswith(".txt")
    how = data.draw(st.sampled_from(["cut", "empty", "garbage", "flip", "remove", "folder"]))
    cut = data.draw(st.integers(0, size - 1))
    garbage = data.draw(st.binary(min_size=1, max_size=64))
    flips = data.draw(st.lists(st.tuples(st.integers(0, size - 1), st.integers(1, 255)), min_size=1, max_size=3,
                               unique_by=lambda f: f[0]))

    def damage(root: Path) -> None:
        path = root / target
        blob = bytearray(path.read_bytes())
        if how == "cut":
            path.write_bytes(bytes(blob[:cut]))
        elif how == "empty":
            path.write_bytes(b"")
        elif how == "garbage":
            path.write_bytes(garbage)
        elif how == "flip":
            for pos, mask in flips:
                blob[pos] ^= mask
            path.write_bytes(bytes(blob))
        elif how == "remove":
            path.unlink()
        else:
            path.unlink()
            path.mkdir()

    # Certain damage: a file emptied, a binary file overwritten or cut (an image well before its end), a file
    # removed or made a folder (but ImageNet's reader lists what is there, so one image fewer reads fine).
    certain = (how == "empty" or (how in ("remove", "folder") and name != "imagenet")
               or (how == "garbage" and not is_text)
               or (how == "cut" and not is_text and (not is_image or cut < 0.8 * size)))
    feed(capsys, env, name, command, damage, expect="error" if certain else "any",
         what=f"{how} {target} (cut {cut}, flips {flips})", category="damaged dataset file")


# ------------------------------------------------------------------------------------------ idx (MNIST)


def _idx(path: Path, magic: int, dims: list[int], payload: bytes) -> None:
    path.write_bytes(struct.pack(">I", magic) + struct.pack(f">{len(dims)}I", *dims) + payload)


@fuzz(40)
@given(data=st.data())
def test_bad_idx_headers(env, capsys, data):
    name = data.draw(st.sampled_from(["mnist", "fashion-mnist"]))
    command = data.draw(st.sampled_from(["ood", "probe", "train"]))
    split = data.draw(st.sampled_from(splits_of(name, command)))
    images_file, labels_file = reads(name, split)
    which = data.draw(st.sampled_from(["images", "labels"]))
    edit = data.draw(st.sampled_from(["magic", "count", "dims", "labels-range", "labels-count", "type", "zero",
                                      "size"]))
    value = data.draw(st.integers(0, 2**32 - 1))
    data_type = data.draw(st.sampled_from([0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x07, 0x0F]))
    expect = "error"

    def damage(root: Path) -> None:
        path = root / (images_file if which == "images" else labels_file)
        blob = path.read_bytes()
        magic, = struct.unpack(">I", blob[:4])
        nd = magic & 0xFF
        dims = list(struct.unpack(f">{nd}I", blob[4 : 4 + 4 * nd]))
        payload = blob[4 + 4 * nd :]
        if edit == "magic":
            _idx(path, value if value != magic else magic ^ 0xFFFF, dims, payload)
        elif edit == "count":
            _idx(path, magic, [dims[0] + 1 + value % 1000, *dims[1:]], payload)
        elif edit == "dims":
            _idx(path, magic, [dims[0], *[value % 100 + 29 for _ in dims[1:]]], payload)
        elif edit == "labels-range":
            labels = root / labels_file
            blob = bytearray(labels.read_bytes())
            blob[8 + value % (len(blob) - 8)] = 10 + value % 246
            labels.write_bytes(bytes(blob))
        elif edit == "labels-count":
            labels = root / labels_file
            blob = labels.read_bytes()
            _idx(labels, 0x0801, [len(blob) - 9], blob[8:-1])
        elif edit == "type":
            _idx(path, (magic & 0xFF) | (data_type << 8), dims, payload)
        elif edit == "zero":
            _idx(path, magic, [0, *dims[1:]], b"")
        else:  # 32x32 images, a size MNIST never has: readable, and resized like any other
            n = dims[0] if which == "images" else len(blob) - 8
            _idx(root / images_file, 0x0803, [n, 32, 32], bytes(n * 32 * 32))

    if edit == "size" or (edit == "dims" and which == "labels"):  # a label file has no image dimensions
        expect = "any"
    if edit == "zero" and which == "labels":
        expect = "error"
    feed(capsys, env, name, command, damage, expect=expect, what=f"{which} {edit} {value} {data_type:#x}",
         category="bad idx file")


# ---------------------------------------------------------------------------------------- CIFAR batches


def _dump(path: Path, obj: Any) -> None:
    path.write_bytes(pickle.dumps(obj, protocol=2))


@fuzz(40)
@given(data=st.data())
def test_bad_cifar_batches(env, capsys, data):
    name = data.draw(st.sampled_from(["cifar10", "cifar100"]))
    command = data.draw(st.sampled_from(["ood", "probe", "train"]))
    files = [f for split in splits_of(name, command) for f in reads(name, split)]
    target = data.draw(st.sampled_from([f for f in files if not f.endswith("meta")]))
    labels_key = "labels" if name == "cifar10" else "fine_labels"
    edit = data.draw(st.sampled_from(["no-data", "no-labels", "width", "float", "labels-short", "labels-range",
                                      "negative-label", "not-a-dict", "data-list", "labels-str", "empty", "meta"]))
    width = data.draw(st.integers(1, 5000).filter(lambda w: w != 3072))

    def damage(root: Path) -> None:
        path = root / target
        with open(path, "rb") as fh:
            batch = pickle.load(fh, encoding="latin1")  # the pristine fixture, written by the tests
        n = len(batch[labels_key])
        if edit == "no-data":
            del batch["data"]
        elif edit == "no-labels":
            del batch[labels_key]
        elif edit == "width":
            batch["data"] = np.zeros((n, width), np.uint8)
        elif edit == "float":
            batch["data"] = batch["data"].astype(np.float64)
        elif edit == "labels-short":
            batch[labels_key] = batch[labels_key][:-1]
        elif edit == "labels-range":
            batch[labels_key] = [*batch[labels_key][:-1], 100 if name == "cifar10" else 1000]
        elif edit == "negative-label":
            batch[labels_key] = [-1] * n
        elif edit == "not-a-dict":
            batch = [batch]
        elif edit == "data-list":
            batch["data"] = "pixels"
        elif edit == "labels-str":
            batch[labels_key] = ["cat"] * n
        elif edit == "empty":
            batch = {**batch, "data": np.zeros((0, 3072), np.uint8), labels_key: []}
        else:
            meta = root / FOLDERS[name] / ("batches.meta" if name == "cifar10" else "meta")
            _dump(meta, {"label_names": list(CIFAR10_CLASSES[:3])} if name == "cifar10" else {"fine": []})
            return
        _dump(path, batch)

    # An empty batch among others, or a shorter list of class names, may still read; the rest cannot.
    expect = "any" if edit == "empty" and ("data_batch" in target) else "error"
    feed(capsys, env, name, command, damage, expect=expect, what=f"{edit} in {target} (width {width})",
         category="bad cifar batch")


class Trap:
    """Pickles to a call of ``open(marker, "w")``: unpickling it leaves the marker file behind."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("trap", [False, True])
def test_checksums_are_verified_by_default(env, capsys, trap):
    """The fixtures are not the official files: with checksums on (the default) they are refused in one line, and a
    CIFAR batch that would run code when unpickled is refused before torchvision unpickles it."""
    for name in ("cifar10", "cifar100", "svhn", "celeba"):
        if trap and not name.startswith("cifar"):
            continue
        argv = ["train", "--preset", "quickstart", *TINY_RUN, "--set", f"data.name={name}"]
        INPUTS["wrong checksums"] += 1
        shutil.copytree(env.pristine / FOLDERS[name], env.work / FOLDERS[name])
        if trap:
            for batch in reads(name, "train")[:-1]:
                _dump(env.work / batch, {"data": Trap(env.marker)})
        try:
            run_cli(capsys, env, argv, expect="error", what=f"{name} with checksums")
        finally:
            shutil.rmtree(env.work)


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_a_cifar_batch_that_runs_code_is_refused_with_checksums_off(env, capsys, name):
    """Unverified files are read by an unpickler that builds only arrays: the trap is refused, never run."""
    INPUTS["wrong checksums"] += 1
    shutil.copytree(env.pristine / FOLDERS[name], env.work / FOLDERS[name])
    _dump(env.work / reads(name, "train")[0], {"data": Trap(env.marker)})
    argv = ["train", "--preset", "quickstart", *TINY_RUN, "--set", f"data.name={name}",
            "--set", "data.verify_checksums=false"]
    try:
        run_cli(capsys, env, argv, expect="error", what=f"{name} trap without checksums")  # the marker stays unwritten
    finally:
        shutil.rmtree(env.work)


# ------------------------------------------------------------------------------------------- SVHN .mat


@fuzz(25)
@given(data=st.data())
def test_bad_svhn_files(env, capsys, data):
    command = data.draw(st.sampled_from(["ood", "probe", "train"]))
    split = data.draw(st.sampled_from(splits_of("svhn", command)))
    edit = data.draw(st.sampled_from(["no-X", "no-y", "float", "y-short", "y-range", "gray", "2d", "text", "empty"]))

    def damage(root: Path) -> None:
        path = root / f"svhn/{split}_32x32.mat"
        mat = {k: v for k, v in scipy.io.loadmat(path).items() if not k.startswith("__")}
        x, y = mat["X"], mat["y"]
        if edit == "no-X":
            mat = {"y": y}
        elif edit == "no-y":
            mat = {"X": x}
        elif edit == "float":
            mat["X"] = x.astype(np.float32)
        elif edit == "y-short":
            mat["y"] = y[:-1]
        elif edit == "y-range":
            mat["y"] = y + 20
        elif edit == "gray":
            mat["X"] = x[:, :, :1]
        elif edit == "2d":
            mat["X"] = x.reshape(32, -1)
        elif edit == "text":
            mat["X"] = "pixels"
        else:
            mat = {"X": np.zeros((32, 32, 3, 0), np.uint8), "y": np.zeros((0, 1), np.uint8)}
        scipy.io.savemat(path, mat, format="5")

    expect = "any" if edit == "gray" else "error"
    feed(capsys, env, "svhn", command, damage, expect=expect, what=f"{edit} in {split}", category="bad svhn file")


# ------------------------------------------------------------------------------------------ image folders


def _bad_image(kind: str) -> tuple[bytes, str]:
    """Bytes for an image file, and whether reading them must fail ("error") or may succeed ("any")."""
    jpeg = io.BytesIO()
    Image.fromarray(fixture_images(1, 40, 30)[0]).save(jpeg, "JPEG")
    cmyk = io.BytesIO()
    Image.new("CMYK", (20, 20)).save(cmyk, "JPEG")
    return {
        "text": (b"this is not a picture\n", "error"),
        "zero": (b"", "error"),
        "cut": (jpeg.getvalue()[: len(jpeg.getvalue()) // 3], "error"),
        "declared-5000": (_declared_png(5000, 5000), "error"),
        "declared-bomb": (_declared_png(30000, 30000), "error"),
        "png-header-only": (_png(8, 8)[:30], "error"),
        "html": (b"<html><body>404 Not Found</body></html>", "error"),
        "1x1": (_png(1, 1), "any"),
        "gray": (_png(50, 40, "L"), "any"),
        "rgba": (_png(40, 50, "RGBA"), "any"),
        "palette": (_png(33, 33, "P"), "any"),
        "16-bit": (_png(20, 20, "I;16"), "any"),
        "cmyk": (cmyk.getvalue(), "any"),
        "wide": (_png(300, 2), "any"),
    }[kind]


IMAGE_KINDS = ["text", "zero", "cut", "declared-5000", "declared-bomb", "png-header-only", "html", "1x1", "gray",
               "rgba", "palette", "16-bit", "cmyk", "wide"]


@fuzz(45)
@given(data=st.data())
def test_bad_images_in_image_folders(env, capsys, data):
    """Images of the wrong size, mode or format, and files that are no images, among CelebA, DTD and ImageNet."""
    name = data.draw(st.sampled_from(IMAGE_FOLDERS))
    command = data.draw(st.sampled_from(_commands(name)))
    images = [f for split in splits_of(name, command) for f in reads(name, split) if not f.endswith(".txt")]
    target = data.draw(st.sampled_from(images))
    kind = data.draw(st.sampled_from(IMAGE_KINDS))
    blob, expect = _bad_image(kind)
    feed(capsys, env, name, command, lambda root: (root / target).write_bytes(blob), expect=expect,
         what=f"{kind} as {target}", category="bad image")


@fuzz(30)
@given(data=st.data())
def test_bad_layouts_and_annotations(env, capsys, data):
    """Class folders, label lists and CelebA's annotation files that do not describe the images."""
    case = data.draw(st.sampled_from([
        "imagenet-no-classes", "imagenet-val-unknown-class", "imagenet-empty-class", "imagenet-stray-file",
        "imagenet-png-named-jpeg", "imagenet-only-non-images", "dtd-missing-image", "dtd-empty-list",
        "dtd-list-names-folder", "celeba-attr-header", "celeba-attr-values", "celeba-attr-short",
        "celeba-partition-unknown", "celeba-partition-empty", "celeba-attr-not-numbers", "imagenet32-labels-0",
        "imagenet32-labels-1001", "imagenet32-float", "imagenet32-object", "imagenet32-no-labels",
        "imagenet32-short-rows", "imagenet32-empty"]))
    name = case.split("-")[0]
    command = data.draw(st.sampled_from(_commands(name)))
    expect = "any" if case in ("imagenet-empty-class", "imagenet-stray-file", "imagenet-png-named-jpeg") else "error"

    def damage(root: Path) -> None:
        nonlocal expect
        if case == "imagenet-no-classes":
            for d in (root / "imagenet/train").iterdir():
                shutil.rmtree(d)
        elif case == "imagenet-val-unknown-class":
            (root / "imagenet/val/n99999999").mkdir()
            shutil.copy(next((root / "imagenet/val").rglob("*.JPEG")), root / "imagenet/val/n99999999/x.JPEG")
        elif case == "imagenet-empty-class":
            (root / "imagenet/train/n00000001").mkdir()
        elif case == "imagenet-stray-file":
            (root / "imagenet/train/README.txt").write_text("hello")
        elif case == "imagenet-png-named-jpeg":
            (root / f"imagenet/train/{IMAGENET_WNIDS[0]}/extra.JPEG").write_bytes(_png(64, 48))
        elif case == "imagenet-only-non-images":
            for split in ("train", "val"):
                for f in (root / "imagenet" / split).rglob("*.JPEG"):
                    f.rename(f.with_suffix(".txt"))
        elif case == "dtd-missing-image":
            for split in ("train", "test"):
                (root / f"dtd/dtd/labels/{split}1.txt").write_text("banded/banded_9999.jpg\n")
        elif case == "dtd-empty-list":
            for split in ("train", "test"):
                (root / f"dtd/dtd/labels/{split}1.txt").write_text("")
        elif case == "dtd-list-names-folder":
            for split in ("train", "test"):
                (root / f"dtd/dtd/labels/{split}1.txt").write_text("banded\n")
        elif case.startswith("celeba"):
            attr = root / "celeba/list_attr_celeba.txt"
            lines = attr.read_text().splitlines()
            if case == "celeba-attr-header":
                lines[1] = " ".join(["Smiling"] * 40)
            elif case == "celeba-attr-values":
                lines[-1] = lines[-1].replace(" 1", " 3")  # a test image; torchvision maps -1/1 to 0/1, 3 to 2
            elif case == "celeba-attr-short":
                lines = lines[:-4]
            elif case == "celeba-attr-not-numbers":
                lines[3] = lines[3].split()[0] + " yes" * 40
            elif case == "celeba-partition-unknown":
                (root / "celeba/list_eval_partition.txt").write_text("999999.jpg 2\n")
            else:
                (root / "celeba/list_eval_partition.txt").write_text("")
            attr.write_text("".join(line + "\n" for line in lines))
        else:
            split = EVAL["imagenet32"] if command == "ood" else "train"
            for file in reads("imagenet32", split):
                path = root / file
                with np.load(path, allow_pickle=False) as npz:
                    arrays = dict(npz)
                n = len(arrays["labels"])
                if case == "imagenet32-labels-0":
                    arrays["labels"] = np.zeros(n, np.int64)
                elif case == "imagenet32-labels-1001":
                    arrays["labels"] = np.full(n, 1001)
                elif case == "imagenet32-float":
                    arrays["data"] = arrays["data"].astype(np.float32)
                elif case == "imagenet32-object":
                    arrays["labels"] = np.array([object()] * n, dtype=object)
                elif case == "imagenet32-no-labels":
                    del arrays["labels"]
                elif case == "imagenet32-short-rows":
                    arrays["data"] = arrays["data"][:, :100]
                else:
                    arrays = {"data": np.zeros((0, 3072), np.uint8), "labels": np.zeros(0, np.int64)}
                with open(path, "wb") as fh:
                    np.savez(fh, **arrays)

    feed(capsys, env, name, command, damage, expect=expect, what=case, category="bad layout or annotation")


def test_image_folders_are_checked_while_training(env, capsys):
    """A damaged image of CelebA, DTD or ImageNet is found only when a batch needs it (the sets are too large to
    decode ahead): the batch stream raises the one-line DataError with its hint, with or without worker processes,
    and `train` fails in one line and removes the run directory it had just made (no step was trained)."""
    shutil.copytree(env.pristine / "imagenet", env.work / "imagenet")
    try:
        for kind in ("text", "cut", "declared-bomb"):
            INPUTS["bad image"] += 1
            for image in (env.work / "imagenet/train").rglob("*.JPEG"):
                image.write_bytes(_bad_image(kind)[0])
            ds = load_dataset("imagenet", root=env.work, split="train", image_size=8)
            assert isinstance(ds, ImageFileDataset)
            for workers in (0, 1) if kind == "cut" else (0,):  # one worker process: it takes a while to start
                with pytest.raises(DataError) as err:
                    next(BatchStream(ds, 4, 0, workers=workers))
                assert err.value.hint and "\n" not in err.value.message and "Traceback" not in err.value.message
            run_cli(capsys, env, command_for(env, "imagenet", "train"), expect="error", what=f"imagenet {kind} train")
    finally:
        shutil.rmtree(env.work)


def test_zzz_enough_inputs(request):
    """Runs last in this file (tests/services/runtime/test_fuzz_loaders.py counts the checkpoint inputs on its own)."""
    selected = {item.originalname for item in request.session.items if item.module is request.module}
    if selected != {name for name in globals() if name.startswith("test_")}:
        pytest.skip("only part of this file ran")
    total = sum(INPUTS.values())
    print(f"dataset inputs: {total} {dict(INPUTS)}")
    assert total >= 250, dict(INPUTS)
