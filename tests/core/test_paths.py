"""Run names and output paths cannot escape the runs directory.

Rules: a run name (``--run NAME``, a preset name in a run directory's name) resolves inside the runs directory;
a relative ``--out`` is taken relative to the run directory (or the run's folder under ``--outputs-dir``) and must
stay inside it (after ``..`` and symbolic links); an absolute ``--out`` is the user's own choice. A run directory
or checkpoint named by its path may be read.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ebmctl.errors import UsageError
from ebmctl.runs import (
    RUN_JSON,
    SPEC_JSON,
    command_dir,
    new_run_dir,
    out_path,
    resolve_run,
    safe_name,
    write_json,
)


def _fake_run(path: Path) -> Path:
    path.mkdir(parents=True)
    write_json(path / SPEC_JSON, {})
    write_json(path / RUN_JSON, {"status": "completed"})
    return path


def _tree(root: Path) -> set[Path]:
    return {p.relative_to(root) for p in root.rglob("*")}


@pytest.mark.parametrize("name", ["../../evil", "..", "/etc/evil", "a/../../b", "~/x", "..\\..\\evil", ""])
def test_run_names_stay_in_the_runs_directory(tmp_path, name):
    root = tmp_path / "runs"
    run = new_run_dir(root, name)
    assert run.parent == root and run.resolve().parent == root.resolve()
    assert "/" not in safe_name(name) and safe_name(name) not in ("", ".", "..")  # one harmless component
    assert _tree(tmp_path) == {Path("runs"), Path("runs") / run.name}


def test_a_preset_name_cannot_place_a_run_outside(cli, tmp_path):
    """A spec file whose preset key climbs out of the runs directory: the run still lands inside it."""
    preset = tmp_path / "presets" / "climb.toml"
    preset.parent.mkdir()
    preset.write_text('preset = "../../evil"\n\n[data]\nname = "8gaussians"\n\n[net]\nname = "mlp"\nhidden = 8\n'
                      'depth = 1\n\n[method]\nname = "igebm"\n')
    before = _tree(tmp_path.parent)
    result = cli("--quiet", "--json", "train", "--preset", str(preset), "--steps", "1", "--set", "train.batch_size=8",
                 "--set", "sampler.steps=2", "--set", "buffer.size=16")
    assert result.code == 0, result.err
    run = Path(json.loads(result.out)["run"])
    assert run.parent == cli.runs and run.name.startswith("evil-")
    created = {p for p in _tree(tmp_path.parent) - before}
    assert all(p.parts[0] == tmp_path.name for p in created)
    assert all(p.parts[1] in ("runs", "cache", "torch_home") for p in created if len(p.parts) > 1), created

    # --out of sample: relative to the run, inside it; anything leaving it is refused before sampling
    refused = cli("--quiet", "sample", "--run", run.name, "--n", "2", "--steps", "1", "--out", "../../escaped")
    assert refused.code == 2 and f"is outside {run}" in refused.err and "hint:" in refused.err
    assert not (cli.runs / "escaped").exists() and not (cli.runs.parent / "escaped").exists()
    assert not (run / "sample").exists()
    kept = cli("--quiet", "--json", "sample", "--run", run.name, "--n", "2", "--steps", "1", "--out", "mine")
    assert kept.code == 0, kept.err
    assert Path(json.loads(kept.out)["out"]) == run / "mine" and (run / "mine" / "samples.safetensors").is_file()


def test_run_names_given_to_run_resolve_inside_the_runs_directory(tmp_path, monkeypatch):
    root = tmp_path / "runs"
    inside = _fake_run(root / "a")
    outside = _fake_run(tmp_path / "x")
    work = tmp_path / "work" / "deep"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)  # so that ../x is no run directory seen from here: it can only mean <runs>/../x
    with pytest.raises(UsageError) as err:
        resolve_run("../x", root)
    assert "leaves the runs directory" in err.value.message and err.value.hint
    (root / "link").symlink_to(outside, target_is_directory=True)  # a name that leaves through a link
    with pytest.raises(UsageError):
        resolve_run("link", root)
    assert resolve_run("a", root).run_dir == root / "a" == inside
    assert resolve_run(str(outside), root).run_dir == outside  # a run named by its path may be read


def test_run_that_leaves_is_a_usage_error_on_the_command_line(cli, tmp_path, monkeypatch):
    _fake_run(tmp_path / "x")
    (tmp_path / "work" / "deep").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "work" / "deep")
    for command in (["sample"], ["probe"], ["refine"], ["ood", "--in", "shapes32", "--out", "textures"]):
        result = cli("--quiet", *command, "--run", "../x")
        assert result.code == 2 and "leaves the runs directory" in result.err, (command, result.err)


@pytest.mark.parametrize("command", [["probe", "--out"], ["refine", "--out"],
                                     ["ood", "--in", "shapes32", "--out", "textures", "--out-dir"]])
def test_out_outside_the_run_is_refused_before_any_work(cli, tmp_path, command):
    run = _fake_run(cli.runs / "r")  # not loadable: a refusal must come before the run is read
    for out in ("../elsewhere", ".", "sub/../../elsewhere"):
        result = cli("--quiet", *command, out, "--run", "r")
        assert result.code == 2 and f"is outside {run}" in result.err, (command, out, result.err)
    result = cli("--quiet", *command, "", "--run", "r")
    assert result.code == 2 and f"{command[-1]} is empty" in result.err, result.err
    assert not (tmp_path / "elsewhere").exists() and not (cli.runs / "elsewhere").exists()
    assert _tree(run) == {Path(SPEC_JSON), Path(RUN_JSON)}


def test_command_dir_keeps_out_inside_the_run(tmp_path):
    run = _fake_run(tmp_path / "runs" / "r")
    assert command_dir(run, "sample", "mine") == run / "mine" and (run / "mine").is_dir()
    assert command_dir(run, "sample", "a/b/../c") == run / "a" / "c"
    assert command_dir(run, "sample", str(run / "abs")) == run / "abs"  # an absolute path inside the run
    assert command_dir(run, "sample", str(tmp_path / "abs" / "..")) == tmp_path  # or anywhere: the user's choice
    fresh = command_dir(run, "sample")
    assert fresh.parent == run / "sample"
    (run / "link").symlink_to(tmp_path, target_is_directory=True)
    for bad in ("..", "../other", "../../x", ".", "link/x", "mine/../../r2"):
        with pytest.raises(UsageError) as err:
            command_dir(run, "sample", bad)
        assert f"is outside {run}" in err.value.message and "relative to the run" in err.value.hint
    with pytest.raises(UsageError, match="is empty"):
        command_dir(run, "sample", " ")
    assert not (tmp_path / "x").exists() and not (tmp_path / "other").exists()
    assert not (tmp_path / "runs" / "other").exists() and not (tmp_path / "runs" / "r2").exists()
    assert out_path(run, "~/x") == Path.home() / "x"  # absolute once expanded
