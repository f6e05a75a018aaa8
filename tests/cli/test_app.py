"""The CLI as users type it: help, presets, specs, and one-line errors with exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ebmctl import __version__


def test_version(cli):
    result = cli("--version", runs_dir=False)
    assert result.code == 0 and __version__ in result.out


def test_python_dash_m_is_the_same_program():
    proc = subprocess.run([sys.executable, "-m", "ebmctl", "--version"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and f"ebmctl {__version__}" in proc.stdout


@pytest.mark.parametrize("command", [[], ["train"], ["sample"], ["ood"], ["presets"], ["presets", "list"],
                                     ["presets", "show"]])
def test_every_help_ends_with_examples(cli, command):
    result = cli(*command, "--help", runs_dir=False)
    assert result.code == 0
    text = result.out.rstrip()
    assert "Examples" in text
    tail = text[text.rindex("Examples"):]
    assert "ebmctl " in tail


def test_presets_list_and_show(cli):
    result = cli("--json", "presets", "list")
    names = {p["name"] for p in json.loads(result.out)["presets"]}
    assert {"quickstart", "icd-cifar10", "igebm-cifar10", "icd-shapes", "icd-toy", "igebm-toy"} <= names
    shown = cli("presets", "show", "icd-cifar10")
    assert shown.code == 0 and "Table 2" in shown.out
    shown = cli("--json", "presets", "show", "quickstart")
    assert json.loads(shown.out)["spec"]["method"]["name"] == "icd"


def test_print_spec_applies_overrides(cli):
    result = cli("--json", "train", "--preset", "icd-cifar10", "--set", "method.kl=false", "--set", "train.steps=5",
                 "--print-spec")
    spec = json.loads(result.out)
    assert result.code == 0 and spec["method"]["kl"] is False and spec["train"]["steps"] == 5
    assert not cli.runs.exists(), "--print-spec must not create anything"


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["train", "--preset", "quickstrat"], 2, "did you mean 'quickstart'"),
        (["train", "--set", "train.stpes=3"], 2, "did you mean train.steps"),
        (["train", "--set", "sampler.steps=-1"], 2, "sampler.steps"),
        (["train", "--set", "novalue"], 2, "has no '='"),
        (["train", "--bogus"], 2, "No such option"),
        (["trian"], 2, "No such command"),
        (["sample"], 1, "no completed run"),
        (["sample", "--run", "nowhere"], 1, "does not exist"),
        (["ood", "--in", "shapes32"], 2, "needs --in and --out"),
        (["train", "--set", "data.name=cifar10", "--set", "train.steps=1"], 1, "cifar"),
        (["train", "--set", "data.name=cifar11"], 2, "did you mean"),
        (["--device", "cuda:7", "train", "--steps", "1"], 1, "CUDA"),
    ],
)
def test_bad_input_is_one_line_with_a_hint(cli, args, code, needle):
    result = cli(*args)
    assert result.code == code, result.err
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert len(lines) == 1, result.err
    assert lines[0].startswith("error:") and "hint:" in lines[0]
    assert needle.lower() in lines[0].lower()
    assert "Traceback" not in result.err


def test_bad_input_leaves_no_run_directory(cli):
    cli("train", "--set", "data.name=cifar10", "--set", "train.steps=1")
    assert not cli.runs.exists() or not any(cli.runs.iterdir())


def test_json_errors_are_machine_readable(cli):
    result = cli("--json", "train", "--preset", "nope")
    doc = json.loads(result.out)
    assert doc["error"]["exit_code"] == 2 and doc["error"]["kind"] == "spec"


def test_missing_dataset_names_directory_and_files(cli, tmp_path):
    result = cli("--data-root", str(tmp_path / "empty"), "train", "--preset", "icd-cifar10", "--steps", "1")
    assert result.code == 1
    assert "cifar-10-batches-py" in result.err and str(tmp_path / "empty") in result.err


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["train", "--preset", "q", "--data-root", "D", "--set", "x=1"], ["--data-root", "D", "train", "--preset", "q", "--set", "x=1"]),
        (["--json", "ood", "--in", "a", "--device=cpu", "-q"], ["--json", "--device=cpu", "-q", "ood", "--in", "a"]),
        (["--device", "cpu", "sample", "--n", "3"], ["--device", "cpu", "sample", "--n", "3"]),
        (["presets", "show", "x", "--json"], ["--json", "presets", "show", "x"]),
    ],
)
def test_global_options_may_follow_the_command(args, expected):
    from ebmctl.cli.main import hoist_global_options

    assert hoist_global_options(args) == expected


def test_data_root_after_the_command(cli, tmp_path):
    result = cli("train", "--preset", "icd-cifar10", "--data-root", str(tmp_path / "nowhere"), "--steps", "1")
    assert result.code == 1 and str(tmp_path / "nowhere") in result.err


def test_point_runs_refuse_fid_and_ood_before_doing_any_work(cli):
    assert cli("--quiet", "train", "--preset", "igebm-toy", "--steps", "2").code == 0
    fid = cli("sample", "--fid", "--n", "4")
    assert fid.code == 2 and "2D points" in fid.err
    ood = cli("ood", "--in", "8gaussians", "--out", "rings")
    assert ood.code == 2 and "2D points" in ood.err
    (run,) = list(cli.runs.iterdir())
    assert not (run / "sample").exists() and not (run / "ood").exists()
