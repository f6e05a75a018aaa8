"""Quality of the embedded representation presets: cebm-digits probes and detects OOD inputs, and EBCLR's
features beat raw pixels and SimCLR's after the same two epochs on shapes32 (paper 004's claim, in small)."""

from __future__ import annotations

import pytest

from ebmctl.recipes import resolve_spec
from ebmctl.runs import resolve_run
from ebmctl.services.ood import OodOptions, ood
from ebmctl.services.probe import ProbeOptions, probe
from ebmctl.services.train import train


def _accuracy(rows: list[dict], features: str, probe_name: str, shots: object) -> float:
    return next(r["mean"] for r in rows if (r["features"], r["probe"], r["shots"]) == (features, probe_name, shots))


@pytest.mark.slow
def test_cebm_digits_probe_and_ood(tmp_path):
    run = train(resolve_spec("cebm-digits"), runs_root=tmp_path, device="cpu").run_dir
    ref = resolve_run(str(run), tmp_path)
    # the thresholds were measured with the standard protocol (docs/results.md)
    rows = probe(ref, ProbeOptions(dataset="digits", seeds=5, protocol="standard"), device="cpu").rows
    assert _accuracy(rows, "model", "linear", "full") > 0.9  # measured 0.963 (docs/results.md)
    assert _accuracy(rows, "model", "linear", 10) > 0.7  # measured 0.870
    ood_rows = ood(ref, OodOptions(in_name="digits", out_names=["textures"], scores=["energy", "grad_norm"]),
                   device="cpu").rows
    assert min(r["auroc"] for r in ood_rows) > 0.95  # measured 1.0


@pytest.mark.slow
def test_ebclr_beats_pixels_and_simclr_on_shapes(tmp_path):
    results = {}
    for preset in ("ebclr-shapes", "simclr-shapes"):
        run = train(resolve_spec(preset), runs_root=tmp_path, device="cpu").run_dir
        opts = ProbeOptions(dataset="shapes32", shots=[None], seeds=1, pixels=preset == "ebclr-shapes",
                            protocol="standard")  # as measured
        results[preset] = probe(resolve_run(str(run), tmp_path), opts, device="cpu").rows
    ebclr = _accuracy(results["ebclr-shapes"], "model", "linear", "full")
    assert ebclr > _accuracy(results["ebclr-shapes"], "pixels", "linear", "full") + 0.1  # measured 0.526 vs 0.348
    assert ebclr > _accuracy(results["simclr-shapes"], "model", "linear", "full")  # measured 0.526 vs 0.409
