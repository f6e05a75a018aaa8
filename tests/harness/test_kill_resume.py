"""A run killed with SIGKILL at any moment resumes with ``ebmctl train --resume`` and ends, on CPU, with the same
weights, buffer, optimiser and RNG state and metrics as the uninterrupted run with the same seed; no checkpoint
is ever half-written or unreadable.

For every embedded preset (tiny overrides) the harness trains once without interruption, then trains the same
command again and SIGKILLs it at random moments: once in the first run and again in resumes, and finally
resumes it to the end and compares everything with the uninterrupted run. The kill delays come from a
``random.Random`` seeded with the preset's name, spread over the measured training time, so that kills land
between steps, mid-step and while checkpoints are written; each assertion message lists the delays and where
every kill landed. After every kill, every checkpoint under the run must load. Aimed kills cover the moments a
random delay rarely hits: as the run directory is made, during the first checkpoint write (no state file yet),
at the first logged step, and between the state and the weights of the last checkpoint.

The default tests fork every process from a server that has imported ebmctl once (:mod:`kill_harness`: the
same CLI entry point in a fresh process, without paying the start-up of torch each time); the ``slow``
variants run ``python -m ebmctl`` itself, kill more often over longer runs, and first check that two
uninterrupted runs agree bit for bit."""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from kill_harness import ForkLauncher, Launcher, Outcome, SpawnLauncher, run_dirs, temp_files

from ebmctl.checkpoints import load_tensors

TIMING = {"images_per_s", "elapsed_s"}
CHECKPOINTS = ("model", "state", "generator")

ICD = ["train.batch_size=8", "sampler.steps=2", "buffer.size=20", "method.kl_chains=4", "method.entropy_min_buffer=10",
       "method.entropy_refs=5"]
TOY = ["net.hidden=16", "train.batch_size=16", "sampler.steps=2", "buffer.size=40"]
CEBM = ["net.channels=[8,8,8,8]", "net.hidden=16", "net.latent_dim=8", "sampler.steps=2", "train.batch_size=8",
        "buffer.size=32"]
RESNET = ["net.width=4", "net.hidden=16", "net.out_dim=16", "train.batch_size=8"]
HAT = ["net.ndf=16", "train.batch_size=4", "sampler.steps=2", "sample.steps=2"]
SNGAN = ["net.ngf=16", "net.ndf=16", "net.nz=8", "train.batch_size=4", "method.n_dis=1"]
AE = ["net.nef=8", "net.ngf=8", "train.batch_size=4"]

# Every preset that trains without a download, with overrides that make it small.
TINY: dict[str, list[str]] = {
    "quickstart": ["net.width=4", *ICD],
    "icd-shapes": ["net.width=4", *ICD],
    "icd-toy": [*TOY, "method.kl_chains=4", "method.entropy_min_buffer=10", "method.entropy_refs=5"],
    "igebm-toy": TOY,
    "clel-shapes": ["net.channels=[8,8]", "net.blocks=[1,1]", "net.hidden=32", "net.latent_dim=16",
                    "method.encoder.width=4", "method.encoder.hidden=32", "method.encoder.out_dim=16",
                    "train.batch_size=8", "buffer.size=64", "sampler.steps=2", "method.latent_examples=16",
                    "method.warmup=1"],
    "cebm-digits": CEBM,
    "cebmm-digits": CEBM,
    "ebclr-digits": [*RESNET, "sampler.steps=2", "buffer.size=32"],
    "ebclr-shapes": [*RESNET, "sampler.steps=2", "buffer.size=32"],
    "simclr-shapes": RESNET,
    "sngan-shapes": SNGAN,
    "ae-shapes": AE,
    "hat-synth-shapes": [*HAT, "hat.generator_net.ngf=16", "hat.generator_net.nz=8", "method.bank_size=16"],
    "hat-refine-shapes": HAT,  # hat.generator = latest:sngan-shapes
    "hat-retrofit-shapes": HAT,  # hat.generator = latest:ae-shapes
}
# The run a refine or retrofit Hat EBM stands on, trained first in the same runs directory.
GENERATOR = {"hat-refine-shapes": "sngan-shapes", "hat-retrofit-shapes": "ae-shapes"}


