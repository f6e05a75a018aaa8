"""Near-OOD by a held-out class: train on three shapes of shapes32, detect the fourth with `ebmctl ood`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ebmctl.cli.main import main_entry
from ebmctl.data import BatchStream, load_dataset, to_float

TINY = ["--steps", "4", "--set", "train.batch_size=16", "--set", "sampler.steps=3", "--set", "method.kl_chains=8",
        "--set", "train.checkpoint_every=4", "--set", "train.sample_every=4", "--set", "eval.judge_steps=40"]
TRAINED = ["circle", "square", "triangle"]
IN_LABEL = "shapes32 (circle, square, triangle)"


def _train(runs: Path, *extra: str) -> Path:
    before = set(runs.iterdir()) if runs.exists() else set()
    code = main_entry(["--runs-dir", str(runs), "--device", "cpu", "--quiet", "--json", "train", "--preset",
                       "quickstart", *TINY, *extra])
    assert code == 0
    (run,) = set(runs.iterdir()) - before
    return run


@pytest.fixture(scope="module")
def held_out(tmp_path_factory):
    """A run trained on circles, squares and triangles, with the batches its training drew."""
    runs = tmp_path_factory.mktemp("runs")
    seen: list[tuple[int, torch.Tensor]] = []
    original = BatchStream.__next__

    def spy(self: BatchStream):
        x, y = original(self)
        seen.append((len(self.dataset), y.clone()))
        return x, y

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(BatchStream, "__next__", spy)
        run = _train(runs, "--set", f"data.classes={json.dumps(TRAINED)}")
    return runs, run, seen


def test_training_never_sees_the_held_out_class(held_out):
    _, run, seen = held_out
    labels = load_dataset("shapes32").labels()
    assert len(seen) == 4
    assert {size for size, _ in seen} == {int((labels < 3).sum())}  # epochs run over the three classes only
    drawn = torch.cat([y for _, y in seen])
    assert len(drawn) == 64 and set(drawn.tolist()) <= {0, 1, 2}
    spec = json.loads((run / "spec.json").read_text())
    assert spec["data"]["classes"] == TRAINED


def _scores(run: Path, classes: list[str], n: int) -> tuple[torch.Tensor, np.ndarray]:
    """Labels and energy scores of the first ``n`` test images of ``classes`` in the order ood draws them."""
    from ebmctl.runs import resolve_run
    from ebmctl.services.runtime.loading import load_run

    ds = load_dataset("shapes32", split="test", classes=classes)
    idx = torch.randperm(len(ds), generator=torch.Generator().manual_seed(0))[:n]
    x, y = ds.get_batch(idx)
    method = load_run(resolve_run(str(run), run.parent), torch.device("cpu")).method
    return y, method.ood_scores(to_float(x, dequantize=False), ["energy"], ema=True)["energy"].double().numpy()


def test_ood_scores_exactly_the_held_out_class_against_the_trained_ones(held_out):
    from ebmctl.evaluation.ood import ood_metrics
    from ebmctl.runs import resolve_run
    from ebmctl.services.ood import OodOptions, ood

    runs, run, _ = held_out
    result = ood(resolve_run(str(run), runs), OodOptions("shapes32", ["shapes32@diamond", "textures"], ["energy"],
                                                         n=24), device="cpu")
    assert [(r["in"], r["out"]) for r in result.rows] == [(IN_LABEL, "shapes32 (diamond)"), (IN_LABEL, "textures")]
    assert result.sets[0] == {"label": IN_LABEL, "dataset": "shapes32", "classes": TRAINED, "split": "test", "n": 24}
    assert result.sets[1]["classes"] == ["diamond"] and result.sets[2]["classes"] is None
    saved = np.load(result.files["scores"])
    in_labels, in_scores = _scores(run, TRAINED, 24)
    out_labels, out_scores = _scores(run, ["diamond"], 24)
    assert set(in_labels.tolist()) <= {0, 1, 2} and set(out_labels.tolist()) == {3}
    np.testing.assert_allclose(saved["shapes32@circle+square+triangle__energy"], in_scores, rtol=1e-6)
    np.testing.assert_allclose(saved["shapes32@diamond__energy"], out_scores, rtol=1e-6)
    expected = ood_metrics(in_scores, out_scores)
    assert result.rows[0]["auroc"] == pytest.approx(expected["auroc"]) and result.rows[0]["n_out"] == 24


def test_the_cli_names_the_sets_in_its_table_and_json(held_out, cli):
    runs, run, _ = held_out
    res = cli("--runs-dir", str(runs), "--json", "ood", "--run", str(run), "--in", "shapes32", "--out",
              "shapes32@3", "--n", "8", runs_dir=False)
    assert res.code == 0, res.err
    doc = json.loads(res.out)
    assert doc["results"][0]["in"] == IN_LABEL and doc["results"][0]["out"] == "shapes32 (diamond)"
    assert doc["counts"] == {IN_LABEL: 8, "shapes32 (diamond)": 8}
    table = cli("--runs-dir", str(runs), "ood", "--run", str(run), "--in", "shapes32", "--out", "shapes32@diamond",
                "--n", "8", runs_dir=False)
    assert table.code == 0 and "(diamond)" in table.out and "triangle" in table.out


@pytest.mark.parametrize(("out", "expected"), [
    ("shapes32@circle", ["'circle'", "trained on", "--out shapes32@diamond"]),
    ("shapes32@diamond+square", ["'square'", "trained on"]),
    ("shapes32", ["holds the classes", "shapes32@diamond"]),
    ("shapes32@hexagon", ["no class 'hexagon'", "circle, square, triangle, diamond"]),
    ("shapes32:diamond", ["'@'", "--out shapes32@diamond"]),
    ("textures@grass+grass", ["named twice"]),
    ("constant@0", ["no class labels"]),
    ("shapes32@", ["DATASET@CLASS"]),
])
def test_wrong_class_sets_are_one_line_errors_before_any_work(held_out, cli, out, expected):
    runs, run, _ = held_out
    before = sorted((run / "ood").glob("*")) if (run / "ood").exists() else []
    res = cli("--runs-dir", str(runs), "ood", "--run", str(run), "--in", "shapes32", "--out", out, runs_dir=False)
    assert res.code == 2, res.err
    for text in expected:
        assert text in res.err
    assert (sorted((run / "ood").glob("*")) if (run / "ood").exists() else []) == before


def test_the_in_set_may_not_share_classes_with_an_out_set(held_out, cli):
    runs, run, _ = held_out
    res = cli("--runs-dir", str(runs), "ood", "--run", str(run), "--in", "textures@grass", "--out",
              "textures@grass+brick", runs_dir=False)
    assert res.code == 2 and "shares images with --in" in res.err


def test_sampling_a_held_out_class_is_refused(held_out, cli):
    runs, run, _ = held_out
    res = cli("--runs-dir", str(runs), "sample", "--run", str(run), "--class", "diamond", runs_dir=False)
    assert res.code == 2 and "trained without class 'diamond'" in res.err and "circle, square, triangle" in res.err


def test_fid_compares_with_the_trained_classes_and_the_judge_knows_all(held_out, cli):
    runs, run, _ = held_out
    res = cli("--runs-dir", str(runs), "--json", "sample", "--run", str(run), "--steps", "2", "--n", "16", "--fid",
              runs_dir=False)
    assert res.code == 0, res.err
    metrics = json.loads(res.out)["metrics"]
    assert metrics["fid_reference"].startswith(f"{IN_LABEL} test, 16 images")
    assert set(metrics["judge_class_share"]) == {*TRAINED, "diamond"}


def test_probe_reads_the_trained_classes(held_out, cli):
    runs, run, _ = held_out
    res = cli("--runs-dir", str(runs), "--json", "probe", "--run", str(run), "--shots", "1", "--seeds", "1",
              "--knn", "0", "--train-n", "40", "--test-n", "30", runs_dir=False)
    assert res.code == 0, res.err
    doc = json.loads(res.out)
    assert all(r["classes"] == TRAINED for r in doc["results"])
    assert doc["counts"]["shapes32"] == {"train": 40, "test": 30}


def test_train_refuses_unknown_classes_and_unlabelled_data(cli):
    res = cli("train", "--preset", "quickstart", *TINY, "--set", 'data.classes=["hexagon"]')
    assert res.code == 2 and "no class 'hexagon'" in res.err and "circle, square, triangle, diamond" in res.err
    res = cli("train", "--preset", "quickstart", *TINY, "--set", "data.name=constant", "--set", "data.classes=[0]")
    assert res.code == 2 and "constant has no class labels" in res.err


def test_a_run_trained_on_every_class_has_none_held_out(tmp_path, cli):
    runs = tmp_path / "all"
    run = _train(runs)
    res = cli("--runs-dir", str(runs), "ood", "--run", str(run), "--in", "shapes32", "--out", "shapes32@diamond",
              runs_dir=False)
    assert res.code == 2 and "every class of shapes32" in res.err
    assert """data.classes=["circle", "square", "triangle"]""" in res.err
