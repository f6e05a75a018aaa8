"""The attribute judge: training on shapes32, caching, attribute words, reports, and ResNet-18 on CelebA."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from data.fixtures import CELEBA_ATTRIBUTES, write_celeba
from torch import nn

from ebmctl.checkpoints import read_meta, save_tensors
from ebmctl.data import load_dataset
from ebmctl.data.base import DataInfo, TensorImageDataset
from ebmctl.errors import CheckpointError, SpecError, UsageError
from ebmctl.evaluation.attribute_judge import AttributeJudge, default_architecture, default_steps
from ebmctl.evaluation.attribute_training import (
    attribute_accuracy,
    load_attribute_judge,
    load_or_train_attribute_judge,
    save_attribute_judge,
    train_attribute_judge,
)
from ebmctl.evaluation.attributes import (
    ATTRIBUTE_ALIASES,
    attribute_rates,
    attribute_report,
    resolve_attributes,
)
from ebmctl.evaluation.judges import Judge, save_judge

SHAPES_ATTRIBUTES = (
    "circle", "square", "triangle", "diamond", "red", "green", "blue", "yellow", "magenta", "cyan",
    "large", "left", "top", "light",
)  # fmt: skip


def _subset(dataset: TensorImageDataset, n: int, name: str | None = None) -> TensorImageDataset:
    info = dataset.info if name is None else dataclasses.replace(dataset.info, name=name)
    return TensorImageDataset(info, dataset.images[:n], dataset.labels()[:n], dataset.attributes()[:n])


@pytest.fixture(scope="module")
def shapes_train() -> TensorImageDataset:
    return load_dataset("shapes32", split="train")


@pytest.fixture(scope="module")
def shapes_test() -> TensorImageDataset:
    return load_dataset("shapes32", split="test")


@pytest.fixture(scope="module")
def shapes_judge(shapes_train, shapes_test) -> AttributeJudge:
    """400 steps of 32 on shapes32 (about 10 s on one thread)."""
    return train_attribute_judge(shapes_train, test_dataset=shapes_test, steps=400, batch_size=32, seed=0)


def test_cnn_judge_learns_shapes32_attributes(shapes_judge, shapes_test):
    meta = shapes_judge.meta
    assert (
        meta["attribute_names"] == list(SHAPES_ATTRIBUTES)
        and shapes_judge.attribute_names == SHAPES_ATTRIBUTES
    )
    accuracy = meta["test_accuracy"]
    assert len(accuracy) == 14
    # chance (always the majority answer) is 0.74-0.77 for shapes, 0.83-0.85 for colours, ~0.52 for the rest
    assert min(accuracy) >= 0.9, dict(zip(SHAPES_ATTRIBUTES, accuracy, strict=True))
    assert meta["mean_test_accuracy"] >= 0.97
    assert meta["mean_test_accuracy"] == pytest.approx(sum(accuracy) / 14)
    assert attribute_accuracy(shapes_judge, shapes_test) == accuracy
    assert (meta["kind"], meta["architecture"], meta["dataset"], meta["shape"]) == (
        "ebmctl-attribute-judge", "cnn", "shapes32", [3, 32, 32],
    )  # fmt: skip
    assert (meta["steps"], meta["seed"], meta["batch_size"]) == (400, 0, 32) and meta["train_seconds"] > 0


def test_predictions_probabilities_and_inputs(shapes_judge, shapes_test):
    images = shapes_test.images[:16]
    probs = shapes_judge.probabilities(images)
    assert probs.shape == (16, 14) and bool(((probs >= 0) & (probs <= 1)).all())
    predicted = shapes_judge.predict(images)
    assert predicted.dtype == torch.bool and torch.equal(predicted, probs > 0.5)
    assert torch.allclose(shapes_judge.logits(images), shapes_judge.logits(images.float() / 255), atol=1e-5)
    with pytest.raises(ValueError, match="expects"):
        shapes_judge.logits(torch.rand(2, 1, 32, 32))
    # the shape attributes are one-hot: a confident judge names exactly one shape per image
    assert bool((predicted[:, :4].sum(1) == 1).float().mean() >= 0.9)


def test_training_is_seeded_and_leaves_global_rng_alone(shapes_train):
    data = _subset(shapes_train, 200)
    state = torch.random.get_rng_state()
    seen = []
    a = train_attribute_judge(data, steps=4, batch_size=16, seed=3, progress=lambda *p: seen.append(p))
    assert torch.equal(torch.random.get_rng_state(), state)
    b = train_attribute_judge(data, steps=4, batch_size=16, seed=3)
    c = train_attribute_judge(data, steps=4, batch_size=16, seed=4)
    x = torch.rand(3, 3, 32, 32)
    assert torch.equal(a.logits(x), b.logits(x)) and not torch.equal(a.logits(x), c.logits(x))
    assert [s[0] for s in seen] == [1, 2, 3, 4] and set(seen[-1][2]) == {"loss", "acc", "lr"}
    assert a.meta["test_accuracy"] is None and a.meta["mean_test_accuracy"] is None


def test_cache_is_reused_and_invalidated(tmp_path, shapes_train):
    path = tmp_path / "judges" / "attributes.safetensors"
    data = _subset(shapes_train, 200)
    first, trained = load_or_train_attribute_judge(path, data, steps=3, batch_size=16)
    assert trained and path.is_file()
    again, trained = load_or_train_attribute_judge(path, data, steps=3, batch_size=16)
    assert not trained and again.meta == first.meta
    x = torch.rand(4, 3, 32, 32)
    assert torch.equal(again.predict(x), first.predict(x)) and torch.equal(again.logits(x), first.logits(x))

    _, trained = load_or_train_attribute_judge(path, data, architecture="resnet18", steps=1, batch_size=4)
    assert trained and read_meta(path)["architecture"] == "resnet18"
    _, trained = load_or_train_attribute_judge(path, data, architecture="resnet18", steps=1, batch_size=4)
    assert not trained

    renamed = _subset(shapes_train, 200, name="othershapes")
    _, trained = load_or_train_attribute_judge(path, renamed, steps=3, batch_size=16)
    assert trained and read_meta(path)["dataset"] == "othershapes"

    fewer = TensorImageDataset(
        dataclasses.replace(renamed.info, attribute_names=SHAPES_ATTRIBUTES[:4]),
        renamed.images, renamed.labels(), renamed.attributes()[:, :4],
    )  # fmt: skip
    _, trained = load_or_train_attribute_judge(path, fewer, steps=3, batch_size=16)
    assert trained and read_meta(path)["attribute_names"] == list(SHAPES_ATTRIBUTES[:4])

    path.write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_attribute_judge(path)
    _, trained = load_or_train_attribute_judge(path, fewer, steps=3, batch_size=16)
    assert trained and isinstance(load_attribute_judge(path), AttributeJudge)


def test_foreign_and_mismatched_files_are_refused(tmp_path):
    path = tmp_path / "other.safetensors"
    save_judge(Judge(3, 4), path)
    with pytest.raises(CheckpointError, match="not an ebmctl attribute judge") as err:
        load_attribute_judge(path)
    assert "delete the file" in (err.value.hint or "")
    save_tensors(path, {"w": torch.zeros(2)}, {"kind": "model"})
    with pytest.raises(CheckpointError, match="not an ebmctl attribute judge"):
        load_attribute_judge(path)
    judge = AttributeJudge((3, 32, 32), SHAPES_ATTRIBUTES[:3])
    meta = {"kind": "ebmctl-attribute-judge", "architecture": "cnn", "shape": [3, 32, 32]}
    save_tensors(path, judge.state_dict(), {**meta, "attribute_names": list(SHAPES_ATTRIBUTES[:5])})
    with pytest.raises(CheckpointError, match="does not match"):
        load_attribute_judge(path)


def test_datasets_without_attributes_are_a_spec_error(draw_shapes):
    with pytest.raises(SpecError, match="no binary attributes") as err:
        train_attribute_judge(draw_shapes(8, seed=0), steps=2)
    assert "shapes32" in (err.value.hint or "")
    info = DataInfo("moons", "points", "train", (2,), attribute_names=("a",))
    points = TensorImageDataset(info, torch.zeros(8, 2), attributes=torch.zeros(8, 1, dtype=torch.uint8))
    with pytest.raises(SpecError, match="image dataset"):
        train_attribute_judge(points, steps=2)


def test_defaults():
    celeba = DataInfo("celeba", "image", "train", (3, 64, 64), attribute_names=CELEBA_ATTRIBUTES)
    shapes = DataInfo("shapes32", "image", "train", (3, 32, 32), attribute_names=SHAPES_ATTRIBUTES)
    assert default_architecture(celeba) == "resnet18" and default_architecture(shapes) == "cnn"
    assert default_steps(celeba) >= default_steps(shapes) >= 400
    with pytest.raises(SpecError, match="architecture"):
        AttributeJudge((3, 32, 32), SHAPES_ATTRIBUTES, "vgg")


def test_resolve_spellings_and_negation():
    names = SHAPES_ATTRIBUTES
    assert resolve_attributes(["Red", " large ", "-TOP"], names) == [
        ("red", 4, True), ("large", 10, True), ("top", 12, False),
    ]  # fmt: skip
    wavy = CELEBA_ATTRIBUTES.index("Wavy_Hair")
    for word in ("wavy-hair", "Wavy_Hair", "wavy hair", "WAVY-hair"):
        assert resolve_attributes([word], CELEBA_ATTRIBUTES) == [("Wavy_Hair", wavy, True)]
    assert resolve_attributes(["-wavy hair"], CELEBA_ATTRIBUTES) == [("Wavy_Hair", wavy, False)]
    assert resolve_attributes(["5-o-clock shadow"], CELEBA_ATTRIBUTES) == [("5_o_Clock_Shadow", 0, True)]
    assert resolve_attributes([], CELEBA_ATTRIBUTES) == []


def test_resolve_celeba_aliases():
    aliases = ATTRIBUTE_ALIASES["celeba"]
    male, young, smiling = (CELEBA_ATTRIBUTES.index(n) for n in ("Male", "Young", "Smiling"))
    assert resolve_attributes(["female", "-smiling", "old"], CELEBA_ATTRIBUTES, aliases) == [
        ("Male", male, False), ("Smiling", smiling, False), ("Young", young, False),
    ]  # fmt: skip
    assert resolve_attributes(["-female"], CELEBA_ATTRIBUTES, aliases) == [("Male", male, True)]
    assert resolve_attributes(["male"], CELEBA_ATTRIBUTES, aliases) == [("Male", male, True)]
    assert resolve_attributes(["-Old"], CELEBA_ATTRIBUTES, aliases) == [("Young", young, True)]
    with pytest.raises(UsageError, match="unknown attribute 'female'"):
        resolve_attributes(["female"], CELEBA_ATTRIBUTES)  # no alias table, no alias


def test_resolve_unknown_words_and_duplicates():
    aliases = ATTRIBUTE_ALIASES["celeba"]
    with pytest.raises(UsageError, match="did you mean 'Smiling'") as err:
        resolve_attributes(["smilng"], CELEBA_ATTRIBUTES, aliases)
    assert "Wavy_Hair" in (err.value.hint or "") and "female" in (err.value.hint or "")
    with pytest.raises(UsageError, match="did you mean 'female'"):
        resolve_attributes(["femal"], CELEBA_ATTRIBUTES, aliases)
    with pytest.raises(UsageError) as err:
        resolve_attributes(["xyzzy"], CELEBA_ATTRIBUTES, aliases)
    assert err.value.message == "unknown attribute 'xyzzy'"  # nothing close: no suggestion
    with pytest.raises(UsageError, match="twice"):
        resolve_attributes(["smiling", "-Smiling"], CELEBA_ATTRIBUTES, aliases)
    with pytest.raises(UsageError, match="twice"):
        resolve_attributes(["female", "male"], CELEBA_ATTRIBUTES, aliases)
    with pytest.raises(UsageError, match="no attributes"):
        resolve_attributes(["red"], ())


class FixedJudge(AttributeJudge):
    """Logits looked up by the image's id (its first pixel), recording the batch sizes it is called with."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__((1, 1, 1), ("a", "b", "c"))
        self.table = table
        self.calls: list[int] = []

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(len(x))
        return self.table[x[:, 0, 0, 0].long()]