@dataclass
class Kill:
    """One kill: where it was aimed, the delay after its trigger, how the process ended, where it landed."""

    where: str
    delay: float | None
    outcome: Outcome
    landed: str = ""

    def line(self) -> str:
        when = "at its trigger" if not self.delay else f"{self.delay:.2f} s after its trigger"
        if not self.outcome.killed:
            return f"{self.where}: not killed {when} (exit {self.outcome.code})"
        return f"{self.where}: killed {when}; landed: {self.landed or 'not inspected'}"


@dataclass
class Story:
    """The kills of one run, for assertion messages."""

    preset: str
    seconds: float | None = None  # the uninterrupted run's training loop, to its last step
    kills: list[Kill] = field(default_factory=list)
    strays: set[str] = field(default_factory=set)

    def __str__(self) -> str:
        timed = f" (uninterrupted: {self.seconds:.2f} s of training)" if self.seconds is not None else ""
        lines = [f"{self.preset}: {len(self.kills)} kill(s){timed}", *(f"  {k.line()}" for k in self.kills)]
        if self.strays:
            lines.append(f"  temporary files left by kills: {sorted(self.strays)}")
        return "\n".join(lines)


def _global(runs: Path) -> list[str]:
    return ["--runs-dir", str(runs), "--device", "cpu", "--quiet", "--json"]


def _train_argv(runs: Path, preset: str, steps: int, every: int) -> list[str]:
    argv = [*_global(runs), "train", "--preset", preset]
    sets = [*TINY[preset], f"train.steps={steps}", f"train.checkpoint_every={every}", "train.log_every=1",
            "train.sample_every=100000"]
    for item in sets:
        argv += ["--set", item]
    return argv


def _resume_argv(runs: Path, run: Path | None) -> list[str]:
    return [*_global(runs), "train", "--resume", *([str(run)] if run is not None else [])]


def _doc(outcome: Outcome) -> dict:
    """The JSON document a finished ``--json`` command printed last."""
    assert outcome.code == 0, f"exit {outcome.code}:\n{outcome.log[-3000:]}"
    start = outcome.log.rfind("\n{\n")
    return json.loads(outcome.log[start + 1 if start >= 0 else 0 :])


def _new_run(runs: Path, known: set[str]) -> Path:
    (name,) = run_dirs(runs) - known
    return runs / name


def _train(launcher: Launcher, runs: Path, argv: list[str], log: str) -> Path:
    """Train a new run to the end."""
    known = run_dirs(runs)
    doc = _doc(launcher.run(argv, runs.parent / log))
    run = _new_run(runs, known)
    assert Path(doc["run"]) == run and doc["status"] == "completed", doc
    return run


def _setup(launcher: Launcher, runs: Path, preset: str) -> None:
    if preset in GENERATOR:
        _train(launcher, runs, _train_argv(runs, GENERATOR[preset], 2, 2), "generator.log")


def _step_of(run: Path, name: str) -> int | None:
    path = run / f"checkpoints/{name}.safetensors"
    return int(load_tensors(path)[1]["step"]) if path.exists() else None


def _status(run: Path) -> str:
    return json.loads((run / "run.json").read_text())["status"]


