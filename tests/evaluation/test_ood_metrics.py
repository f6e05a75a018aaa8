"""OOD metrics on scores with known answers, one sign convention, and the pictures."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from ebmctl.evaluation.ood import SIGN_CONVENTION, fpr_at_tpr, ood_metrics, roc_png, score_histogram_png

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_sign_convention_is_stated_once():
    assert SIGN_CONVENTION == "higher score = more in-distribution"


def test_perfect_separation():
    m = ood_metrics(np.arange(10.0, 20.0), np.arange(0.0, 10.0))
    assert m["auroc"] == 1.0
    assert m["aupr_in"] == pytest.approx(1.0) and m["aupr_out"] == pytest.approx(1.0)
    assert m["fpr95"] == 0.0
    assert (m["n_in"], m["n_out"]) == (10, 10)


def test_swapped_scores_give_the_opposite_answer():
    m = ood_metrics(np.arange(0.0, 10.0), np.arange(10.0, 20.0))
    assert m["auroc"] == 0.0
    assert m["fpr95"] == 1.0


def test_identical_distributions_are_at_chance():
    rng = np.random.default_rng(0)
    m = ood_metrics(rng.normal(size=20000), rng.normal(size=20000))
    assert m["auroc"] == pytest.approx(0.5, abs=0.01)
    assert m["fpr95"] == pytest.approx(0.95, abs=0.01)
    assert m["aupr_in"] == pytest.approx(0.5, abs=0.01)


def test_energies_must_be_negated():
    """Energies are low in-distribution: passed as they are, the metrics say 'worse than chance'."""
    rng = np.random.default_rng(1)
    energy_in, energy_out = rng.normal(0.0, 1.0, 500), rng.normal(3.0, 1.0, 500)
    assert ood_metrics(-energy_in, -energy_out)["auroc"] > 0.95
    assert ood_metrics(energy_in, energy_out)["auroc"] < 0.05


def test_hand_computed_case():
    # pairs (in > out): 0.2 beats 1 of 3, 0.6 beats 3, 0.9 beats 3, 0.4 beats 2 -> 9 / 12
    m = ood_metrics([0.2, 0.6, 0.9, 0.4], [0.1, 0.5, 0.3])
    assert m["auroc"] == pytest.approx(0.75)
    # 4 in-scores: keeping >= 95% keeps all of them, threshold 0.2; OOD at or above it: 0.5, 0.3
    assert m["fpr95"] == pytest.approx(2 / 3)
    assert ood_metrics(torch.tensor([0.2, 0.6, 0.9, 0.4]), torch.tensor([0.1, 0.5, 0.3])) == m


def test_hand_computed_average_precision():
    # ranking: 3 (in), 2 (out), 1 (in). AP-in = 1 * 1/2 + 2/3 * 1/2; AP-out (negated): out ranked 2nd -> 1/2
    m = ood_metrics([3.0, 1.0], [2.0])
    assert m["aupr_in"] == pytest.approx(5 / 6)
    assert m["aupr_out"] == pytest.approx(0.5)


def test_fpr95_threshold_keeps_exactly_95_percent():
    # 20 in-scores 1..20: the threshold keeping 19 of them (95%) is 2, so only 2.5 of the OOD scores passes
    assert fpr_at_tpr(np.arange(1.0, 21.0), np.array([1.5, 2.5, 0.5])) == pytest.approx(1 / 3)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_scores_are_refused(bad):
    with pytest.raises(ValueError, match="NaN or infinite"):
        ood_metrics([0.1, bad, 0.3], [0.0, 0.2])
    with pytest.raises(ValueError, match="NaN or infinite"):
        ood_metrics([0.1, 0.3], [bad])


def test_empty_scores_are_refused():
    with pytest.raises(ValueError, match="no scores"):
        ood_metrics([], [1.0])


def _png_size(data: bytes) -> tuple[int, int]:
    assert data.startswith(PNG_SIGNATURE)
    with Image.open(io.BytesIO(data)) as im:
        return im.size


def test_histogram_png():
    rng = np.random.default_rng(2)
    data = score_histogram_png({"test": rng.normal(size=300), "svhn": rng.normal(1, 1, 200)}, "scores")
    width, height = _png_size(data)
    assert width > 300 and height > 200


def test_roc_png():
    rng = np.random.default_rng(3)
    curves = {
        "svhn": (rng.normal(1, 1, 200), rng.normal(0, 1, 200)),
        "noise": (rng.normal(size=50), [5.0, 6.0]),
    }
    width, height = _png_size(roc_png(curves, "ROC"))
    assert width > 300 and height > 300


def test_pictures_refuse_bad_input():
    with pytest.raises(ValueError):
        roc_png({}, "empty")
    with pytest.raises(ValueError, match="NaN"):
        score_histogram_png({"a": [1.0, np.nan]}, "bad")
