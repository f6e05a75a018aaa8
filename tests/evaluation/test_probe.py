"""Linear probes, weighted kNN and the 1-NN confusion matrix on features with a known answer."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ebmctl.evaluation.probe import (
    confusion_png,
    few_shot_indices,
    fit_logistic,
    knn_accuracy,
    linear_probe,
    nearest_neighbour_confusion,
)


def _clusters(
    n: int, seed: int, *, classes: int = 3, per_class: int = 2, dim: int = 16, spread: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """``per_class`` Gaussian clusters per class around fixed centres (same centres for every seed)."""
    centres = np.random.default_rng(1234).normal(0.0, 10.0, size=(classes * per_class, dim))
    rng = np.random.default_rng(seed)
    cluster = rng.integers(0, classes * per_class, size=n)
    x = centres[cluster] + rng.normal(0.0, spread, size=(n, dim))
    return x, cluster // per_class


def _unit(angle_deg: float, radius: float = 1.0) -> list[float]:
    a = math.radians(angle_deg)
    return [radius * math.cos(a), radius * math.sin(a)]


# few_shot_indices


def test_few_shot_indices_per_class_distinct_sorted():
    labels = np.repeat(np.arange(4), 50)
    np.random.default_rng(0).shuffle(labels)
    idx = few_shot_indices(labels, 5, seed=3)
    assert idx.shape == (20,)
    assert np.all(np.diff(idx) > 0)  # sorted and distinct
    assert np.bincount(labels[idx], minlength=4).tolist() == [5, 5, 5, 5]


def test_few_shot_indices_reproducible_and_seed_dependent():
    labels = np.repeat(np.arange(3), 100)
    first = few_shot_indices(labels, 10, seed=7)
    np.testing.assert_array_equal(first, few_shot_indices(labels, 10, seed=7))
    assert not np.array_equal(first, few_shot_indices(labels, 10, seed=8))


def test_few_shot_indices_small_class_gives_all_members():
    labels = np.array([0] * 20 + [1] * 3 + [2] * 20)
    idx = few_shot_indices(labels, 5, seed=0)
    assert set(np.flatnonzero(labels == 1)) <= set(idx.tolist())
    assert np.bincount(labels[idx]).tolist() == [5, 3, 5]


def test_few_shot_indices_rejects_bad_input():
    with pytest.raises(ValueError):
        few_shot_indices(np.array([], dtype=int), 1, seed=0)
    with pytest.raises(ValueError):
        few_shot_indices(np.array([0, 1]), 0, seed=0)


# linear probes


def test_separated_clusters_are_probed_perfectly():
    train_x, train_y = _clusters(300, seed=0)
    test_x, test_y = _clusters(300, seed=1)
    full, ten = linear_probe(train_x, train_y, test_x, test_y, shots=[None, 10], seeds=5)
    assert full["shots"] == "full"
    assert full["mean"] == 1.0
    assert ten["shots"] == 10
    assert ten["mean"] > 0.95


def test_noise_features_give_chance_accuracy():
    rng = np.random.default_rng(5)
    train_x, test_x = rng.normal(size=(400, 8)), rng.normal(size=(400, 8))
    train_y, test_y = rng.integers(0, 2, 400), rng.integers(0, 2, 400)
    (row,) = linear_probe(train_x, train_y, test_x, test_y, shots=[None])
    assert abs(row["mean"] - 0.5) < 0.1


def test_standardisation_rescues_a_tiny_informative_dimension():
    # Only column 0 carries the label, at scale 1e-3, beside noise of scale 100: without standardisation
    # the L2 penalty (C=1) keeps its weight near zero and the probe is at chance.
    rng = np.random.default_rng(0)

    def make(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, 2, n)
        x = rng.normal(0.0, 100.0, size=(n, 6))
        x[:, 0] = 1e-3 * (2 * y - 1) + rng.normal(0.0, 2e-4, n)
        return x, y

    (train_x, train_y), (test_x, test_y) = make(300), make(300)
    assert fit_logistic(train_x, train_y, test_x, test_y) > 0.97


def test_row_statistics_match_the_runs():
    train_x, train_y = _clusters(300, seed=2, spread=12.0)  # overlapping: few-shot accuracy varies
    test_x, test_y = _clusters(200, seed=3, spread=12.0)
    full, two = linear_probe(train_x, train_y, test_x, test_y, shots=[None, 2], seeds=4)
    assert full["runs"] == 1 and len(full["accuracies"]) == 1
    assert full["std"] == 0.0 and full["mean"] == full["accuracies"][0]
    assert two["runs"] == 4 and len(two["accuracies"]) == 4
    assert two["mean"] == pytest.approx(np.mean(two["accuracies"]))
    assert two["std"] == pytest.approx(np.std(two["accuracies"]))
    assert two["std"] > 0.0
    for seed, acc in enumerate(two["accuracies"]):
        idx = few_shot_indices(train_y, 2, seed)
        assert acc == fit_logistic(train_x[idx], train_y[idx], test_x, test_y)


def test_single_class_training_set_predicts_that_class():
    train_x = np.random.default_rng(0).normal(size=(5, 3))
    test_x = np.zeros((4, 3))
    assert fit_logistic(train_x, np.full(5, 2), test_x, np.array([2, 2, 2, 0])) == 0.75


def test_torch_tensors_are_accepted():
    train_x, train_y = _clusters(120, seed=4)
    test_x, test_y = _clusters(60, seed=5)
    as_numpy = linear_probe(train_x, train_y, test_x, test_y, shots=[None, 3], seeds=2)
    as_torch = linear_probe(
        torch.as_tensor(train_x, dtype=torch.float32),
        torch.as_tensor(train_y),
        torch.as_tensor(test_x, dtype=torch.float32),
        torch.as_tensor(test_y),
        shots=[None, 3],
        seeds=2,
    )
    assert [r["mean"] for r in as_torch] == pytest.approx([r["mean"] for r in as_numpy], abs=0.02)
    assert knn_accuracy(torch.as_tensor(train_x), train_y, torch.as_tensor(test_x), test_y) == 1.0


# weighted kNN

# Train points on the unit circle (scaled: only directions count). Test point at 0 degrees has cosine
# similarity 1 with the class-1 point and 0.5 with each class-0 point at +-60 degrees; the class-0 point
# at 180 degrees (similarity -1) is the fourth neighbour.
_KNN_TRAIN = np.array([_unit(0, 3.0), _unit(60, 0.5), _unit(-60, 2.0), _unit(180, 7.0)])
_KNN_LABELS = np.array([1, 0, 0, 0])
_KNN_TEST = np.array([_unit(0), _unit(180)])
_KNN_TRUTH = np.array([1, 0])


def test_knn_weights_beat_the_majority_count():
    # k=3, T=0.07: class 1 weighs e^(1/0.07) ~ 1.6e6 > class 0 2 e^(0.5/0.07) ~ 2.5e3, so class 1 wins.
    # The point at 180 degrees has three class-0 neighbours.
    assert knn_accuracy(_KNN_TRAIN, _KNN_LABELS, _KNN_TEST, _KNN_TRUTH, k=3, temperature=0.07) == 1.0
    # T=1: class 1 weighs e = 2.72 < class 0 2 e^0.5 = 3.30; the majority wins and the first point is wrong.
    assert knn_accuracy(_KNN_TRAIN, _KNN_LABELS, _KNN_TEST, _KNN_TRUTH, k=3, temperature=1.0) == 0.5


def test_knn_labels_need_not_be_contiguous():
    labels = np.where(_KNN_LABELS == 1, 9, 4)
    truth = np.where(_KNN_TRUTH == 1, 9, 4)
    assert knn_accuracy(_KNN_TRAIN, labels, _KNN_TEST, truth, k=3, temperature=0.07) == 1.0


def test_knn_k_above_train_size_is_clipped():
    # One class-0 point with similarity 1 and two class-1 points with similarity 0.9; T=1.
    train = np.array([_unit(0), [0.9, math.sqrt(1 - 0.81)], [0.9, -math.sqrt(1 - 0.81)]])
    labels = np.array([0, 1, 1])
    test, truth = np.array([_unit(0)]), np.array([1])
    assert knn_accuracy(train, labels, test, truth, k=1, temperature=1.0) == 0.0  # nearest only: class 0
    # all three vote: class 1 weighs 2 e^0.9 = 4.92 > class 0 e^1 = 2.72
    assert knn_accuracy(train, labels, test, truth, k=100, temperature=1.0) == 1.0
    assert knn_accuracy(train, labels, test, truth, k=3, temperature=1.0) == 1.0


def _knn_reference(train_x, train_y, test_x, k, temperature):
    a = train_x / np.linalg.norm(train_x, axis=1, keepdims=True)
    b = test_x / np.linalg.norm(test_x, axis=1, keepdims=True)
    sim = b @ a.T
    predicted = []
    for row in sim:
        top = np.argsort(-row)[:k]
        votes = np.zeros(train_y.max() + 1)
        np.add.at(votes, train_y[top], np.exp(row[top] / temperature))
        predicted.append(np.argmax(votes))
    return np.array(predicted)


def test_knn_matches_a_reference_and_batching_does_not_matter():
    rng = np.random.default_rng(11)
    train_x, test_x = rng.normal(size=(200, 5)), rng.normal(size=(70, 5))
    train_y, test_y = rng.integers(0, 4, 200), rng.integers(0, 4, 70)
    expected = float(np.mean(_knn_reference(train_x, train_y, test_x, 10, 0.5) == test_y))
    whole = knn_accuracy(train_x, train_y, test_x, test_y, k=10, temperature=0.5)
    assert whole == pytest.approx(expected)
    assert knn_accuracy(train_x, train_y, test_x, test_y, k=10, temperature=0.5, batch=8) == whole
    assert 0.0 < whole < 1.0


# 1-NN confusion


def test_confusion_by_hand():
    train_x = np.array([[0.0], [10.0], [20.0]])
    train_y = np.array([0, 1, 2])
    test_x = np.array([[1.0], [9.0], [11.0], [19.0], [21.0]])
    test_y = np.array([0, 1, 2, 2, 0])  # nearest: 0, 1, 1, 2, 2
    expected = np.array(
        [
            [0.5, 0.0, 0.5, 0.0],
            [0.0, 1.0, 0.0, 0.0],
            [0.0, 0.5, 0.5, 0.0],
            [0.0, 0.0, 0.0, 0.0],  # class 3 has no test examples
        ]
    )
    matrix = nearest_neighbour_confusion(train_x, train_y, test_x, test_y, num_classes=4)
    np.testing.assert_allclose(matrix, expected)
    np.testing.assert_allclose(matrix.sum(axis=1), [1.0, 1.0, 1.0, 0.0])
    batched = nearest_neighbour_confusion(train_x, train_y, test_x, test_y, num_classes=4, batch=2)
    np.testing.assert_allclose(batched, expected)


def test_confusion_uses_euclidean_not_cosine_distance():
    # Both train points share the test point's direction; only the L2 distance separates them.
    matrix = nearest_neighbour_confusion(
        [[1.0, 0.0], [10.0, 0.0]], np.array([0, 1]), [[9.0, 0.0]], np.array([1]), 2
    )
    np.testing.assert_allclose(matrix, [[0.0, 0.0], [0.0, 1.0]])


def test_confusion_rejects_labels_out_of_range():
    with pytest.raises(ValueError, match="labels must lie"):
        nearest_neighbour_confusion(np.zeros((2, 1)), np.array([0, 3]), np.zeros((1, 1)), np.array([0]), 3)


def test_confusion_png_is_a_png():
    matrix = np.array([[0.9, 0.1], [0.25, 0.75]])
    assert confusion_png(matrix, ["cat", "dog"], "1-NN").startswith(b"\x89PNG\r\n\x1a\n")
    assert confusion_png(np.eye(25), None, "many classes").startswith(b"\x89PNG")
    with pytest.raises(ValueError):
        confusion_png(matrix, ["only one"], "bad names")


# input validation


def _call(name: str, train_x, train_y, test_x, test_y):
    if name == "fit_logistic":
        return fit_logistic(train_x, train_y, test_x, test_y)
    if name == "linear_probe":
        return linear_probe(train_x, train_y, test_x, test_y, shots=[None])
    if name == "knn_accuracy":
        return knn_accuracy(train_x, train_y, test_x, test_y)
    return nearest_neighbour_confusion(train_x, train_y, test_x, test_y, num_classes=2)


_FUNCTIONS = ["fit_logistic", "linear_probe", "knn_accuracy", "nearest_neighbour_confusion"]


@pytest.mark.parametrize("name", _FUNCTIONS)
def test_mismatched_lengths_raise(name):
    x, y = np.ones((6, 3)), np.array([0, 1, 0, 1, 0, 1])
    with pytest.raises(ValueError, match="train_x has 6 rows but train_y has 5"):
        _call(name, x, y[:5], x, y)
    with pytest.raises(ValueError, match="test_x has 4 rows but test_y has 6"):
        _call(name, x, y, x[:4], y)
    with pytest.raises(ValueError, match="dimension"):
        _call(name, x, y, x[:, :2], y)


@pytest.mark.parametrize("name", _FUNCTIONS)
def test_empty_inputs_raise(name):
    x, y = np.ones((6, 3)), np.array([0, 1, 0, 1, 0, 1])
    with pytest.raises(ValueError, match="empty"):
        _call(name, np.zeros((0, 3)), y[:0], x, y)
    with pytest.raises(ValueError, match="empty"):
        _call(name, x, y, np.zeros((0, 3)), y[:0])
