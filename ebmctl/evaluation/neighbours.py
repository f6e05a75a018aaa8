"""Nearest-neighbour probes of frozen features: weighted kNN in cosine or Euclidean distance, and the
1-nearest-neighbour confusion matrix in L2 distance (the Conjugate-EBM paper's Figure 1) with its picture."""

from __future__ import annotations

import io

import numpy as np
import torch

from ebmctl.evaluation.linear_probes import Features, check_batch, checked_split


def knn_accuracy(
    train_x: Features,
    train_y: np.ndarray,
    test_x: Features,
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
    tr_x, tr_y, te_x, te_y = checked_split(train_x, train_y, test_x, test_y)
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    check_batch(batch)
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


def knn_euclidean_accuracy(
    train_x: Features,
    train_y: np.ndarray,
    test_x: Features,
    test_y: np.ndarray,
    *,
    k: int = 20,
    batch: int = 1024,
) -> float:
    """Accuracy of EBCLR's released kNN classifier: the ``k`` nearest train features in Euclidean distance
    vote for their labels with weight ``1 / distance``; the largest summed weight wins (ties: the smallest label).

    A test feature at distance zero from some of its ``k`` neighbours (a duplicate of a training feature) takes
    the vote of those exact matches alone, one each: the limit of the 1/d weights (the released code divides by
    zero there). Distances are computed directly, not by the matrix-product shortcut, so that a duplicate is at
    exactly zero. ``k`` is clipped to the training-set size; ties at the k-th distance are broken arbitrarily."""
    tr_x, tr_y, te_x, te_y = checked_split(train_x, train_y, test_x, test_y)
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    check_batch(batch)
    classes, class_idx = np.unique(tr_y, return_inverse=True)
    k = min(k, tr_x.shape[0])
    train = torch.as_tensor(tr_x)
    test = torch.as_tensor(te_x, dtype=train.dtype)
    train_classes = torch.as_tensor(class_idx, dtype=torch.long)
    predicted = []
    with torch.no_grad():
        for start in range(0, test.shape[0], batch):
            dist = torch.cdist(test[start : start + batch], train, compute_mode="donot_use_mm_for_euclid_dist")
            top_dist, top_idx = dist.topk(k, dim=1, largest=False)
            exact = top_dist == 0
            weights = torch.where(exact.any(dim=1, keepdim=True), exact.to(top_dist.dtype), 1.0 / top_dist)
            votes = torch.zeros(dist.shape[0], classes.size, dtype=weights.dtype)
            votes.scatter_add_(1, train_classes[top_idx], weights)
            predicted.append(votes.argmax(dim=1).numpy())
    return float(np.mean(classes[np.concatenate(predicted)] == te_y))


def nearest_neighbour_confusion(
    train_x: Features,
    train_y: np.ndarray,
    test_x: Features,
    test_y: np.ndarray,
    num_classes: int,
    batch: int = 1024,
) -> np.ndarray:
    """Row-normalised confusion matrix of the 1-nearest-neighbour classifier in Euclidean distance.

    Rows are true classes, columns predicted ones; a class with no test examples has a zero row.
    Labels must lie in ``[0, num_classes)``; distance ties go to the earliest training example."""
    tr_x, tr_y, te_x, te_y = checked_split(train_x, train_y, test_x, test_y)
    if num_classes < 1:
        raise ValueError(f"num_classes must be at least 1, got {num_classes}")
    check_batch(batch)
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
