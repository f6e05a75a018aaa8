"""End to end through the real CLI: train quickstart for a few steps, then sample and ood from it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ebmctl.checkpoints import load_tensors, read_meta

TINY = ["--set", "train.batch_size=16", "--set", "sampler.steps=3", "--set", "method.kl_chains=8",
        "--set", "train.log_every=1", "--set", "train.sample_every=2", "--set", "train.checkpoint_every=2",
        "--set", "eval.judge_steps=40"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from ebmctl.cli.main import main_entry

    runs = tmp_path_factory.mktemp("runs")
    code = main_entry(["--runs-dir", str(runs), "--device", "cpu", "--quiet", "--json", "train", "--preset",
                       "quickstart", "--steps", "4", *TINY])
    assert code == 0
    (run,) = [p for p in runs.iterdir() if p.is_dir()]
    return runs, run


def test_run_directory_layout(trained):
    _, run = trained
    for name in ("spec.json", "run.json", "metrics.jsonl", "checkpoints/model.safetensors",
                 "checkpoints/state.safetensors", "plots/training.png", "samples/negatives-final.png",
                 "samples/negatives-step-0000002.png"):
        assert (run / name).is_file(), name
    doc = json.loads((run / "run.json").read_text())
    assert doc["status"] == "completed" and doc["step"] == 4 and doc["versions"]["torch"] == torch.__version__
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    assert {"loss", "e_pos", "e_neg", "gap", "images_per_s"} <= set(records[-1])
    meta = read_meta(run / "checkpoints" / "model.safetensors")
    assert meta["spec"]["preset"] == "quickstart" and meta["step"] == 4
    tensors, _ = load_tensors(run / "checkpoints" / "model.safetensors")
    assert any(k.startswith("model.") for k in tensors) and any(k.startswith("ema.") for k in tensors)
    assert not list(run.rglob("*.tmp")), "no temporary files may be left"


def test_sample_writes_grid_samples_and_chain(trained, cli):
    runs, run = trained
    result = cli("--runs-dir", str(runs), "--json", "sample", "--steps", "6", "--n", "10", "--aug-every", "3",
                 "--batch-size", "4", runs_dir=False)
    assert result.code == 0, result.err
    doc = json.loads(result.out)
    out = Path(doc["out"])
    assert out.parent == run / "sample"
    tensors, meta = load_tensors(out / "samples.safetensors")
    assert tensors["samples"].shape == (10, 3, 32, 32)
    assert tensors["samples"].min() >= 0.0 and tensors["samples"].max() <= 1.0
    assert (out / "grid.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "chain.png").is_file() and (out / "result.json").is_file()
    assert meta["settings"]["ema"] is True


def test_sample_is_reproducible_and_no_ema_differs(trained, cli):
    runs, run = trained
    outs = []
    for i, extra in enumerate([[], [], ["--no-ema"]]):
        out = f"s{i}"  # --out is taken relative to the run directory
        res = cli("--runs-dir", str(runs), "sample", "--steps", "4", "--n", "4", "--seed", "3", "--out", out, *extra,
                  runs_dir=False)
        assert res.code == 0, res.err
        outs.append(load_tensors(run / out / "samples.safetensors")[0]["samples"])
    assert torch.equal(outs[0], outs[1])
    assert not torch.equal(outs[0], outs[2])


def test_sample_from_buffer(trained, cli):
    runs, _ = trained
    res = cli("--runs-dir", str(runs), "sample", "--init", "buffer", "--steps", "2", "--n", "4", "--out",
              "b", runs_dir=False)
    assert res.code == 0, res.err


def test_ood_prints_the_table_and_saves_pictures(trained, cli):
    runs, run = trained
    assert (run / "run.json").is_file()
    result = cli("--runs-dir", str(runs), "ood", "--in", "shapes32", "--out", "textures,photos", "--score",
                 "energy,grad_norm", "--n", "48", runs_dir=False)
    assert result.code == 0, result.err
    assert "AUROC" in result.out and "textures" in result.out and "higher score = more in-distribution" in result.out
    as_json = cli("--runs-dir", str(runs), "--json", "ood", "--in", "shapes32", "--out", "textures", "--n", "48",
                  runs_dir=False)
    doc = json.loads(as_json.out)
    (row,) = doc["results"]
    assert 0.0 <= row["auroc"] <= 1.0 and set(row) >= {"aupr_in", "aupr_out", "fpr95"}
    for path in doc["files"].values():
        assert Path(path).is_file()


def test_ood_scores_do_not_depend_on_the_batch_size(trained):
    from ebmctl.runs import resolve_run
    from ebmctl.services.ood import OodOptions, ood

    runs, _ = trained
    ref = resolve_run(None, runs)
    a = ood(ref, OodOptions("shapes32", ["textures"], ["energy", "grad_norm"], n=40, batch_size=40), device="cpu")
    b = ood(ref, OodOptions("shapes32", ["textures"], ["energy", "grad_norm"], n=40, batch_size=7), device="cpu")
    for ra, rb in zip(a.rows, b.rows, strict=True):
        assert ra["auroc"] == pytest.approx(rb["auroc"], abs=1e-12)
    import numpy as np

    sa, sb = np.load(a.files["scores"]), np.load(b.files["scores"])
    for key in sa.files:
        np.testing.assert_allclose(sa[key], sb[key], rtol=1e-5, atol=1e-6)


def test_sample_fid_uses_the_cached_judge(trained, cli):
    runs, _ = trained
    first = cli("--runs-dir", str(runs), "--json", "sample", "--steps", "2", "--n", "24", "--fid", "--out",
                "f1", runs_dir=False)
    assert first.code == 0, first.err
    metrics = json.loads(first.out)["metrics"]
    assert metrics["extractor"].startswith("judge") and "shapes32" in metrics["extractor"]
    for key in ("fid", "kid_mean", "precision", "recall", "judge_confident"):
        assert metrics[key] is not None
    assert metrics["fid"] > 0 and 0 <= metrics["judge_confident"] <= 1
    assert "trained the shapes32 judge" in first.err
    second = cli("--runs-dir", str(runs), "--json", "sample", "--steps", "2", "--n", "24", "--fid", "--out",
                 "f2", runs_dir=False)
    assert second.code == 0 and "trained the shapes32 judge" not in second.err


def test_sample_in_bf16_and_refuse_unknown_precision(trained, cli):
    runs, _ = trained
    result = cli("--runs-dir", str(runs), "--json", "sample", "--steps", "3", "--n", "4", "--precision", "bf16",
                 runs_dir=False)
    assert result.code == 0, result.err
    out = Path(json.loads(result.out)["out"])
    tensors, meta = load_tensors(out / "samples.safetensors")
    assert meta["settings"]["precision"] == "bf16" and tensors["samples"].dtype == torch.float32
    bad = cli("--runs-dir", str(runs), "sample", "--steps", "3", "--n", "4", "--precision", "fp16", runs_dir=False)
    assert bad.code == 2 and "fp32, bf16" in bad.err and "Traceback" not in bad.err


def test_sample_reports_steps_within_a_batch_with_the_mean_energy(trained, cli):
    runs, _ = trained
    result = cli("--runs-dir", str(runs), "--progress-every", "0.01", "sample", "--steps", "40", "--n", "4",
                 runs_dir=False)
    assert result.code == 0, result.err
    lines = [line for line in result.err.splitlines() if line.startswith("sample 4 in 1 batch(es) x 40 steps: ")]
    assert lines[0].split(": ", 1)[1].startswith("1/40 steps"), lines
    assert lines[-1].split(": ", 1)[1].startswith("40/40 steps (100%)") and "mean E " in lines[-1]
    assert "eta 0:00:00" in lines[-1]
