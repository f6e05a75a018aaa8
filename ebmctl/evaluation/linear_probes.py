"""Linear classifiers on frozen features: the few-shot draw, logistic regression (lbfgs on standardised
features, or liblinear on raw ones), and a linear layer trained with Adam. Features are ``(N, d)`` numpy arrays
or torch tensors, labels integer arrays; every function returns plain Python or numpy values."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

Features = np.ndarray | torch.Tensor
# (train_x, train_y, test_x, test_y, seed) -> test accuracy
LinearFit = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int], float]


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


def checked_split(
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


def check_batch(batch: int) -> None:
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


def _sklearn_accuracy(train_x: Features, train_y: np.ndarray, test_x: Features, test_y: np.ndarray,
                      make_model: Callable[[int], Any], scale: bool) -> float:
    """Test accuracy of ``make_model(n_classes)`` fitted on the training features (standardised first when
    ``scale``, the scaler fitted on the training features only). A single-class training set predicts that class
    everywhere. Convergence warnings are silenced and BLAS is held to one thread."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    tr_x, tr_y, te_x, te_y = checked_split(train_x, train_y, test_x, test_y)
    classes = np.unique(tr_y)
    if classes.size == 1:
        return float(np.mean(te_y == classes[0]))
    with threadpool_limits(limits=1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if scale:
            scaler = StandardScaler().fit(tr_x)
            tr_x, te_x = scaler.transform(tr_x), scaler.transform(te_x)
        predicted = make_model(classes.size).fit(tr_x, tr_y).predict(te_x)
    return float(np.mean(predicted == te_y))


def fit_logistic(
    train_x: Features,
    train_y: np.ndarray,
    test_x: Features,
    test_y: np.ndarray,
    *,
    max_iter: int = 1000,
    C: float = 1.0,
) -> float:
    """Test accuracy of an L2 logistic regression (lbfgs) on standardised features."""
    from sklearn.linear_model import LogisticRegression

    return _sklearn_accuracy(train_x, train_y, test_x, test_y,
                             lambda _: LogisticRegression(solver="lbfgs", max_iter=max_iter, C=C), scale=True)


def fit_liblinear(
    train_x: Features,
    train_y: np.ndarray,
    test_x: Features,
    test_y: np.ndarray,
    *,
    C: float = 1.0,
    max_iter: int = 10000,
) -> float:
    """Test accuracy of L2 logistic regression fitted by liblinear on the raw, unscaled features.

    The Conjugate-EBM paper's released probe: C=1, tol 1e-4, ``max_iter`` 10000, ``random_state`` 0, one
    binary classifier per class (liblinear's multiclass scheme; the highest decision value wins), and the
    intercept fitted as liblinear does, as a penalised constant feature."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    def make(n_classes: int) -> Any:
        binary = LogisticRegression(solver="liblinear", C=C, max_iter=max_iter, random_state=0)
        return binary if n_classes == 2 else OneVsRestClassifier(binary)

    return _sklearn_accuracy(train_x, train_y, test_x, test_y, make, scale=False)


def fit_adam_linear(
    train_x: Features,
    train_y: np.ndarray,
    test_x: Features,
    test_y: np.ndarray,
    *,
    epochs: int = 200,
    batch: int = 512,
    lr: float = 1e-3,
    seed: int = 0,
    min_updates: int = 0,
) -> float:
    """Test accuracy of a linear layer on the raw features, trained by Adam on the softmax cross-entropy.

    EBCLR's released linear evaluation: no standardisation, no weight decay, Adam (lr 1e-3, betas 0.9/0.999,
    eps 1e-8), minibatches of 512, 200 epochs, the layer after the last epoch scored; ``min_updates`` adds
    epochs until the layer has taken at least that many Adam steps (see ``PAPER_HEAD_UPDATES``). The layer
    starts as torch's ``nn.Linear`` does (weights and bias uniform in +-1/sqrt(d)); each epoch visits the training
    set once in a fresh order. Both draws come from ``seed``. Runs in float32 on precomputed features, with the gradient and
    the Adam update written out (``torch.optim.Adam``'s arithmetic) to skip autograd's per-step overhead."""
    tr_x, tr_y, te_x, te_y = checked_split(train_x, train_y, test_x, test_y)
    for name, value in (("epochs", epochs), ("batch", batch)):
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr}")
    classes, targets = np.unique(tr_y, return_inverse=True)
    if classes.size == 1:
        return float(np.mean(te_y == classes[0]))
    epochs = max(epochs, -(-min_updates // -(-len(tr_y) // batch)))
    weight, bias = _adam_linear_head(torch.as_tensor(tr_x, dtype=torch.float32), torch.as_tensor(targets),
                                     classes.size, epochs=epochs, batch=batch, lr=lr, seed=seed)
    logits = torch.addmm(bias, torch.as_tensor(te_x, dtype=torch.float32), weight)
    return float(np.mean(classes[logits.argmax(dim=1).numpy()] == te_y))


def _adam_linear_head(
    x: torch.Tensor, targets: torch.Tensor, num_classes: int, *, epochs: int, batch: int, lr: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight ``(d, C)`` and bias ``(C,)`` of ``fit_adam_linear``'s layer after training."""
    betas, eps = (0.9, 0.999), 1e-8
    generator = torch.Generator().manual_seed(seed)
    n, dim = x.shape
    bound = 1.0 / math.sqrt(dim)
    weight = (torch.rand(dim, num_classes, generator=generator) * 2 - 1) * bound
    bias = (torch.rand(num_classes, generator=generator) * 2 - 1) * bound
    # The bias as one more row of the weight, fed by a column of ones: one tensor to update per step. Adam acts
    # elementwise, so this is the same arithmetic as two parameter tensors.
    params = torch.cat([weight, bias[None]])
    x = torch.cat([x, torch.ones(n, 1, dtype=x.dtype)], dim=1)
    first, second = torch.zeros_like(params), torch.zeros_like(params)
    onehot = torch.nn.functional.one_hot(targets.long(), num_classes).to(x.dtype)
    step = 0
    with torch.no_grad():
        for _ in range(epochs):
            # one minibatch holding the whole set: its order does not change the mean gradient
            batches = [(x, onehot)] if n <= batch else [
                (x[idx], onehot[idx]) for idx in torch.randperm(n, generator=generator).split(batch)]
            for xb, yb in batches:
                # d(mean cross-entropy)/d(logits) = (softmax - onehot) / B
                residual = torch.softmax(xb @ params, dim=1).sub_(yb).div_(len(xb))
                grad = xb.T @ residual
                step += 1
                first.mul_(betas[0]).add_(grad, alpha=1 - betas[0])
                second.mul_(betas[1]).addcmul_(grad, grad, value=1 - betas[1])
                denom = second.sqrt().div_(math.sqrt(1 - betas[1] ** step)).add_(eps)
                params.addcdiv_(first, denom, value=-lr / (1 - betas[0] ** step))
    weight, bias = params[:dim], params[dim]
    return weight, bias


def linear_probe(
    train_x: Features,
    train_y: np.ndarray,
    test_x: Features,
    test_y: np.ndarray,
    *,
    shots: list[int | None],
    seeds: int = 10,
    max_iter: int = 1000,
    fit: LinearFit | None = None,
) -> list[dict]:
    """Linear probes, one row per entry of ``shots`` (``None`` = full training set).

    ``fit`` is the classifier (default: ``fit_logistic`` with ``max_iter``). A few-shot entry ``k`` is fitted
    on ``few_shot_indices(train_y, k, seed)`` for each seed in ``range(seeds)``, and ``fit`` gets that seed;
    the full set is fitted once, with seed 0. Each row is
    ``{"shots": k or "full", "mean", "std" (population), "runs", "accuracies"}``."""
    tr_x, tr_y, te_x, te_y = checked_split(train_x, train_y, test_x, test_y)
    if seeds < 1:
        raise ValueError(f"seeds must be at least 1, got {seeds}")
    if fit is None:
        def fit(a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray, seed: int) -> float:
            return fit_logistic(a, b, c, d, max_iter=max_iter)
    rows = []
    for k in shots:
        if k is None:
            accuracies = [fit(tr_x, tr_y, te_x, te_y, 0)]
        else:
            if k < 1:
                raise ValueError(f"shots entries must be positive or None, got {k}")
            accuracies = []
            for seed in range(seeds):
                idx = few_shot_indices(tr_y, k, seed)
                accuracies.append(fit(tr_x[idx], tr_y[idx], te_x, te_y, seed))
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
