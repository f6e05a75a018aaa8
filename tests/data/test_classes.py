"""Class subsets: data.classes and DATASET@CLASS keep the chosen classes only, with their original labels."""

from __future__ import annotations

import pytest
import torch

from ebmctl.data import load_dataset
from ebmctl.data.classes import parse_class_set, set_label
from ebmctl.errors import DataError, SpecError
from ebmctl.recipes import resolve_spec
from ebmctl.services.runtime.datasets import dataset_from, every_class

from .fixtures import CIFAR10_CLASSES, DTD_CLASSES, write_cifar10, write_dtd


def test_a_subset_is_exactly_the_items_of_its_classes_with_their_labels():
    full = load_dataset("shapes32", split="test")
    sub = load_dataset("shapes32", split="test", classes=["circle", "triangle"])
    wanted = torch.nonzero((full.labels() == 0) | (full.labels() == 2)).flatten()
    assert len(sub) == len(wanted) < len(full) and set(sub.labels().tolist()) == {0, 2}
    x, y = sub.get_batch(torch.arange(len(sub)))
    assert torch.equal(x, full.images[wanted]) and torch.equal(y, full.labels()[wanted])
    assert torch.equal(sub.attributes(), full.attributes()[wanted])
    assert sub[3][1] == int(full.labels()[wanted[3]]) and torch.equal(sub[3][0], full.images[wanted[3]])
    assert sub.info.class_names == full.info.class_names  # names still map to the original indices
    assert set_label(sub.info) == "shapes32 (circle, triangle)" and set_label(full.info) == "shapes32"


def test_names_and_indices_are_the_same_classes():
    by_name = load_dataset("shapes32", split="test", classes=["Square", "diamond"])
    by_index = load_dataset("shapes32", split="test", classes=[1, 3])
    assert torch.equal(by_name.labels(), by_index.labels()) and by_name.info.extra["classes"] == ["square", "diamond"]
    digits = load_dataset("digits", split="test", classes=["7"])
    assert len(digits) > 0 and set(digits.labels().tolist()) == {7}


@pytest.mark.parametrize(("classes", "message", "hint"), [
    (["hexagon"], "no class 'hexagon'", "circle, square, triangle, diamond"),
    ([4], "no class 4", "circle, square, triangle, diamond"),
    (["circle", 0], "named twice", "once"),
])
def test_an_unknown_or_repeated_class_is_refused_with_the_classes_allowed(classes, message, hint):
    with pytest.raises(SpecError) as err:
        load_dataset("shapes32", split="test", classes=classes)
    assert message in err.value.message and hint in err.value.hint


def test_a_dataset_without_labels_says_so():
    with pytest.raises(SpecError, match="constant has no class labels"):
        load_dataset("constant", split="test", classes=[0])


def test_real_datasets_keep_their_classes(tmp_path):
    root = write_dtd(write_cifar10(tmp_path))
    full = load_dataset("cifar10", root=root, split="train", verify_checksums=False)
    cats = load_dataset("cifar10", root=root, split="train", verify_checksums=False, classes=["cat", "dog"])
    assert CIFAR10_CLASSES[3] == "cat" and set(cats.labels().tolist()) == {3, 5}
    assert torch.equal(cats.get_batch(torch.arange(len(cats)))[0], full.images[(full.labels() == 3) | (full.labels() == 5)])
    files = load_dataset("dtd", root=root, split="train", verify_checksums=False, image_size=8, classes=[DTD_CLASSES[1]])
    assert len(files) > 0 and set(files.labels().tolist()) == {1} and files[0][0].shape == (3, 8, 8)


def test_a_split_without_items_of_the_classes_is_a_data_error(tmp_path):
    root = write_cifar10(tmp_path, n_train=20, n_test=5)  # the test split holds classes 0..4 only
    with pytest.raises(DataError, match="holds no items"):
        load_dataset("cifar10", root=root, split="test", verify_checksums=False, classes=["truck"])


def test_the_spec_takes_names_or_indices_and_judges_see_every_class():
    spec = resolve_spec("quickstart", ['data.classes=["circle", "square"]'])
    assert spec.data.classes == ("circle", "square")
    assert resolve_spec("quickstart", ["data.classes=[0, 2]"]).data.classes == (0, 2)
    assert resolve_spec("quickstart", ["data.classes=none"]).data.classes is None
    assert len(dataset_from(spec.data, split="test")) < len(dataset_from(every_class(spec.data), split="test"))
    assert every_class(spec.data).classes is None and spec.data.classes == ("circle", "square")


@pytest.mark.parametrize(("value", "expected"), [
    ("[]", "at least one class"), ("[true]", "a name or an index"), ("[1.0]", "a name or an index"),
    ("[-1]", "at least 0"), ("circle", "names or integers"),
])
def test_the_spec_refuses_what_is_not_a_list_of_classes(value, expected):
    with pytest.raises(SpecError) as err:
        resolve_spec("quickstart", [f"data.classes={value}"])
    assert expected in str(err.value)


def test_class_sets_are_written_with_at_and_plus():
    assert parse_class_set("shapes32") == ("shapes32", None)
    assert parse_class_set("shapes32@diamond") == ("shapes32", ("diamond",))
    assert parse_class_set("shapes32@diamond+square") == ("shapes32", ("diamond", "square"))
    for bad in ("shapes32@", "@diamond", "shapes32@diamond+"):
        with pytest.raises(SpecError, match="DATASET@CLASS"):
            parse_class_set(bad)

