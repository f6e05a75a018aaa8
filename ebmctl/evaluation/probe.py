"""Probes of frozen representations: few-shot and full linear probes, weighted kNN, 1-NN confusion.

These follow the evaluations of the Conjugate-EBM paper (linear probes at 1/10/100 shots and on the full
training set, a 1-nearest-neighbour confusion matrix in L2 distance) and of EBCLR (the weighted kNN
classifier of Wu et al. 2018). Features are ``(N, d)`` numpy arrays or torch tensors, labels are integer
arrays; every function returns plain Python or numpy values.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import torch

_Array = np.ndarray | torch.Tensor


def _to_numpy(values: object) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return np.asarray(values)


def _features(values: object, name: str) -> np.ndarray:
    arr = _to_numpy(values)
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected an (N, d) feature array, got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name}: empty feature array of shape {arr.shape}")
    if arr.dtype != np.float32:
        arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}: features contain NaN or infinite values")
    return arr


def _labels(values: object, name: str) -> np.ndarray:
    arr = _to_numpy(values)
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D label array, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name}: no labels")
    if not np.issubdtype(arr.dtype, np.integer):
        if not np.all(np.mod(arr, 1) == 0):
            raise ValueError(f"{name}: labels must be integers")
        arr = arr.astype(np.int64)
    return arr.astype(np.int64, copy=False)


def _split(
    train_x: object, train_y: object, test_x: object, test_y: object
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Validated ``(train_x, train_y, test_x, test_y)`` as numpy arrays."""
    tr_x, te_x = _features(train_x, "train_x"), _features(test_x, "test_x")
    tr_y, te_y = _labels(train_y, "train_y"), _labels(test_y, "test_y")
    if tr_x.shape[0] != tr_y.shape[0]:
        raise ValueError(f"train_x has {tr_x.shape[0]} rows but train_y has {tr_y.shape[0]} labels")
    if te_x.shape[0] != te_y.shape[0]:
        raise ValueError(f"test_x has {te_x.shape[0]} rows but test_y has {te_y.shape[0]} labels")
    if tr_x.shape[1] != te_x.shape[1]:
        raise ValueError(f"train features have dimension {tr_x.shape[1]} but test features {te_x.shape[1]}")
    return tr_x, tr_y, te_x, te_y


def _check_batch(batch: int) -> None:
    if batch < 1:
        raise ValueError(f"batch must be at least 1, got {batch}")