def _records(run: Path) -> list[dict]:
    path = run / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _after_kill(run: Path, story: Story, kill: Kill, steps: int) -> None:
    """What a kill may leave: a readable run.json saying "running" (or "completed", when the kill came as the
    process was exiting), a readable spec.json, every checkpoint whole. Records where the kill landed."""
    doc = json.loads((run / "run.json").read_text())
    assert doc["status"] in ("running", "completed"), f"{doc['status']}\n{story}"
    json.loads((run / "spec.json").read_text())
    for path in sorted(run.rglob("*.safetensors")):
        try:
            load_tensors(path)
        except Exception as exc:  # a half-written checkpoint
            raise AssertionError(f"{path} is unreadable after a kill: {exc}\n{story}") from exc
    state = _step_of(run, "state")
    lines = (run / "metrics.jsonl").read_text().splitlines() if (run / "metrics.jsonl").exists() else []
    logged = "nothing logged"
    for line in reversed(lines):
        try:
            logged = f"logged step {json.loads(line)['step']}"
            break
        except json.JSONDecodeError:
            logged = "a cut metrics line"
    landed = ["before the first checkpoint" if state is None else f"checkpoint at step {state}", logged]
    landed += ["after the run completed"] if doc["status"] == "completed" else []
    for name in ("model", "generator"):
        step = _step_of(run, name)
        if state is not None and step is not None and step != state:
            landed.append(f"{name} at step {step}")
    strays = temp_files(run)
    story.strays |= {str(p.relative_to(run)) for p in strays}
    writing = [p.name for p in strays if p.parent.name == "checkpoints"]
    landed += [f"while writing {writing}"] if writing else []
    kill.landed = ", ".join(landed)


def _same_tensors(expected: Path, run: Path, path: str, story: Story) -> list[str]:
    """How ``path`` of ``run`` differs from ``expected``'s (tensors, then metadata); empty when it does not."""
    a, meta_a = load_tensors(expected / path)
    b, meta_b = load_tensors(run / path)
    assert a, f"{path} holds no tensors"
    if a.keys() != b.keys():
        return [f"{path}: keys {sorted(set(a) ^ set(b))[:8]}"]
    unequal = [k for k in a if a[k].dtype != b[k].dtype or not torch.equal(a[k], b[k])]
    if unequal:
        return [f"{path}: {len(unequal)} tensor(s) differ, e.g. {unequal[:6]}"]
    return [] if meta_a == meta_b else [f"{path}: the metadata differ (step {meta_a.get('step')} vs {meta_b.get('step')})"]


def _same_run(expected: Path, run: Path, story: Story) -> None:
    """Every checkpoint tensor and its metadata, the metrics (less timings) and the status agree; no temporary
    file is left."""
    for name in CHECKPOINTS:
        path = f"checkpoints/{name}.safetensors"
        assert (expected / path).exists() == (run / path).exists(), f"{path}\n{story}"
    assert (expected / "checkpoints/state.safetensors").exists(), "the uninterrupted run wrote no state"
    problems = _same_tensors(expected, run, "checkpoints/state.safetensors", story)
    assert not problems, f"{problems}\n{story}"  # weights, EMA, optimiser moments, buffers, RNG, step

    def metrics(path: Path) -> list[dict]:
        return [{k: v for k, v in r.items() if k not in TIMING} for r in _records(path)]

    ours, theirs = metrics(run), metrics(expected)
    assert ours == theirs, f"metrics differ ({len(ours)} vs {len(theirs)} records)\n{story}"
    doc = json.loads((run / "run.json").read_text())
    assert doc["status"] == "completed", f"{doc['status']}\n{story}"
    assert doc["step"] == json.loads((expected / "run.json").read_text())["step"], f"{story}"
    left = temp_files(run)
    assert not left, f"the finished run still holds temporary files {left}\n{story}"
    for name in ("model", "generator"):
        path = f"checkpoints/{name}.safetensors"
        if (expected / path).exists():
            problems += _same_tensors(expected, run, path, story)
    assert not problems, f"{problems}\n{story}"


