"""Out-of-distribution detection metrics and their pictures.

One sign convention everywhere: a higher score means "more in-distribution" (e.g. the negative energy).
Scores that are not finite raise ValueError: a diverged model must not yield a plausible-looking AUROC.
"""

from __future__ import annotations

import io
from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

SIGN_CONVENTION = "higher score = more in-distribution"
TPR_LEVEL = 0.95


def _scores(values: object, name: str) -> np.ndarray:
    if hasattr(values, "detach"):  # a torch tensor, possibly on a GPU
        values = values.detach().cpu().numpy()
    arr = np.asarray(values, dtype=np.float64).ravel()
    if arr.size == 0:
        raise ValueError(f"{name}: no scores")
    bad = int((~np.isfinite(arr)).sum())
    if bad:
        raise ValueError(f"{name}: {bad} of {arr.size} scores are NaN or infinite")
    return arr


def fpr_at_tpr(scores_in: np.ndarray, scores_out: np.ndarray, tpr: float = TPR_LEVEL) -> float:
    """Fraction of OOD scores >= the highest threshold keeping at least ``tpr`` of in-distribution scores."""
    s_in = np.sort(_scores(scores_in, "in-distribution"))
    s_out = _scores(scores_out, "out-of-distribution")
    n = s_in.size
    k = int(np.floor(round((1.0 - tpr) * n, 9)))  # scores below s_in[k] are given up (at most (1 - tpr) n)
    threshold = s_in[min(k, n - 1)]
    return float(np.mean(s_out >= threshold))


def ood_metrics(scores_in: object, scores_out: object) -> dict[str, float | int]:
    """AUROC, AUPR-in, AUPR-out and FPR@95%TPR, with higher score = more in-distribution.

    AUPR-in takes in-distribution samples as positives; AUPR-out takes OOD samples as positives with the
    scores negated. FPR95 is the fraction of OOD scores at or above the threshold keeping 95% of the
    in-distribution scores. Non-finite scores raise ValueError."""
    s_in = _scores(scores_in, "in-distribution")
    s_out = _scores(scores_out, "out-of-distribution")
    y = np.concatenate([np.ones(s_in.size), np.zeros(s_out.size)])
    s = np.concatenate([s_in, s_out])
    return {
        "auroc": float(roc_auc_score(y, s)),
        "aupr_in": float(average_precision_score(y, s)),
        "aupr_out": float(average_precision_score(1 - y, -s)),
        "fpr95": fpr_at_tpr(s_in, s_out),
        "n_in": int(s_in.size),
        "n_out": int(s_out.size),
    }


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def score_histogram_png(scores_by_set: Mapping[str, object], title: str) -> bytes:
    """Overlaid density histograms of each set's scores, on shared bins, as PNG bytes."""
    if not scores_by_set:
        raise ValueError("no score sets to draw")
    sets = {name: _scores(v, name) for name, v in scores_by_set.items()}
    everything = np.concatenate(list(sets.values()))
    lo, hi = float(everything.min()), float(everything.max())
    bins = np.linspace(lo, hi if hi > lo else lo + 1.0, 51)
    fig = Figure(figsize=(6.4, 4.0))
    ax = fig.subplots()
    for name, values in sets.items():
        ax.hist(values, bins=bins, density=True, alpha=0.5, label=f"{name} (n={values.size})")
    ax.set_xlabel(f"score ({SIGN_CONVENTION})")
    ax.set_ylabel("density")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return _png(fig)


def roc_png(curves: Mapping[str, tuple[object, object]], title: str) -> bytes:
    """ROC curves, one per ``label -> (scores_in, scores_out)``, with AUROC in the legend, as PNG bytes."""
    if not curves:
        raise ValueError("no ROC curves to draw")
    fig = Figure(figsize=(5.0, 5.0))
    ax = fig.subplots()
    for label, (scores_in, scores_out) in curves.items():
        s_in, s_out = _scores(scores_in, f"{label} in"), _scores(scores_out, f"{label} out")
        y = np.concatenate([np.ones(s_in.size), np.zeros(s_out.size)])
        s = np.concatenate([s_in, s_out])
        fpr, tpr, _ = roc_curve(y, s)
        ax.plot(fpr, tpr, label=f"{label} (AUROC {roc_auc_score(y, s):.3f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("false positive rate (OOD accepted)")
    ax.set_ylabel("true positive rate (in-distribution accepted)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_title(title)
    ax.legend(loc="lower right")
    fig.tight_layout()
    return _png(fig)
