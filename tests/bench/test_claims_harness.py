"""bench/claims.py decides each claim's verdict, reuses runs and merges records: its rules, checked by hand."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from ebmctl.recipes import resolve_spec

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def claims():
    spec = importlib.util.spec_from_file_location("claims_harness", ROOT / "bench" / "claims.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["claims_harness"] = module  # dataclasses resolve their annotations through sys.modules
    spec.loader.exec_module(module)
    yield module
    del sys.modules["claims_harness"]


def _claim(claims, name):
    (claim,) = [c for c in claims.CLAIMS if c.name == name]
    return claim


def test_verdicts_follow_the_rule_and_flag_overlapping_arms(claims):
    claim = _claim(claims, "icd-beats-igebm")  # lower judge-FID for ICD
    icd, igebm = (arm.key for arm in claim.arms)
    assert claims._verdict(claim, {icd: [40.0, 42.0, 44.0], igebm: [80.0, 82.0, 84.0]}) == "holds"
    # means 4 apart, the larger sd 4: the direction holds but more seeds could turn it
    assert claims._verdict(claim, {icd: [36.0, 40.0, 44.0], igebm: [40.0, 44.0, 48.0]}) == "holds (within 2 sd)"
    assert claims._verdict(claim, {icd: [90.0, 92.0, 94.0], igebm: [80.0, 82.0, 84.0]}) == "does not hold"
    assert claims._verdict(claim, {icd: [40.0], igebm: [80.0]}) == "holds (one seed)"
    assert claims._verdict(claim, {icd: [40.0], igebm: []}) == "not yet run"


def test_a_hat_mode_needs_both_a_lower_fid_and_confident_samples(claims):
    claim = _claim(claims, "hat-synthesis")
    before, after, confident = (arm.key for arm in claim.arms)
    values = {before: [110.0, 112.0], after: [50.0, 52.0], confident: [0.6, 0.7]}
    assert claims._verdict(claim, values) == "holds"
    assert claims._verdict(claim, {**values, confident: [0.4, 0.45]}) == "does not hold"
    assert claims._verdict(claim, {**values, after: [120.0, 122.0]}) == "does not hold"


def test_a_run_trained_from_another_spec_is_stale(claims, tmp_path):
    harness = claims.Harness({}, set())
    harness.runs = tmp_path
    arm = claims.QUICKSTART_NO_KL
    run = tmp_path / arm.run_key / "s1" / "run-a"
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"status": "completed"}))
    spec = resolve_spec(arm.preset, list(arm.sets), {"seed": 1}).model_dump(mode="json")
    spec["sample"]["steps"] = 7  # what commands on a run do later is not part of the run
    (run / "spec.json").write_text(json.dumps(spec))
    assert not harness.stale(arm, 1)
    spec["train"]["lr"] = spec["train"]["lr"] * 2
    (run / "spec.json").write_text(json.dumps(spec))
    assert harness.stale(arm, 1)


def test_records_merge_newest_first(claims, tmp_path, monkeypatch):
    results = tmp_path / "results.json"
    monkeypatch.setattr(claims, "RESULTS", results)
    results.write_text(json.dumps({"a/x/s0": {"value": 1.0, "at": 10}, "b/x/s0": {"value": 5.0, "at": 30}}))
    harness = claims.Harness({"a/x/s0": {"value": 2.0, "at": 20}, "b/x/s0": {"value": 6.0, "at": 25}}, set())
    harness.save()
    merged = json.loads(results.read_text())
    assert merged["a/x/s0"]["value"] == 2.0  # this process measured it later
    assert merged["b/x/s0"]["value"] == 5.0  # another process measured it later
    assert harness.results == merged


def test_a_resumed_run_counts_every_part_of_its_training(claims, tmp_path):
    rows = [{"step": 10, "elapsed_s": 5.0}, {"step": 20, "elapsed_s": 9.0},  # stopped at 9 s
            {"step": 30, "elapsed_s": 4.0}, {"step": 40, "elapsed_s": 8.5}]  # resumed: 8.5 s more
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n{torn")
    assert claims.loop_seconds(tmp_path) == pytest.approx(17.5)
    assert claims.loop_seconds(tmp_path / "missing") == 0.0


def test_a_run_that_recorded_its_generators_architecture_is_not_stale(claims, tmp_path):
    harness = claims.Harness({}, set())
    harness.runs = tmp_path
    arm, (key, dep) = claims.RETRO_AFTER, claims.RETRO_AFTER.needs[0]
    generator = tmp_path / dep.run_key / "s0" / "ae-run"
    run = tmp_path / arm.run_key / "s0" / "hat-run"
    for folder in (generator, run):
        folder.mkdir(parents=True)
        (folder / "run.json").write_text(json.dumps({"status": "completed"}))
    spec = resolve_spec(arm.preset, arm.overrides({key: generator}), {"seed": 0}).model_dump(mode="json")
    spec["hat"]["generator_net"].update(kind="image_latent", ngf=32, out_scale=2.0)  # as train records it
    (run / "spec.json").write_text(json.dumps(spec))
    assert not harness.stale(arm, 0)
    spec["train"]["lr"] = spec["train"]["lr"] * 2
    (run / "spec.json").write_text(json.dumps(spec))
    assert harness.stale(arm, 0)