def _kill_and_resume(launcher: Launcher, runs: Path, preset: str, argv: list[str], steps: int, seconds: float,
                     kills: int, *, at_write: int | None = None) -> tuple[Path, Story]:
    """Train ``argv`` again, kill it ``kills`` times (the first run, then resumes), resume it to the end.

    ``seconds`` is the uninterrupted run's training time (its last ``elapsed_s``): each delay is a random share
    of the part of it still ahead, counted from the moment the process is seen training (its run.json, or the
    spec.json a resume rewrites). A first run that finishes before its kill is started again with half the delay.
    The kill numbered ``at_write`` (a resume) is aimed at the first checkpoint write seen instead."""
    assert at_write != 0, "the first run is watched for its run.json, not for a checkpoint write"
    rng = random.Random(f"{preset}/{kills}")
    story = Story(preset, seconds)
    delay = rng.uniform(0.02, 0.8) * seconds
    for attempt in range(3):
        known = run_dirs(runs)
        outcome = launcher.run(argv, runs.parent / f"first-{attempt}.log", delay=delay,
                               until={"new_run": str(runs), "known": sorted(known)})
        run = _new_run(runs, known)
        kill = Kill("first run" + (f" (try {attempt + 1})" if attempt else ""), delay, outcome)
        story.kills.append(kill)
        assert outcome.killed or outcome.code == 0, f"{kill.line()}\n{outcome.log[-3000:]}"
        if outcome.killed:
            _after_kill(run, story, kill, steps)
            if _status(run) == "running":
                break
        delay /= 2
    assert _status(run) == "running", f"the first run finished before its kill every time\n{story}"
    for i in range(1, kills):
        spec = run / "spec.json"
        if i == at_write:
            delay = None
            until = {"temp_file": str(run / "checkpoints"), "known": [p.name for p in temp_files(run)]}
        else:
            done = _step_of(run, "state") or 0
            delay = rng.uniform(0.02, 0.8) * seconds * (steps - done) / steps
            until = {"replaced": str(spec), "ino": spec.stat().st_ino}
        outcome = launcher.run(_resume_argv(runs, run), runs.parent / f"kill-{i}.log", until=until,
                               delay=0.0 if delay is None else delay)
        kill = Kill(f"resume {i}", delay, outcome)
        story.kills.append(kill)
        if not outcome.killed:
            assert outcome.code == 0, f"{kill.line()}\n{outcome.log[-3000:]}"
            break
        _after_kill(run, story, kill, steps)
        if _status(run) == "completed":  # killed as it exited
            break
    if _status(run) != "completed":
        doc = _doc(launcher.run(_resume_argv(runs, run), runs.parent / "resume.log"))
        assert Path(doc["run"]) == run and doc["status"] == "completed", f"{doc}\n{story}"
    print(story)
    return run, story


def _kill_once(launcher: Launcher, runs: Path, argv: list[str], until: dict, log: Path, story: Story,
               where: str, steps: int) -> Path:
    """Run ``argv`` (a new run, or a resume of the run it names) and kill it as soon as ``until`` holds."""
    known = run_dirs(runs)
    outcome = launcher.run(argv, log, until=until, delay=0.0)
    run = Path(argv[-1]) if "--resume" in argv else _new_run(runs, known)
    kill = Kill(where, 0.0, outcome)
    story.kills.append(kill)
    assert outcome.killed, f"{kill.line()}\n{outcome.log[-2000:]}"
    _after_kill(run, story, kill, steps)
    return run


# ----------------------------------------------------------------------------------------------- tests


@pytest.fixture(scope="module")
def forked():
    launcher = ForkLauncher()
    yield launcher
    launcher.close()


