"""The divergence guard: provoked divergence is rolled back, remedied, recorded, and stops after the limit."""

from __future__ import annotations

import json
import math

import pytest
import torch

from ebmctl.checkpoints import load_tensors, read_meta
from ebmctl.errors import DivergenceError
from ebmctl.methods.igebm import Igebm
from ebmctl.recipes import resolve_spec
from ebmctl.runs import MODEL_CKPT, STATE_CKPT, read_json
from ebmctl.services.runtime.guard import GuardState, diversity, problem
from ebmctl.services.train import resume, train
from ebmctl.specs import GuardSpec

TIMING = {"images_per_s", "elapsed_s"}


def _spec(steps: int, *extra: str):
    return resolve_spec("igebm-toy", ["train.batch_size=16", "sampler.steps=5", "train.log_every=1",
                                      "train.checkpoint_every=3", "train.sample_every=1000", "buffer.size=64", *extra],
                        {"train.steps": steps})


def _records(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _events(run):
    return [r for r in _records(run) if "event" in r]


# ------------------------------------------------------------------------------------------ formulas


def test_diversity_is_the_batch_spread_relative_to_the_data():
    neg = torch.tensor([[0.0, 0.0], [2.0, 4.0]])  # per-coordinate std (unbiased): sqrt(2), sqrt(8)
    data = torch.tensor([[0.0, 0.0], [1.0, 1.0]])  # sqrt(0.5) each
    expected = (math.sqrt(2) + math.sqrt(8)) / 2 / math.sqrt(0.5)
    assert diversity(neg, data) == pytest.approx(expected)
    assert diversity(torch.ones(5, 3), torch.rand(5, 3)) == 0.0
    assert math.isnan(diversity(torch.tensor([[float("nan")], [1.0]]), torch.tensor([[0.0], [1.0]])))
    assert diversity(torch.ones(1, 3), torch.rand(5, 3)) is None


def test_problem_names_what_went_wrong_and_the_threshold():
    guard = GuardSpec(max_energy=10.0, max_gap=3.0, min_diversity=0.1)
    healthy = {"loss": 0.1, "e_pos": -2.0, "e_neg": 0.5, "gap": -2.5, "diversity": 0.5}
    assert problem(healthy, guard) is None
    assert "loss=nan" in problem({**healthy, "loss": float("nan")}, guard)
    assert problem({**healthy, "diversity": float("nan")}, guard) == "non-finite negative samples"
    assert "guard.max_energy" in problem({**healthy, "e_neg": -11.0, "gap": 1.0}, guard)
    assert "guard.max_gap" in problem({**healthy, "gap": 3.5}, guard)
    assert "collapsed" in problem({**healthy, "diversity": 0.05}, guard)
    off = GuardSpec(max_energy=None, max_gap=None, min_diversity=0.0)
    assert problem({**healthy, "e_neg": 1e9, "gap": 1e9, "diversity": 0.0}, off) is None


def test_guard_state_compounds_the_remedy_and_round_trips():
    spec = GuardSpec(lr_factor=0.5, step_size_factor=0.1)
    state = GuardState().after_rollback(spec, {"event": "rollback"}).after_rollback(spec, {"event": "rollback"})
    assert (state.rollbacks, state.lr_scale, state.step_scale) == (2, 0.25, pytest.approx(0.01))
    assert GuardState.from_meta(json.loads(json.dumps(state.to_meta()))) == state


# ------------------------------------------------------------------------------------------ provoked


def test_an_absurd_learning_rate_is_rolled_back_then_stopped(tmp_path):
    spec = _spec(20, "train.lr=1e4", "guard.max_rollbacks=2")
    with pytest.raises(DivergenceError) as err:
        train(spec, runs_root=tmp_path, device="cpu")
    assert "after 2 rollback(s)" in err.value.message
    assert "guard.max_rollbacks=5" in err.value.hint
    run = next(tmp_path.iterdir())
    doc = read_json(run / "run.json")
    assert doc["status"] == "diverged" and doc["rollbacks"] == 2
    assert [e["lr_scale"] for e in doc["guard_events"]] == [0.5, 0.25]
    assert len(_events(run)) == 2
    meta = read_meta(run / STATE_CKPT)
    assert meta["guard"]["rollbacks"] == 2 and meta["guard"]["lr_scale"] == 0.25
    tensors, _ = load_tensors(run / MODEL_CKPT)  # the kept checkpoint is the last good one
    assert all(torch.isfinite(t).all() for t in tensors.values() if t.is_floating_point())


def test_a_lower_learning_rate_recovers_and_the_run_completes(tmp_path):
    result = train(_spec(12, "train.lr=1e4", "guard.lr_factor=1e-6"), runs_root=tmp_path, device="cpu")
    assert result.status == "completed" and result.rollbacks == 1
    events = _events(result.run_dir)
    assert len(events) == 1 and events[0]["to_step"] == 0 and events[0]["lr_scale"] == 1e-6
    steps = [r["step"] for r in _records(result.run_dir) if "event" not in r]
    assert steps == list(range(1, 13))  # the diverged steps were dropped and trained again
    assert "event" not in result.to_dict()["final"]


def test_energy_threshold_trips_the_guard(tmp_path):
    with pytest.raises(DivergenceError) as err:
        train(_spec(6, "guard.max_energy=1e-6", "guard.max_rollbacks=1"), runs_root=tmp_path, device="cpu")
    assert "guard.max_energy" in err.value.message
    run = next(tmp_path.iterdir())
    assert read_json(run / "run.json")["guard_events"][0]["reason"].startswith("|E")


def test_gap_threshold_trips_the_guard(tmp_path):
    with pytest.raises(DivergenceError) as err:
        train(_spec(6, "guard.max_gap=1e-9", "guard.max_rollbacks=0"), runs_root=tmp_path, device="cpu")
    assert "guard.max_gap" in err.value.message and "after 0 rollback(s)" in err.value.message


def test_collapse_of_the_negatives_trips_the_guard(tmp_path):
    with pytest.raises(DivergenceError) as err:
        train(_spec(6, "guard.min_diversity=100", "guard.max_rollbacks=1"), runs_root=tmp_path, device="cpu")
    assert "collapsed" in err.value.message


@pytest.fixture
def poisoned(monkeypatch):
    """IGEBM whose negatives turn NaN on the training steps listed in ``poisoned.at`` (counted across runs)."""
    state = {"calls": 0, "at": set()}
    original = Igebm.train_step

    def step(self, x, y=None):
        metrics = original(self, x, y)
        state["calls"] += 1
        if state["calls"] in state["at"]:
            self.last_negatives = torch.full_like(self.last_negatives, float("nan"))
        return metrics

    monkeypatch.setattr(Igebm, "train_step", step)
    return state


def test_non_finite_samples_roll_back_with_step_size_and_buffer_remedies(tmp_path, poisoned):
    poisoned["at"] = {5}
    result = train(_spec(9, "guard.step_size_factor=0.5"), runs_root=tmp_path, device="cpu")
    assert result.status == "completed" and result.rollbacks == 1
    (event,) = read_json(result.run_dir / "run.json")["guard_events"]
    assert event["reason"] == "non-finite negative samples"
    assert (event["detected_at"], event["to_step"]) == (5, 3)
    assert event["step_size"] == pytest.approx(0.5 * _spec(1).sampler.step_size)
    assert event["buffers_emptied"] == 1


def test_buffer_is_kept_when_the_spec_says_so(tmp_path, poisoned):
    poisoned["at"] = {2}
    result = train(_spec(4, "guard.reinit_buffer=false"), runs_root=tmp_path, device="cpu")
    assert read_json(result.run_dir / "run.json")["guard_events"][0]["buffers_emptied"] == 0


def test_a_resumed_run_keeps_the_remedy(tmp_path, poisoned):
    """Rolled back at step 5 (to 3, lr x0.5), stopped at 7 and resumed to 12 = trained to 12 in one go."""
    torch.use_deterministic_algorithms(True)
    try:
        poisoned["at"], poisoned["calls"] = {5}, 0
        full = train(_spec(12), runs_root=tmp_path / "a", device="cpu").run_dir
        poisoned["at"], poisoned["calls"] = {5}, 0
        part = train(_spec(7), runs_root=tmp_path / "b", device="cpu").run_dir
        poisoned["at"] = set()
        resume(part, overrides={"train": {"steps": 12}}, device="cpu")
    finally:
        torch.use_deterministic_algorithms(False)
    a, ma = load_tensors(full / STATE_CKPT)
    b, mb = load_tensors(part / STATE_CKPT)
    assert ma["guard"] == mb["guard"] and mb["guard"]["lr_scale"] == 0.5
    for key in a:
        assert torch.equal(a[key], b[key]), key
    strip = [{k: v for k, v in r.items() if k not in TIMING} for r in _records(full)]
    assert strip == [{k: v for k, v in r.items() if k not in TIMING} for r in _records(part)]


def test_a_diverged_run_resumes_with_more_rollbacks(tmp_path):
    with pytest.raises(DivergenceError):
        train(_spec(10, "train.lr=1e4", "guard.max_rollbacks=1", "guard.lr_factor=1e-3"), runs_root=tmp_path,
              device="cpu")
    run = next(tmp_path.iterdir())
    result = resume(run, overrides={"guard": {"max_rollbacks": 4}}, device="cpu")
    assert result.status == "completed"
    assert result.rollbacks >= 2  # the first rollback is remembered across the stop
    assert read_json(run / "run.json")["rollbacks"] == result.rollbacks


def test_guard_off_stops_at_the_first_non_finite_value(tmp_path):
    with pytest.raises(DivergenceError) as err:
        train(_spec(10, "train.lr=1e4", "guard.enabled=false"), runs_root=tmp_path, device="cpu")
    assert "non-finite" in err.value.message and "rollback" not in err.value.message
    run = next(tmp_path.iterdir())
    doc = read_json(run / "run.json")
    assert doc["status"] == "diverged" and "guard_events" not in doc


def test_cli_shows_rollbacks_and_ends_with_one_error_line(cli):
    out = cli("train", "--preset", "igebm-toy", "--steps", "10", "--set", "train.lr=1e4",
              "--set", "guard.max_rollbacks=1", "--set", "train.batch_size=16", "--set", "sampler.steps=5")
    assert out.code == 1
    assert "rollback 1/1 at step" in " ".join(out.err.split())
    errors = [line for line in out.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "diverged" in errors[0] and "(hint: " in errors[0]
    assert "Traceback" not in out.err