def few_shot_indices(labels: np.ndarray, shots: int, seed: int) -> np.ndarray:
    """Sorted indices of ``shots`` examples per class, drawn without replacement.

    A class with fewer than ``shots`` examples contributes all of them. Classes are visited in
    ascending order with one ``np.random.default_rng(seed)``, so the draw is reproducible per seed."""
    y = _labels(labels, "labels")
    if shots < 1:
        raise ValueError(f"shots must be at least 1, got {shots}")
    rng = np.random.default_rng(seed)
    chosen = []
    for cls in np.unique(y):
        members = np.flatnonzero(y == cls)
        if members.size > shots:
            members = rng.choice(members, size=shots, replace=False)
        chosen.append(members)
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def fit_logistic(
    train_x: _Array,
    train_y: np.ndarray,
    test_x: _Array,
    test_y: np.ndarray,
    *,
    max_iter: int = 1000,
    C: float = 1.0,
) -> float:
    """Test accuracy of an L2 logistic regression (lbfgs) on standardised features.

    The scaler is fitted on the training features only. A single-class training set predicts that
    class everywhere. Convergence warnings are silenced and BLAS is held to one thread."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    tr_x, tr_y, te_x, te_y = _split(train_x, train_y, test_x, test_y)
    classes = np.unique(tr_y)
    if classes.size == 1:
        return float(np.mean(te_y == classes[0]))
    with threadpool_limits(limits=1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        scaler = StandardScaler().fit(tr_x)
        model = LogisticRegression(solver="lbfgs", max_iter=max_iter, C=C)
        model.fit(scaler.transform(tr_x), tr_y)
        predicted = model.predict(scaler.transform(te_x))
    return float(np.mean(predicted == te_y))


def linear_probe(
    train_x: _Array,
    train_y: np.ndarray,
    test_x: _Array,
    test_y: np.ndarray,
    *,
    shots: list[int | None],
    seeds: int = 10,
    max_iter: int = 1000,
) -> list[dict]:
    """Logistic-regression probes, one row per entry of ``shots`` (``None`` = full training set).

    A few-shot entry ``k`` is fitted on ``few_shot_indices(train_y, k, seed)`` for each seed in
    ``range(seeds)``; the full set is fitted once. Each row is
    ``{"shots": k or "full", "mean", "std" (population), "runs", "accuracies"}``."""
    tr_x, tr_y, te_x, te_y = _split(train_x, train_y, test_x, test_y)
    if seeds < 1:
        raise ValueError(f"seeds must be at least 1, got {seeds}")
    rows = []
    for k in shots:
        if k is None:
            accuracies = [fit_logistic(tr_x, tr_y, te_x, te_y, max_iter=max_iter)]
        else:
            if k < 1:
                raise ValueError(f"shots entries must be positive or None, got {k}")
            accuracies = []
            for seed in range(seeds):
                idx = few_shot_indices(tr_y, k, seed)
                accuracies.append(fit_logistic(tr_x[idx], tr_y[idx], te_x, te_y, max_iter=max_iter))
        rows.append(
            {
                "shots": "full" if k is None else int(k),
                "mean": float(np.mean(accuracies)),
                "std": float(np.std(accuracies)),
                "runs": len(accuracies),
                "accuracies": [float(a) for a in accuracies],
            }
        )
    return rows


def knn_accuracy(
    train_x: _Array,
    train_y: np.ndarray,
    test_x: _Array,
    test_y: np.ndarray,
    *,
    k: int = 20,
    temperature: float = 0.07,
    batch: int = 1024,
) -> float:
    """Accuracy of the weighted kNN classifier of Wu et al. (2018) on L2-normalised features.

    The ``k`` train features of highest cosine similarity vote for their labels with weight
    ``exp(sim / temperature)``; the label with the largest summed weight wins (ties: the smallest label).
    ``k`` is clipped to the training-set size; test features are processed ``batch`` at a time."""
    tr_x, tr_y, te_x, te_y = _split(train_x, train_y, test_x, test_y)
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    _check_batch(batch)
    classes, class_idx = np.unique(tr_y, return_inverse=True)
    k = min(k, tr_x.shape[0])
    train = torch.nn.functional.normalize(torch.as_tensor(tr_x), dim=1)
    train_classes = torch.as_tensor(class_idx, dtype=torch.long)
    test = torch.nn.functional.normalize(torch.as_tensor(te_x), dim=1)
    predicted = []
    with torch.no_grad():
        for start in range(0, test.shape[0], batch):
            sim = test[start : start + batch] @ train.T
            top_sim, top_idx = sim.topk(k, dim=1)
            weights = torch.exp(top_sim / temperature)
            votes = torch.zeros(sim.shape[0], classes.size, dtype=weights.dtype)
            votes.scatter_add_(1, train_classes[top_idx], weights)
            predicted.append(votes.argmax(dim=1).numpy())
    return float(np.mean(classes[np.concatenate(predicted)] == te_y))


def nearest_neighbour_confusion(
    train_x: _Array,
    train_y: np.ndarray,
    test_x: _Array,
    test_y: np.ndarray,
    num_classes: int,
    batch: int = 1024,
) -> np.ndarray:
    """Row-normalised confusion matrix of the 1-nearest-neighbour classifier in Euclidean distance.

    Rows are true classes, columns predicted ones; a class with no test examples has a zero row.
    Labels must lie in ``[0, num_classes)``; distance ties go to the earliest training example."""
    tr_x, tr_y, te_x, te_y = _split(train_x, train_y, test_x, test_y)
    if num_classes < 1:
        raise ValueError(f"num_classes must be at least 1, got {num_classes}")
    _check_batch(batch)
    for name, y in (("train_y", tr_y), ("test_y", te_y)):
        if y.min() < 0 or y.max() >= num_classes:
            raise ValueError(f"{name}: labels must lie in [0, {num_classes}), got [{y.min()}, {y.max()}]")
    train = torch.as_tensor(tr_x)
    test = torch.as_tensor(te_x)
    nearest = []
    with torch.no_grad():
        for start in range(0, test.shape[0], batch):
            # the direct form: the matrix-product shortcut loses near neighbours to cancellation
            dist = torch.cdist(test[start : start + batch], train, compute_mode="donot_use_mm_for_euclid_dist")
            nearest.append(dist.argmin(dim=1).numpy())
    predicted = tr_y[np.concatenate(nearest)]
    counts = np.zeros((num_classes, num_classes), dtype=np.float64)
    np.add.at(counts, (te_y, predicted), 1.0)
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)


def confusion_png(matrix: np.ndarray, class_names: list[str] | None, title: str) -> bytes:
    """A confusion-matrix heatmap (rows true, columns predicted) with a colorbar, as PNG bytes.

    Cells are annotated with their values when there are at most 20 classes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] == 0:
        raise ValueError(f"expected a non-empty square matrix, got shape {m.shape}")
    n = m.shape[0]
    if class_names is not None and len(class_names) != n:
        raise ValueError(f"{len(class_names)} class names for a {n}x{n} matrix")
    names = list(class_names) if class_names is not None else [str(i) for i in range(n)]
    side = min(max(4.0, 0.45 * n + 2.0), 16.0)
    fig, ax = plt.subplots(figsize=(side + 1.0, side))
    try:
        top = float(m.max()) if m.max() > 0 else 1.0
        image = ax.imshow(m, cmap="Blues", vmin=0.0, vmax=top)
        fig.colorbar(image, ax=ax)
        if n <= 20:
            ax.set_xticks(range(n), labels=names, rotation=45, ha="right")
            ax.set_yticks(range(n), labels=names)
            for i in range(n):
                for j in range(n):
                    colour = "white" if m[i, j] > 0.5 * top else "black"
                    ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", color=colour, fontsize=8)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(title)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)
    return buf.getvalue()