def _killed_and_resumed_matches(launcher: Launcher, tmp_path: Path, preset: str, *, steps: int, every: int,
                                kills: int, at_write: int | None = None, twice: bool = False) -> None:
    runs = tmp_path / "runs"
    _setup(launcher, runs, preset)
    argv = _train_argv(runs, preset, steps, every)
    expected = _train(launcher, runs, argv, "expected.log")
    seconds = _records(expected)[-1]["elapsed_s"]
    if twice:  # training is reproducible at all: two uninterrupted runs agree
        again = _train(launcher, runs, argv, "again.log")
        _same_run(expected, again, Story(f"{preset}, two uninterrupted runs"))
    run, story = _kill_and_resume(launcher, runs, preset, argv, steps, seconds, kills, at_write=at_write)
    assert run != expected
    _same_run(expected, run, story)


@pytest.mark.parametrize("preset", list(TINY))
def test_killed_runs_resume_to_the_uninterrupted_result(forked, tmp_path, preset):
    """Two kills (the first run, a resume) per embedded preset."""
    _killed_and_resumed_matches(forked, tmp_path, preset, steps=6, every=2, kills=2)


@pytest.mark.slow
@pytest.mark.parametrize("preset", list(TINY))
def test_many_kills_of_the_real_entry_point_resume_to_the_uninterrupted_result(tmp_path, preset):
    """``python -m ebmctl`` killed five times over 12 steps (once at a checkpoint write), after checking that
    two uninterrupted runs agree."""
    _killed_and_resumed_matches(SpawnLauncher(), tmp_path, preset, steps=12, every=2, kills=5, at_write=2, twice=True)


@pytest.mark.parametrize("preset", ["quickstart", "hat-refine-shapes"])
def test_a_kill_before_the_first_checkpoint_resumes_to_the_same_result(forked, tmp_path, preset):
    """Killed the moment its run directory appears, before its first checkpoint is written (no state file), then
    its resume killed as soon as a step is logged: a metrics line the resume must drop, and for a refine Hat EBM
    a generator to read again from the parent run."""
    runs = tmp_path / "runs"
    _setup(forked, runs, preset)
    argv = _train_argv(runs, preset, 4, 4)
    expected = _train(forked, runs, argv, "expected.log")
    story = Story(preset)
    for attempt in range(5):  # the first checkpoint follows within milliseconds: a kill may come too late
        until = {"new_run": str(runs), "known": sorted(run_dirs(runs))}
        run = _kill_once(forked, runs, argv, until, tmp_path / f"kill-{attempt}.log", story,
                         f"first run (try {attempt + 1}), as its run directory appears", 4)
        if _step_of(run, "state") is None:
            break
    assert _step_of(run, "state") is None, f"no kill came before the state file\n{story}"
    _kill_once(forked, runs, _resume_argv(runs, run), {"nonempty": str(run / "metrics.jsonl")},
               tmp_path / "kill-resume.log", story, "resume 1, at its first logged step", 4)
    assert _records(run), f"the kill came before the first logged step\n{story}"
    doc = _doc(forked.run(_resume_argv(runs, run), tmp_path / "resume.log"))
    assert Path(doc["run"]) == run and doc["status"] == "completed", f"{doc}\n{story}"
    print(story)
    _same_run(expected, run, story)


def test_resume_without_a_run_continues_the_killed_one(forked, tmp_path):
    """``ebmctl train --resume`` alone picks the newest unfinished run: a killed run still says "running", and a
    newer completed run is passed over."""
    runs = tmp_path / "runs"
    argv = _train_argv(runs, "igebm-toy", 6, 2)
    story = Story("igebm-toy")
    run = _kill_once(forked, runs, argv, {"new_run": str(runs), "known": [], "file": "metrics.jsonl"},
                     tmp_path / "kill.log", story, "first run, at its first logged step", 6)
    expected = _train(forked, runs, argv, "newer.log")  # newer, completed
    doc = _doc(forked.run(_resume_argv(runs, None), tmp_path / "resume.log"))
    assert Path(doc["run"]) == run and doc["status"] == "completed", f"{doc}\n{story}"
    print(story)
    _same_run(expected, run, story)