def test_attribute_report_counts_exactly():
    ids = torch.arange(300)
    present = torch.stack([ids < 120, ids % 3 == 0, ids >= 150], dim=1)  # rates 0.4, 1/3, 0.5
    judge = FixedJudge(torch.where(present, 2.0, -2.0)).train()
    samples = ids.float().view(300, 1, 1, 1)

    rows = attribute_report(judge, samples, [("a", 0, True), ("b", 1, False)])
    assert judge.calls == [256, 44] and judge.training
    assert [(r["name"], r["index"], r["present"]) for r in rows] == [
        ("a", 0, True), ("b", 1, False), ("all", None, None),
    ]  # fmt: skip
    # all: id < 120 and not a multiple of 3 -> 80 of 300
    assert [r["fraction"] for r in rows] == pytest.approx([0.4, 2 / 3, 80 / 300])

    rows = attribute_report(judge, samples, [("b", 1, True), ("c", 2, False)])
    assert [r["fraction"] for r in rows] == pytest.approx([1 / 3, 0.5, 50 / 300])  # multiples of 3 below 150

    assert attribute_rates(judge, samples) == pytest.approx({"a": 0.4, "b": 1 / 3, "c": 0.5})
    with pytest.raises(ValueError, match="no samples"):
        attribute_rates(judge, samples[:0])


