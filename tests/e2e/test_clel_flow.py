"""CLEL end to end through the real CLI: train a tiny clel-shapes, then conditional sampling, compose and ood."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from ebmctl.checkpoints import load_tensors, read_meta

TINY = ["--set", "net.channels=[8,8]", "--set", "net.blocks=[1,1]", "--set", "net.hidden=32",
        "--set", "net.latent_dim=16", "--set", "method.encoder.width=4", "--set", "method.encoder.hidden=32",
        "--set", "method.encoder.out_dim=16", "--set", "train.batch_size=8", "--set", "buffer.size=64",
        "--set", "sampler.steps=2", "--set", "train.steps=3", "--set", "method.latent_examples=16",
        "--set", "eval.judge_steps=30", "--set", "eval.attribute_judge_steps=60", "--set", "method.warmup=1"]
ICD_TINY = ["--set", "train.steps=2", "--set", "net.width=4", "--set", "train.batch_size=8", "--set", "sampler.steps=2",
            "--set", "buffer.size=64", "--set", "method.kl_chains=4"]

pytestmark = pytest.mark.usefixtures("shared_judges")  # the attribute judge trains once a session


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A clel-shapes run and an icd (quickstart) run, each alone under its own runs directory."""
    from ebmctl.cli.main import main_entry

    out = {}
    for name, args in (("clel", ["--preset", "clel-shapes", *TINY]), ("icd", ["--preset", "quickstart", *ICD_TINY])):
        root = tmp_path_factory.mktemp(f"runs-{name}")
        code = main_entry(["--runs-dir", str(root), "--device", "cpu", "--quiet", "train", *args])
        assert code == 0
        (run,) = [p for p in root.iterdir() if p.is_dir()]
        out[name] = run
    return out


def _ok(result):
    assert result.code == 0, result.err
    return json.loads(result.out)


def _fails(result, code: int, *words: str) -> str:
    assert result.code == code, (result.code, result.out, result.err)
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.err
    for word in words:
        assert word in lines[0], lines[0]
    assert "Traceback" not in result.err
    return lines[0]


def test_the_run_keeps_both_nets_and_a_slots_buffer(runs):
    run = runs["clel"]
    doc = json.loads((run / "run.json").read_text())
    assert doc["status"] == "completed" and doc["step"] == 3 and doc["preset"] == "clel-shapes"
    tensors, meta = load_tensors(run / "checkpoints" / "model.safetensors")
    prefixes = {k.split(".")[0] for k in tensors}
    assert prefixes == {"model", "ema", "encoder"}
    assert any(k.startswith("encoder.model.") for k in tensors) and any(k.startswith("encoder.ema.") for k in tensors)
    assert meta["spec"]["method"]["name"] == "clel" and meta["spec"]["buffer"]["policy"] == "slots"
    state, state_meta = load_tensors(run / "checkpoints" / "state.safetensors")
    assert state["buffer.storage"].shape == (64, 3, 32, 32)
    # three steps of eight chains: 24 visits
    assert int(state["buffer.visits"].sum()) == 24 and state_meta["method"]["encoder"]["updates"] == 3
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert {"loss_ebm", "loss_le", "s_pos"} <= set(records[-1])


def test_unconditional_and_class_sampling(runs, cli):
    run = str(runs["clel"])
    doc = _ok(cli("--json", "sample", "--run", run, "--steps", "4", "--n", "4"))
    samples = load_tensors(Path(doc["files"]["samples"]))[0]["samples"]
    assert samples.shape == (4, 3, 32, 32) and torch.isfinite(samples).all()
    doc = _ok(cli("--json", "sample", "--run", run, "--steps", "4", "--n", "4", "--class", "circle"))
    assert 0.0 <= doc["metrics"]["class_accuracy"] <= 1.0 and doc["metrics"]["target_class"] == "circle"
    assert doc["settings"]["condition"].startswith("class circle (latent of 16 examples")
    saved = json.loads((Path(doc["out"]) / "result.json").read_text())
    assert saved["metrics"]["class_accuracy"] == doc["metrics"]["class_accuracy"]


def test_sampling_like_a_dataset_image_and_an_image_file(runs, cli, tmp_path):
    run = str(runs["clel"])
    doc = _ok(cli("--json", "sample", "--run", run, "--steps", "4", "--n", "4", "--like", "shapes32:3"))
    assert Path(doc["files"]["like"]).is_file() and doc["settings"]["condition"] == "like shapes32:3"
    picture = Image.new("RGB", (48, 40), (20, 20, 20))
    ImageDraw.Draw(picture).ellipse((10, 6, 38, 34), fill=(230, 30, 30))
    path = tmp_path / "red-circle.png"
    picture.save(path)
    doc = _ok(cli("--json", "sample", "--run", run, "--steps", "4", "--n", "4", "--like", str(path)))
    samples = load_tensors(Path(doc["files"]["samples"]))[0]["samples"]
    assert samples.shape == (4, 3, 32, 32) and Path(doc["files"]["like"]).is_file()


