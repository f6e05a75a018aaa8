"""Run directories: naming, latest resolution, metrics truncation."""

from __future__ import annotations

import json
import time

import pytest

from ebmctl.errors import RunError
from ebmctl.runs import (
    SPEC_JSON,
    append_metrics,
    latest_run,
    new_run_dir,
    read_metrics,
    resolve_run,
    safe_name,
    start_run_json,
    truncate_metrics,
    update_run_json,
    write_json,
)


def _make(root, name, status):
    run = new_run_dir(root, name)
    write_json(run / SPEC_JSON, {})
    start_run_json(run, preset=name, method="icd", device="cpu", parents=[])
    update_run_json(run, status=status)
    time.sleep(0.01)
    return run


def test_names_cannot_escape_the_runs_directory(tmp_path):
    assert "/" not in safe_name("../../etc/passwd") and not safe_name("../x").startswith(".")
    run = new_run_dir(tmp_path, "../../evil")
    assert run.parent == tmp_path


def test_latest_is_the_newest_completed_run(tmp_path):
    a = _make(tmp_path, "a", "completed")
    _make(tmp_path, "b", "running")
    assert resolve_run(None, tmp_path).run_dir == a
    assert resolve_run("latest", tmp_path).run_dir == a
    c = _make(tmp_path, "c", "completed")
    assert resolve_run("latest", tmp_path).run_dir == c
    assert latest_run(tmp_path, statuses=("running",)).name.startswith("b-")


def test_resolve_by_name_path_and_checkpoint(tmp_path):
    a = _make(tmp_path, "a", "completed")
    assert resolve_run(a.name, tmp_path).run_dir == a
    assert resolve_run(str(a), tmp_path).run_dir == a
    ckpt = a / "checkpoints" / "model.safetensors"
    ckpt.parent.mkdir()
    ckpt.write_bytes(b"x")
    ref = resolve_run(str(ckpt), tmp_path)
    assert ref.run_dir == a and ref.checkpoint == ckpt


def test_missing_runs_are_clear_errors(tmp_path):
    with pytest.raises(RunError) as err:
        resolve_run(None, tmp_path)
    assert "ebmctl train" in err.value.hint
    with pytest.raises(RunError):
        resolve_run("nope", tmp_path)
    (tmp_path / "plain").mkdir()
    with pytest.raises(RunError) as err:
        resolve_run(str(tmp_path / "plain"), tmp_path)
    assert "not a run directory" in err.value.message


def test_metrics_truncation_and_cut_lines(tmp_path):
    for step in (10, 20, 30):
        append_metrics(tmp_path, {"step": step, "loss": step / 10})
    with open(tmp_path / "metrics.jsonl", "a") as fh:
        fh.write('{"step": 40, "lo')  # a line cut by a kill
    assert [r["step"] for r in read_metrics(tmp_path)] == [10, 20, 30]
    truncate_metrics(tmp_path, 20)
    assert [r["step"] for r in read_metrics(tmp_path)] == [10, 20]


def test_a_new_run_appears_whole_or_not_at_all(tmp_path):
    from ebmctl.runs import list_runs, write_json

    def fill(folder, name):
        write_json(folder / "spec.json", {"seed": 0})
        start_run_json(folder, preset="p", method="igebm", device="cpu", parents=[], name=name)

    run = new_run_dir(tmp_path, "p", fill)
    assert json.loads((run / "run.json").read_text())["name"] == run.name
    assert sorted(p.name for p in tmp_path.iterdir()) == [run.name]  # no staging folder left

    def broken(folder, name):
        write_json(folder / "spec.json", {"seed": 0})
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        new_run_dir(tmp_path, "q", broken)
    assert sorted(p.name for p in tmp_path.iterdir()) == [run.name]
    (tmp_path / ".q-x.partial").mkdir()  # what a kill in the middle would leave: never listed as a run
    write_json(tmp_path / ".q-x.partial" / "spec.json", {})
    write_json(tmp_path / ".q-x.partial" / "run.json", {"status": "running"})
    assert [p for p, _ in list_runs(tmp_path)] == [run]


def test_staging_folders_left_by_kills_are_removed_and_reported(cli):
    """A kill while a run directory was being made leaves a hidden `.NAME.<random>.partial` folder: the next `train`
    removes it (once it is too old to be another process's, and no process holds it) and says so."""
    import os

    from ebmctl.runs import STAGING_GRACE_S

    cli.runs.mkdir(parents=True)
    stale, fresh = cli.runs / ".quickstart-20260101-120000.ab12cd.partial", cli.runs / ".igebm-toy-x.ef34gh.partial"
    for folder in (stale, fresh):
        folder.mkdir()
        (folder / "spec.json").write_text("{}")
    old = time.time() - 2 * STAGING_GRACE_S
    os.utime(stale, (old, old))
    result = cli("train", "--preset", "igebm-toy", "--steps", "1", "--set", "train.batch_size=8",
                 "--set", "sampler.steps=1", "--set", "buffer.size=16")
    assert result.code == 0, result.err
    assert f"removed 1 half-made run folder(s) that killed runs left in {cli.runs}: {stale.name}" in " ".join(
        result.err.split())
    assert not stale.exists() and fresh.exists()