def test_resnet18_shapes_and_stem():
    judge = AttributeJudge((3, 64, 64), CELEBA_ATTRIBUTES, "resnet18").eval()
    assert isinstance(judge.net.maxpool, nn.Identity)
    assert (judge.net.conv1.kernel_size, judge.net.conv1.stride) == ((3, 3), (1, 1))
    assert judge.logits(torch.rand(2, 3, 64, 64)).shape == (2, 40)
    assert judge.predict(torch.zeros(1, 3, 64, 64, dtype=torch.uint8)).shape == (1, 40)
    large = AttributeJudge((1, 96, 96), ("a", "b"), "resnet18").eval()
    assert (large.net.conv1.in_channels, large.net.conv1.stride) == (1, (2, 2))
    assert not isinstance(large.net.maxpool, nn.Identity)
    assert large.logits(torch.rand(1, 1, 96, 96)).shape == (1, 2)


def test_resnet18_trains_on_celeba_fixture(tmp_path):
    root = write_celeba(tmp_path / "data")
    train = load_dataset("celeba", root=root, split="train", verify_checksums=False)
    test = load_dataset("celeba", root=root, split="test", verify_checksums=False)
    judge = train_attribute_judge(train, test_dataset=test, steps=2, batch_size=4)
    assert judge.architecture == "resnet18" and judge.meta["attribute_names"] == list(CELEBA_ATTRIBUTES)
    assert len(judge.meta["test_accuracy"]) == 40 and judge.meta["shape"] == [3, 64, 64]
    path = tmp_path / "celeba-judge.safetensors"
    save_attribute_judge(judge, path)
    loaded = load_attribute_judge(path)
    x = torch.rand(2, 3, 64, 64)
    assert torch.equal(loaded.logits(x), judge.logits(x)) and loaded.meta == judge.meta
    wanted = resolve_attributes(
        ["female", "smiling"], train.info.attribute_names, ATTRIBUTE_ALIASES["celeba"]
    )
    rows = attribute_report(loaded, x, wanted)
    assert [r["name"] for r in rows] == ["Male", "Smiling", "all"]
    assert all(r["fraction"] in (0.0, 0.5, 1.0) for r in rows)


