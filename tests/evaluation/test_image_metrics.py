"""FID / KID / precision-recall through torch-fidelity with the judge or local Inception weights."""

from __future__ import annotations

import socket

import numpy as np
import pytest
import torch
from scipy import linalg
from torch_fidelity import feature_extractor_inceptionv3 as inception_module
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

from ebmctl.errors import CheckpointError, SpecError
from ebmctl.evaluation import fid as fid_module
from ebmctl.evaluation.fid import JUDGE_EXTRACTOR, image_metrics, inception_available
from ebmctl.evaluation.judges import Judge


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(inception_module, "load_state_dict_from_url", refuse)


@pytest.fixture(scope="module")
def image_sets(draw_shapes):
    def floats(seed: int) -> torch.Tensor:
        return draw_shapes(200, seed=seed, classes=3).images.float() / 255

    return floats(10), floats(11), torch.rand(200, 3, 16, 16, generator=torch.Generator().manual_seed(0))


def _fid(a: np.ndarray, b: np.ndarray) -> float:
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def test_judge_metrics_separate_same_from_noise(toy_judge, image_sets, no_network):
    a, b, noise = image_sets
    same = image_metrics(a, b, judge=toy_judge)
    far = image_metrics(noise, b, judge=toy_judge)
    assert same["fid"] < 0.05 * far["fid"]
    assert abs(same["kid_mean"]) < 0.05 * far["kid_mean"]
    assert abs(same["kid_mean"]) < 3 * same["kid_std"] + 0.02
    for result in (same, far):
        assert 0.0 <= result["precision"] <= 1.0 and 0.0 <= result["recall"] <= 1.0
        assert result["extractor"] == "judge:toyshapes (3-class CNN, 96-d)"
        assert (result["n_samples"], result["n_reference"], result["kid_subset_size"]) == (200, 200, 100)
    assert same["precision"] > 0.7 and same["recall"] > 0.7
    assert far["precision"] < 0.1


def test_fid_is_computed_on_the_judge_features(toy_judge, image_sets):
    a, b, _ = image_sets
    expected = _fid(toy_judge.features(a).numpy(), toy_judge.features(b).numpy())
    result = image_metrics(a, b, judge=toy_judge, precision_recall=False)
    assert result["fid"] == pytest.approx(expected, rel=1e-3, abs=1e-6)
    assert result["precision"] is None and result["recall"] is None


def test_many_judges_in_one_process(toy_judge, image_sets):
    a, b, _ = image_sets
    other = Judge(3, 3, {"dataset": "untrained"}).eval()
    params_before = [p.clone() for p in toy_judge.parameters()]
    first = image_metrics(a, b, judge=toy_judge, precision_recall=False)
    second = image_metrics(a, b, judge=other, precision_recall=False)
    third = image_metrics(a, b, judge=toy_judge, precision_recall=False)
    assert second["extractor"].startswith("judge:untrained")
    assert second["fid"] != pytest.approx(first["fid"])
    assert third["fid"] == first["fid"] and third["kid_mean"] == first["kid_mean"]
    assert FEATURE_EXTRACTORS_REGISTRY[JUDGE_EXTRACTOR] is fid_module._JudgeExtractor
    assert fid_module._active_judge is None
    # the caller's judge is neither frozen nor changed by torch-fidelity
    assert all(p.requires_grad for p in toy_judge.parameters())
    assert all(torch.equal(p, q) for p, q in zip(toy_judge.parameters(), params_before, strict=True))


def test_extractor_is_only_built_inside_image_metrics():
    fid_module._ensure_judge_extractor()
    with pytest.raises(RuntimeError, match="image_metrics"):
        FEATURE_EXTRACTORS_REGISTRY[JUDGE_EXTRACTOR](JUDGE_EXTRACTOR, ["judge"])


def test_bad_requests(toy_judge, image_sets, tmp_path):
    a, b, _ = image_sets
    with pytest.raises(ValueError, match="exactly one"):
        image_metrics(a, b)
    with pytest.raises(ValueError, match="exactly one"):
        image_metrics(a, b, judge=toy_judge, inception_weights=tmp_path / "w.pth")
    with pytest.raises(SpecError, match="kid_subset_size"):
        image_metrics(a, b[:50], judge=toy_judge, kid_subset_size=60)
    with pytest.raises(ValueError, match="NaN"):
        image_metrics(torch.full_like(a, float("nan")), b, judge=toy_judge)
    with pytest.raises(ValueError, match="at least"):
        image_metrics(a[:3], b, judge=toy_judge)
    with pytest.raises(ValueError, match="float"):
        image_metrics((a * 255).to(torch.uint8), b, judge=toy_judge)
    with pytest.raises(CheckpointError, match="shape"):
        image_metrics(a[:, :1], b[:, :1], judge=toy_judge)
    with pytest.raises(CheckpointError, match="shape"):
        image_metrics(torch.rand(8, 3, 32, 32), torch.rand(8, 3, 32, 32), judge=toy_judge)


def test_missing_inception_weights(image_sets, tmp_path, no_network):
    a, b, _ = image_sets
    missing = tmp_path / "nowhere" / "inception.pth"
    assert not inception_available(missing) and not inception_available(None)
    with pytest.raises(CheckpointError, match="not found") as err:
        image_metrics(a, b, inception_weights=missing)
    assert "inception_weights" in err.value.hint and "judge" in err.value.hint


def test_foreign_inception_file(image_sets, tmp_path, no_network):
    a, b, _ = image_sets
    path = tmp_path / "junk.pth"
    path.write_bytes(b"definitely not a weights file")
    assert inception_available(path)
    with pytest.raises(CheckpointError, match="state dict"):
        image_metrics(a, b, inception_weights=path)
    torch.save({"fc.weight": torch.zeros(3, 3)}, path)
    with pytest.raises(CheckpointError, match="Inception"):
        image_metrics(a, b, inception_weights=path)


def test_inception_route_with_local_weights(draw_shapes, tmp_path, monkeypatch, no_network):
    """Randomly initialised Inception weights saved locally: gray 16x16 floats reach it as uint8 3x16x16."""
    with monkeypatch.context() as m:
        m.setattr(inception_module, "load_state_dict_from_url", lambda *args, **kwargs: {})
        m.setattr(inception_module.FeatureExtractorInceptionV3, "load_state_dict", lambda self, state: None)
        torch.manual_seed(0)
        net = inception_module.FeatureExtractorInceptionV3("random-inception", ["2048"])
    path = tmp_path / "inception.pth"
    torch.save(net.state_dict(), path)
    a = draw_shapes(6, seed=20, classes=2, channels=1).images.float() / 255
    b = draw_shapes(6, seed=21, classes=2, channels=1).images.float() / 255
    result = image_metrics(a, b, inception_weights=path, kid_subset_size=4, kid_subsets=5)
    assert result["extractor"] == f"inception-v3-compat (local weights {path})"
    assert np.isfinite(result["fid"]) and result["fid"] > 0
    assert 0.0 <= result["precision"] <= 1.0 and 0.0 <= result["recall"] <= 1.0
    assert result["kid_subset_size"] == 4
