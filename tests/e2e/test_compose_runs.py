"""`compose --runs` through the real CLI: tiny ICD runs trained on one shapes32 attribute or on the classes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ebmctl.checkpoints import load_tensors

# method.kl_chains equals the batch: conditional ICD with fewer differentiable chains than the batch fails
# (see test_conditional_icd_with_fewer_kl_chains_than_the_batch_trains).
TINY = ["--set", "train.steps=3", "--set", "net.width=4", "--set", "train.batch_size=8", "--set", "sampler.steps=2",
        "--set", "buffer.size=64", "--set", "method.kl_chains=8", "--set", "eval.judge_steps=30"]
STEP_SIZE = 100.0  # quickstart's sampler.step_size (its sample.step_size is unset)

pytestmark = pytest.mark.usefixtures("shared_judges")  # the attribute judge trains once a session


def _train(root: Path, *extra: str) -> Path:
    from ebmctl.cli.main import main_entry

    before = set(root.iterdir())
    code = main_entry(["--runs-dir", str(root), "--device", "cpu", "--quiet", "train", "--preset", "quickstart",
                       *TINY, *extra])
    assert code == 0
    (run,) = set(root.iterdir()) - before
    return run


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return {
        "circle": _train(root, "--set", "method.condition=circle"),
        "red": _train(root, "--set", "method.condition=red"),
        "class": _train(root, "--set", "method.condition=class"),
        "plain": _train(root),
    }


def _compose(cli, *args: str):
    return cli("--json", "--quiet", "compose", "--n", "8", "--steps", "3", *args)


def _ok(result) -> dict:
    assert result.code == 0, result.err
    return json.loads(result.out)


def _fails(result, code: int, *words: str) -> str:
    assert result.code == code, (result.code, result.err)
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.err, result.err
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def test_conditional_runs_record_their_condition(runs):
    for name, condition, labels in (("circle", "circle", 2), ("red", "red", 2), ("class", "class", 4)):
        tensors, meta = load_tensors(runs[name] / "checkpoints" / "model.safetensors")
        assert meta["spec"]["method"]["condition"] == condition
        # the small conv net keeps a per-label gain (and bias) after every conv
        gains = [v for k, v in tensors.items() if k.startswith("model.") and k.endswith(".gain")]
        assert gains and all(g.shape[0] == labels for g in gains), sorted(tensors)
    tensors, meta = load_tensors(runs["plain"] / "checkpoints" / "model.safetensors")
    assert meta["spec"]["method"]["condition"] is None and not any(k.endswith(".gain") for k in tensors)


def test_a_conjunction_of_two_attribute_runs(runs, cli):
    a, b = str(runs["circle"]), str(runs["red"])
    doc = _ok(_compose(cli, "--runs", f"{a},{b}"))
    assert doc["route"] == "runs" and doc["concepts"] == ["circle", "red"] and doc["n"] == 8
    assert doc["settings"]["models"] == 2 and doc["settings"]["op"] == "and"
    assert doc["settings"]["step_size"] == STEP_SIZE / 2
    rows = {r["attribute"]: r for r in doc["results"]}
    assert list(rows) == ["circle", "red", "all"]
    for row in rows.values():
        assert 0.0 <= row["composed"] <= 1.0 and "unconditional" not in row
    samples = load_tensors(Path(doc["files"]["samples"]))[0]["samples"]
    assert samples.shape == (8, 3, 32, 32)
    assert Path(doc["out"]).parent == runs["circle"] / "compose"


def test_negation_and_disjunction(runs, cli):
    a, b = str(runs["circle"]), str(runs["red"])
    negated = _ok(_compose(cli, "--runs", f"{a},-{b}", "--no-judge"))
    assert negated["concepts"] == ["circle", "not red"] and negated["results"] == []
    either = _ok(_compose(cli, "--runs", f"{a},{b}", "--op", "or", "--no-judge"))
    assert either["concepts"] == ["circle", "red"] and either["settings"]["op"] == "or"
    _fails(_compose(cli, "--runs", f"{a},-{b}", "--op", "or"), 2, "disjunction")
    _fails(_compose(cli, "--runs", f"-{a}"), 2, "at least one positive")


def test_class_conditional_runs_need_a_label(runs, cli):
    c = str(runs["class"])
    doc = _ok(_compose(cli, "--runs", f"{c}@square", "--no-judge"))
    assert doc["concepts"] == ["square"] and doc["settings"]["models"] == 1
    assert doc["settings"]["step_size"] == STEP_SIZE
    mixed = _ok(_compose(cli, "--runs", f"{c}@triangle,{runs['red']}", "--no-judge"))
    assert mixed["concepts"] == ["triangle", "red"]
    line = _fails(_compose(cli, "--runs", c), 2, "class-conditional", "say which class")
    assert f"{c}@circle" in line
    _fails(_compose(cli, "--runs", f"{c}@hexagon"), 2, "unknown class 'hexagon'")
    _fails(_compose(cli, "--runs", f"{runs['circle']}@2"), 2, "labels are 1 (has it) and 0 (lacks it)")


def test_an_unconditional_run_cannot_be_composed(runs, cli):
    _fails(_compose(cli, "--runs", f"{runs['circle']},{runs['plain']}"), 1, "is unconditional",
           "method.condition")
    _fails(_compose(cli, "--run", str(runs["circle"]), "--attrs", "circle"), 1, "has no attribute latents")


def test_class_sampling_from_a_class_conditional_run(runs, cli):
    doc = _ok(cli("--json", "--quiet", "sample", "--run", str(runs["class"]), "--steps", "4", "--n", "4", "--class",
                  "circle"))
    assert doc["settings"]["condition"] == "class circle (conditional net)"
    assert 0.0 <= doc["metrics"]["class_accuracy"] <= 1.0 and doc["metrics"]["target_class"] == "circle"
    _fails(cli("--quiet", "sample", "--run", str(runs["circle"]), "--steps", "1", "--n", "2", "--class", "circle"), 1,
           "cannot sample a class")


def test_an_unknown_condition_fails_before_the_run_exists(cli):
    result = cli("--quiet", "train", "--preset", "quickstart", *TINY, "--set", "method.condition=circel")
    line = _fails(result, 2, "no attribute 'circel'")
    assert "circle, square, triangle, diamond, red" in line
    assert not cli.runs.exists() or not any(cli.runs.iterdir())


def test_conditional_icd_with_fewer_kl_chains_than_the_batch_trains(cli):
    result = cli("--quiet", "train", "--preset", "quickstart", *TINY, "--set", "method.kl_chains=4",
                 "--set", "train.steps=1", "--set", "method.condition=circle")
    assert result.code == 0, result.err