def test_compose_attributes_reports_composed_and_unconditional_fractions(runs, cli):
    run = str(runs["clel"])
    doc = _ok(cli("--json", "compose", "--run", run, "--attrs", "circle,red", "--n", "8", "--steps", "3"))
    assert doc["route"] == "latents" and doc["concepts"] == ["circle", "red"] and doc["n"] == 8
    rows = {r["attribute"]: r for r in doc["results"]}
    assert list(rows) == ["circle", "red", "all"]
    for row in rows.values():
        assert 0.0 <= row["composed"] <= 1.0 and 0.0 <= row["unconditional"] <= 1.0
    assert rows["all"]["composed"] <= min(rows["circle"]["composed"], rows["red"]["composed"])
    assert rows["circle"]["present"] is True and rows["all"]["present"] is None
    samples = load_tensors(Path(doc["files"]["samples"]))[0]["samples"]
    assert samples.shape == (8, 3, 32, 32) and Path(doc["files"]["baseline"]).is_file()
    spec = json.loads((runs["clel"] / "spec.json").read_text())
    assert doc["settings"]["beta"] == spec["method"]["guidance"]
    assert doc["settings"]["examples_per_attribute"] == 16

    negated = _ok(cli("--json", "compose", "--run", run, "--attrs", "circle,-large", "--n", "8", "--steps", "3"))
    assert negated["concepts"] == ["circle", "not large"]
    rows = {r["attribute"]: r for r in negated["results"]}
    assert rows["large"]["present"] is False and 0.0 <= rows["large"]["composed"] <= 1.0


def test_the_attribute_judge_steps_come_from_the_spec(cli, tmp_path, monkeypatch):
    cache = tmp_path / "own-cache"  # a judge cached by another test would be reused whatever its steps
    monkeypatch.setenv("EBMCTL_CACHE", str(cache))
    trained = cli("--quiet", "train", "--preset", "clel-shapes", *TINY, "--set", "eval.attribute_judge_steps=30")
    assert trained.code == 0, trained.err
    _ok(cli("--json", "compose", "--attrs", "circle", "--n", "2", "--steps", "1", "--no-baseline"))
    (path,) = (cache / "judges").glob("attributes-*.safetensors")
    assert read_meta(path)["steps"] == 30


def test_ood_reports_energy_and_joint_by_default_and_beta_weighs_the_latent_term(runs, cli):
    run = str(runs["clel"])
    doc = _ok(cli("--json", "ood", "--run", run, "--in", "shapes32", "--out", "textures", "--n", "32"))
    assert [r["score"] for r in doc["results"]] == ["energy", "joint"]
    for row in doc["results"]:
        assert 0.0 <= row["auroc"] <= 1.0 and row["n_in"] == row["n_out"] == 32
    default = np.load(doc["files"]["scores"])
    half = _ok(cli("--json", "ood", "--run", run, "--in", "shapes32", "--out", "textures", "--n", "32", "--score",
                   "joint", "--beta", "0.5"))
    assert [r["score"] for r in half["results"]] == ["joint"]
    weighted = np.load(half["files"]["scores"])
    assert sorted(weighted.files) == ["shapes32__joint", "textures__joint"]
    # joint = energy score + beta cos(.): the latent terms at beta 0.5 and at the run's ood_beta are in that ratio
    ood_beta = json.loads((runs["clel"] / "spec.json").read_text())["method"]["ood_beta"]
    for name in ("shapes32", "textures"):
        term_default = default[f"{name}__joint"] - default[f"{name}__energy"]
        term_half = weighted[f"{name}__joint"] - default[f"{name}__energy"]
        np.testing.assert_allclose(term_half * ood_beta, 0.5 * term_default, rtol=1e-3, atol=1e-6)
        assert np.abs(term_default).max() <= ood_beta + 1e-6 and np.abs(term_default).max() > 0


