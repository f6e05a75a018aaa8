"""The in-domain judge: training, features, safetensors round trip, cache reuse and invalidation."""

from __future__ import annotations

import math

import pytest
import torch

from ebmctl.checkpoints import read_meta, save_tensors
from ebmctl.data.base import DataInfo, TensorImageDataset
from ebmctl.errors import CheckpointError, SpecError
from ebmctl.evaluation.judges import (
    ARCHITECTURE,
    Judge,
    judge_accuracy,
    load_judge,
    load_or_train_judge,
    save_judge,
    train_judge,
)


def test_size_and_resolutions():
    for channels, classes in ((1, 10), (3, 4)):
        judge = Judge(channels, classes)
        assert 100_000 <= sum(p.numel() for p in judge.parameters()) <= 150_000
        judge.eval()
        for size in (16, 32, 64):
            assert judge.logits(torch.rand(2, channels, size, size)).shape == (2, classes)


def test_judge_learns_quickly_and_reports(draw_shapes):
    train, test = draw_shapes(400, seed=1, classes=4), draw_shapes(200, seed=2, classes=4)
    seen = []
    judge = train_judge(
        train, test_dataset=test, steps=100, batch_size=32, progress=lambda *a: seen.append(a)
    )
    assert judge.meta["test_accuracy"] >= 0.95
    assert judge_accuracy(judge, test) == judge.meta["test_accuracy"]
    assert [s[0] for s in seen] == list(range(1, 101)) and all(s[1] == 100 for s in seen)
    assert set(seen[-1][2]) == {"loss", "acc", "lr"}
    meta = judge.meta
    assert meta["dataset"] == "toyshapes" and meta["shape"] == [3, 16, 16] and meta["num_classes"] == 4
    assert meta["class_names"] == ["square", "circle", "triangle", "cross"]
    assert (meta["steps"], meta["seed"], meta["architecture"]) == (100, 0, ARCHITECTURE)


def test_training_is_seeded_and_leaves_global_rng_alone(draw_shapes):
    data = draw_shapes(100, seed=3, classes=2, channels=1)
    state = torch.random.get_rng_state()
    a = train_judge(data, steps=5, batch_size=16, seed=7)
    assert torch.equal(torch.random.get_rng_state(), state)
    b = train_judge(data, steps=5, batch_size=16, seed=7)
    c = train_judge(data, steps=5, batch_size=16, seed=8)
    x = torch.rand(4, 1, 16, 16)
    assert torch.equal(a.logits(x), b.logits(x))
    assert not torch.equal(a.logits(x), c.logits(x))
    assert a.meta["test_accuracy"] is None


def test_features_have_norm_sqrt_d(toy_judge):
    feats = toy_judge.features(torch.rand(8, 3, 16, 16))
    assert feats.dtype == torch.float64 and feats.shape == (8, toy_judge.feature_dim)
    norms = feats.norm(dim=1)
    assert torch.allclose(norms, torch.full_like(norms, math.sqrt(toy_judge.feature_dim)))


def test_uint8_and_float_inputs_agree(toy_judge, draw_shapes):
    images = draw_shapes(6, seed=5, classes=3).images
    assert torch.allclose(toy_judge.logits(images), toy_judge.logits(images.float() / 255), atol=1e-5)
    assert toy_judge.predict(images).shape == (6,)


def test_save_load_round_trip(toy_judge, tmp_path):
    path = tmp_path / "judge.safetensors"
    save_judge(toy_judge, path)
    loaded = load_judge(path)
    x = torch.rand(5, 3, 16, 16)
    assert torch.equal(loaded.logits(x), toy_judge.logits(x))
    assert loaded.meta == toy_judge.meta
    assert not loaded.training


def test_foreign_files_are_refused(tmp_path):
    path = tmp_path / "other.safetensors"
    save_tensors(path, {"w": torch.zeros(2)}, {"kind": "model"})
    with pytest.raises(CheckpointError, match="not an ebmctl judge"):
        load_judge(path)
    judge = Judge(3, 2)
    judge.meta = {
        "kind": "ebmctl-judge",
        "architecture": ARCHITECTURE,
        "shape": [3, 16, 16],
        "num_classes": 5,
    }
    save_judge(judge, path)
    with pytest.raises(CheckpointError, match="does not match"):
        load_judge(path)


def test_cache_is_reused_and_invalidated(tmp_path, draw_shapes):
    path = tmp_path / "judges" / "toy.safetensors"
    data = draw_shapes(120, seed=4, classes=2)
    first, trained = load_or_train_judge(path, data, steps=4, batch_size=16)
    assert trained and path.is_file()
    again, trained = load_or_train_judge(path, data, steps=4, batch_size=16)
    assert not trained
    x = torch.rand(3, 3, 16, 16)
    assert torch.equal(again.logits(x), first.logits(x))

    renamed = draw_shapes(120, seed=4, classes=2, name="othershapes")
    _, trained = load_or_train_judge(path, renamed, steps=4, batch_size=16)
    assert trained and read_meta(path)["dataset"] == "othershapes"

    more_classes = draw_shapes(120, seed=4, classes=3, name="othershapes")
    _, trained = load_or_train_judge(path, more_classes, steps=4, batch_size=16)
    assert trained and read_meta(path)["num_classes"] == 3

    path.write_bytes(b"not a safetensors file")
    _, trained = load_or_train_judge(path, more_classes, steps=4, batch_size=16)
    assert trained and read_meta(path)["num_classes"] == 3


def test_unlabelled_dataset_is_a_spec_error():
    info = DataInfo("photos", "image", "train", (3, 16, 16))
    data = TensorImageDataset(info, torch.zeros(8, 3, 16, 16, dtype=torch.uint8))
    with pytest.raises(SpecError, match="class labels") as err:
        train_judge(data, steps=2)
    assert "inception_weights" in (err.value.hint or "")


def test_points_dataset_is_a_spec_error():
    info = DataInfo("moons", "points", "train", (2,), 2)
    data = TensorImageDataset(info, torch.zeros(8, 2), torch.zeros(8, dtype=torch.long))
    with pytest.raises(SpecError, match="image dataset"):
        train_judge(data, steps=2)


def test_bad_labels_are_a_spec_error(draw_shapes):
    data = draw_shapes(10, seed=0, classes=2)
    data._labels = data.labels().clone()
    data._labels[0] = 5
    with pytest.raises(SpecError, match="outside"):
        train_judge(data, steps=2)


@pytest.mark.slow
@pytest.mark.parametrize(("name", "target"), [("shapes32", 0.97), ("digits", 0.95), ("mnist5k", 0.97)])
def test_judge_accuracy_on_embedded_sets(name, target):
    """The default schedule on the embedded 4-class shapes32, 10-class 32x32 digits and 28x28 mnist5k."""
    from ebmctl.data.load import load_dataset

    train, test = load_dataset(name, split="train"), load_dataset(name, split="test")
    assert train_judge(train, test_dataset=test).meta["test_accuracy"] >= target


def test_mnist5k_judge_learns_from_the_train_split_alone():
    """A short schedule on mnist5k's 3500 training digits already classifies its held-out test digits."""
    from ebmctl.data.load import load_dataset

    train, test = load_dataset("mnist5k", split="train"), load_dataset("mnist5k", split="test")
    judge = train_judge(train, test_dataset=test, steps=60)
    meta = judge.meta
    assert (meta["dataset"], meta["split"], meta["shape"], meta["num_classes"]) == ("mnist5k", "train", [1, 28, 28], 10)
    assert meta["test_accuracy"] >= 0.85