def test_a_kill_between_the_last_weights_and_state_resumes_to_the_same_weights(forked, tmp_path):
    """Killed while the last checkpoint's state file is written, after its weights: the state still marks the
    checkpoint before, so the resume trains the last steps again and ends with the same weights and state."""
    runs = tmp_path / "runs"
    argv = _train_argv(runs, "quickstart", 4, 2)
    expected = _train(forked, runs, argv, "expected.log")
    story = Story("quickstart")
    for attempt in range(5):  # the write takes milliseconds: a kill may miss it; start again then
        until = {"new_run": str(runs), "known": sorted(run_dirs(runs)), "file": "metrics.jsonl"}
        run = _kill_once(forked, runs, argv, until, tmp_path / f"first-{attempt}.log", story,
                         "first run, at its first logged step", 4)
        last_write = {"all": [{"lines": str(run / "metrics.jsonl"), "at_least": 4},
                              {"temp_file": str(run / "checkpoints"), "known": [p.name for p in temp_files(run)],
                               "prefix": ".state.safetensors."}]}
        outcome = forked.run(_resume_argv(runs, run), tmp_path / f"resume-{attempt}.log", until=last_write, delay=0.0)
        kill = Kill("resume 1, at the last checkpoint's state write", 0.0, outcome)
        story.kills.append(kill)
        if outcome.killed:
            _after_kill(run, story, kill, 4)
            if _step_of(run, "model") == 4 and _step_of(run, "state") == 2:
                break
    else:
        pytest.skip(f"no kill landed between the last model and state writes\n{story}")
    doc = _doc(forked.run(_resume_argv(runs, run), tmp_path / "resume.log"))
    assert Path(doc["run"]) == run and doc["status"] == "completed", f"{doc}\n{story}"
    print(story)
    _same_run(expected, run, story)
    assert _step_of(run, "model") == _step_of(run, "state") == 4, story


def test_a_kill_as_the_run_directory_is_made_leaves_no_unresumable_run(forked, tmp_path):
    """Killed the moment a directory appears in the runs directory: no run directory without its spec.json and
    run.json is left (one that ``ebmctl train --resume`` could neither continue nor see); a run that is there
    resumes to the uninterrupted result."""
    runs = tmp_path / "runs"
    argv = _train_argv(runs, "igebm-toy", 4, 2)
    expected = _train(forked, runs, argv, "expected.log")
    story = Story("igebm-toy")
    for attempt in range(3):  # the window is milliseconds: a kill may come too late; try again then
        known = {p.name for p in runs.iterdir()}
        outcome = forked.run(argv, tmp_path / f"kill-{attempt}.log", delay=0.0,
                             until={"new_dir": str(runs), "known": sorted(known)})
        kill = Kill(f"first run (try {attempt + 1}), as a directory appears", 0.0, outcome)
        story.kills.append(kill)
        made = sorted({p.name for p in runs.iterdir()} - known)
        kill.landed = f"new in the runs directory: {[(n, sorted(os.listdir(runs / n))) for n in made]}"
        visible = [name for name in made if not name.startswith(".")]
        if outcome.killed and not (visible and _status(runs / visible[0]) == "completed"):
            break
    print(story)
    assert outcome.killed, f"{story}"
    assert len(visible) <= 1, f"{story}"
    for name in visible:
        assert (runs / name / "spec.json").is_file() and (runs / name / "run.json").is_file(), f"{story}"
    if not visible:  # nothing to resume: the run directory appears whole or not at all
        with_no_arg = forked.run(_resume_argv(runs, None), tmp_path / "resume.log")
        assert with_no_arg.code != 0 and "no run to resume" in with_no_arg.log, f"{with_no_arg.log[-800:]}\n{story}"
        return
    run = runs / visible[0]
    doc = _doc(forked.run(_resume_argv(runs, None), tmp_path / "resume.log"))
    assert Path(doc["run"]) == run and doc["status"] == "completed", f"{doc}\n{story}"
    _same_run(expected, run, story)