def test_the_judge_abstains_on_pure_noise_and_reports_the_abstentions(shapes_judge, shapes_test):
    wanted = resolve_attributes(["circle"], shapes_test.info.attribute_names)
    noise = torch.rand(64, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert shapes_judge.predict(noise)[:, wanted[0][1]].float().mean() > 0.5, "the judge's sigmoid alone says circle"
    circle, everything = attribute_report(shapes_judge, noise, wanted)
    assert circle["fraction"] == 0.0 and circle["abstained"] == 64 and circle["samples"] == 64
    assert circle["fraction_of_judged"] is None and everything["abstained"] == 64
    assert attribute_rates(shapes_judge, noise)["circle"] == 0.0

    real, _ = shapes_test.get_batch(torch.arange(500))
    circle, _ = attribute_report(shapes_judge, real, wanted)
    truth = shapes_test.attributes()[:500, wanted[0][1]].float().mean().item()
    assert circle["abstained"] <= 5 and circle["fraction"] == pytest.approx(truth, abs=0.02)
    meta = shapes_judge.meta
    assert meta["recognition_threshold"] > 0 and meta["recognition_reference"] == "held-out"


def test_a_judge_cached_before_abstaining_is_calibrated_not_retrained(tmp_path, shapes_train):
    from ebmctl.checkpoints import load_tensors

    data = _subset(shapes_train, 300)
    path = tmp_path / "attributes.safetensors"
    judge, trained = load_or_train_attribute_judge(path, data, steps=3, batch_size=16)
    tensors, meta = load_tensors(path)
    tensors.pop("reference_features")
    meta = {k: v for k, v in meta.items() if not k.startswith("recognition")}
    save_tensors(path, tensors, meta)  # as written before judges abstained
    old = load_attribute_judge(path)
    assert old.recognition_threshold is None and bool(old.recognises(torch.rand(2, 3, 32, 32)).all())
    again, trained = load_or_train_attribute_judge(path, data, steps=3, batch_size=16)
    assert not trained and again.recognition_threshold == pytest.approx(judge.recognition_threshold)
    assert load_attribute_judge(path).recognition_threshold == pytest.approx(judge.recognition_threshold)