def test_usage_errors(runs, cli, tmp_path):
    run = str(runs["clel"])
    line = _fails(cli("--quiet", "compose", "--run", run, "--attrs", "circel,red", "--n", "2", "--steps", "1"), 2,
                  "unknown attribute 'circel'", "did you mean 'circle'")
    assert "valid attributes: circle, square" in line
    _fails(cli("--quiet", "sample", "--run", run, "--n", "2", "--steps", "1", "--like", "garbage"), 2,
           "neither an image file nor DATASET:INDEX")
    _fails(cli("--quiet", "sample", "--run", run, "--n", "2", "--steps", "1", "--like", "shapes32:99999"), 2,
           "out of range")
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("not a picture")
    _fails(cli("--quiet", "sample", "--run", run, "--n", "2", "--steps", "1", "--like", str(not_an_image)), 2,
           "cannot read")
    _fails(cli("--quiet", "sample", "--run", run, "--n", "2", "--steps", "1", "--class", "hexagon"), 2,
           "unknown class 'hexagon'", "circle, square, triangle, diamond")
    _fails(cli("--quiet", "sample", "--run", run, "--n", "2", "--steps", "1", "--class", "circle", "--like",
               "shapes32:3"), 2, "cannot be combined")
    _fails(cli("--quiet", "compose", "--run", run, "--n", "2"), 2, "either --attrs", "--runs")
    _fails(cli("--quiet", "compose", "--run", run, "--attrs", "circle", "--runs", run, "--n", "2"), 2,
           "--attrs and --runs cannot be combined")
    _fails(cli("--quiet", "compose", "--run", run, "--attrs", "circle,red", "--op", "or", "--n", "2"), 2, "--op or")


def test_the_like_hint_is_printed_as_written(runs, cli):
    result = cli("--quiet", "sample", "--run", str(runs["clel"]), "--n", "2", "--steps", "1", "--like", "garbage")
    assert result.code == 2 and "cifar10:train:5" in result.err


def test_latent_features_on_an_icd_run_are_capability_errors(runs, cli):
    icd = str(runs["icd"])
    _fails(cli("--quiet", "compose", "--run", icd, "--attrs", "circle", "--n", "2", "--steps", "1"), 1,
           "has no attribute latents")
    _fails(cli("--quiet", "ood", "--run", icd, "--in", "shapes32", "--out", "textures", "--n", "8", "--score",
               "joint"), 2, "joint score")
    _fails(cli("--quiet", "ood", "--run", icd, "--in", "shapes32", "--out", "textures", "--n", "8", "--beta", "0.5"),
           2, "joint score")
    _fails(cli("--quiet", "sample", "--run", icd, "--n", "2", "--steps", "1", "--like", "shapes32:3"), 1,
           "has no latent variables")
    _fails(cli("--quiet", "sample", "--run", icd, "--n", "2", "--steps", "1", "--class", "circle"), 1,
           "cannot sample a class")
    _fails(cli("--quiet", "sample", "--run", icd, "--n", "2", "--steps", "1", "--beta", "0.5"), 2, "--beta")
    doc = _ok(cli("--json", "ood", "--run", icd, "--in", "shapes32", "--out", "textures", "--n", "8"))
    assert [r["score"] for r in doc["results"]] == ["energy"]


def test_the_first_compose_says_what_it_trains_how_long_and_how_to_skip_it(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("EBMCTL_CACHE", str(tmp_path / "own-cache"))
    trained = cli("--quiet", "train", "--preset", "clel-shapes", *TINY, "--set", "eval.attribute_judge_steps=30")
    assert trained.code == 0, trained.err
    first = cli("--progress-every", "0.01", "compose", "--attrs", "circle", "--n", "2", "--steps", "1",
                "--no-baseline")
    assert first.code == 0, first.err
    err = " ".join(first.err.split())
    assert "first the attribute judge of shapes32 is trained, once (then cached in " in err
    assert "a small CNN, 30 steps on" in err and "Add --no-judge to skip judging." in err
    assert "the samples are already in " in err and "grid.png" in err
    assert re.search(r"training the judge takes about \d+ (s|min) on this device \(cpu, ", err), err
    judge_lines = [line for line in first.err.splitlines() if line.startswith("attribute judge for shapes32: ")]
    assert judge_lines and "30/30 steps (100%)" in judge_lines[-1] and "loss " in judge_lines[-1]
    assert "abstained on " in " ".join(first.out.split())

    again = cli("compose", "--attrs", "circle", "--n", "2", "--steps", "1", "--no-baseline")
    assert again.code == 0 and "first the attribute judge" not in again.err

    skipped = cli("compose", "--attrs", "circle", "--n", "2", "--steps", "1", "--no-baseline", "--no-judge")
    assert skipped.code == 0, skipped.err
    out = " ".join(skipped.out.split())
    assert "judge │ skipped (--no-judge)" in out and "grid.png" in out and "attribute │ wanted" not in out
    doc = _ok(cli("--json", "compose", "--attrs", "circle", "--n", "2", "--steps", "1", "--no-judge"))
    assert doc["judge"] == "skipped (--no-judge)" and doc["results"] == []
