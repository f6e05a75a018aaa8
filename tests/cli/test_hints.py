"""Messages that said the wrong thing, and hints that could not be followed by the command that printed them.

Every hint here is checked against the parser (:mod:`hints`): each ``ebmctl ...`` command it spells out parses,
and each option it names on its own belongs to the printing command. The fuzzing tests run the same check on
every error they provoke."""

from __future__ import annotations

import json

import pytest
from hints import assert_hint_works, command_forms, hint_problems

from ebmctl.runs import update_run_json

TOY = ["--preset", "igebm-toy", "--steps", "2", "--set", "train.batch_size=8", "--set", "sampler.steps=1",
       "--set", "buffer.size=16"]
QUICK = ["--preset", "quickstart", "--steps", "1", "--set", "net.width=4", "--set", "train.batch_size=4",
         "--set", "sampler.steps=1", "--set", "buffer.size=8", "--set", "method.kl_chains=2",
         "--set", "method.entropy_min_buffer=4", "--set", "method.entropy_refs=2"]


def _one_line(result, code: int, needle: str, argv: list[str]) -> str:
    assert result.code == code, result.err
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "(hint: " in lines[0], result.err
    assert needle in lines[0], lines[0]
    assert_hint_works(argv, lines[0])
    return lines[0]


def test_the_checker_finds_options_the_command_lacks_and_commands_that_do_not_parse():
    line = "error: x (hint: pass --set data.verify_checksums=false if you know the files are right)"
    assert hint_problems(["ood", "--in", "a", "--out", "b"], line) == ["--set is no option of `ebmctl ood`"]
    assert hint_problems(["train"], line) == []
    assert hint_problems(["train"], "error: x (hint: resume with: ebmctl train --resume RUN --bogus 1)")
    assert command_forms("e.g. ebmctl compose --attrs young,female, or `ebmctl presets list`") == [
        ["compose", "--attrs", "young,female"], ["presets", "list"]]


def test_a_dataset_whose_checksums_differ_gets_each_commands_own_way_past_them(cli, tmp_path):
    """Before, the hint told `ebmctl ood` to pass --set data.verify_checksums=false, an option ood does not have."""
    from data.fixtures import write_svhn

    root = tmp_path / "data"
    write_svhn(root)  # not the official files: their checksums differ
    assert cli("--quiet", "train", *QUICK).code == 0
    ood = ["--quiet", "--data-root", str(root), "ood", "--in", "shapes32", "--out", "svhn", "--n", "8"]
    line = _one_line(cli(*ood), 1, "do not match their checksums", ood)
    assert "add --no-verify-checksums" in line and "--set" not in line
    assert cli(*ood, "--no-verify-checksums").code == 0  # the hint, followed, works
    train = ["--data-root", str(root), "train", *QUICK, "--set", "data.name=svhn"]
    line = _one_line(cli(*train), 1, "do not match their checksums", train)
    assert "add --set data.verify_checksums=false" in line
    # a missing dataset: `train` can download it, `ood` cannot
    empty = str(tmp_path / "empty")
    train = ["--data-root", empty, "train", *QUICK, "--set", "data.name=cifar10"]
    assert "add --download to let torchvision fetch it" in _one_line(cli(*train), 1, "not found", train)
    ood = ["--quiet", "--data-root", empty, "ood", "--in", "shapes32", "--out", "cifar10", "--n", "8"]
    assert "--download" not in _one_line(cli(*ood), 1, "not found", ood)


def test_no_arguments_prints_the_help_and_no_empty_error(cli):
    result = cli(runs_dir=False)
    assert result.code == 0 and "Commands" in result.out and "error" not in result.err


@pytest.mark.parametrize(("value", "needle"), [
    ("train.steps=true", "bad value for train.steps: expected a number, got true"),
    ("train.lr=false", "bad value for train.lr: expected a number, got false"),
    ("train.steps=5\ntrain.lr=1", "spans several lines"),
])
def test_set_refuses_booleans_for_numbers_and_a_second_line(cli, value, needle):
    """Before, --set train.steps=true trained 1 step and a second line after a newline was silently dropped."""
    argv = ["train", "--set", value, "--print-spec"]
    _one_line(cli(*argv), 2, needle, argv)


def test_misleading_messages_now_say_what_is_wrong(cli, tmp_path):
    folder = tmp_path / "presets"
    folder.mkdir()
    argv = ["train", "--preset", str(folder), "--print-spec"]
    _one_line(cli(*argv), 2, "is a directory, not a .toml file", argv)

    picture = tmp_path / "grid.png"
    picture.write_bytes(b"\x89PNG\r\n\x1a\n")
    argv = ["sample", "--run", str(picture)]
    _one_line(cli(*argv), 1, "is a file, not a run directory or a .safetensors checkpoint", argv)

    argv = ["compose", "--attrs", "circle", "--runs", "a,b"]
    _one_line(cli(*argv), 2, "--attrs and --runs cannot be combined", argv)

    assert cli("--quiet", "train", *TOY).code == 0
    (run,) = list(cli.runs.iterdir())
    for argv, option in ((["sample", "--out", ""], "--out"),
                         (["ood", "--in", "8gaussians", "--out", "rings", "--out-dir", ""], "--out-dir")):
        _one_line(cli(*argv), 2, f"{option} is empty", argv)

    update_run_json(run, status="interrupted")  # only an interrupted run: "train one first" was wrong
    argv = ["sample"]
    line = _one_line(cli(*argv), 1, "no completed run in", argv)
    assert f"1 unfinished, the newest {run.name} (interrupted at step 2)" in line
    assert f"ebmctl train --resume {run}" in line and f"--run {run}" in line


@pytest.mark.parametrize(("argv", "hint"), [
    (["train", "--bogus"], "see `ebmctl train --help`"),
    (["trian"], "see `ebmctl --help` for the commands"),
    (["sample", "--n", "x"], "see `ebmctl sample --help`"),
])
def test_usage_errors_point_at_the_help_of_the_command(cli, argv, hint):
    line = _one_line(cli(*argv), 2, hint, argv)
    assert "COMMAND" not in line


def test_the_hints_of_a_held_and_an_unresumable_run_work(cli):
    assert cli("--quiet", "train", *TOY).code == 0
    (run,) = list(cli.runs.iterdir())
    (run / "checkpoints" / "state.safetensors").unlink()
    argv = ["train", "--resume", str(run)]
    line = _one_line(cli(*argv), 1, "state.safetensors is missing", argv)
    assert json.loads((run / "run.json").read_text())["status"] == "completed" and "ebmctl sample" in line
