"""The generated reference pages are current, and the docs the README links to exist."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _generator():
    spec = importlib.util.spec_from_file_location("docs_generate", ROOT / "docs" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_references_are_current():
    gen = _generator()
    assert (ROOT / "docs" / "cli.md").read_text() == gen.cli_reference(), "run: python docs/generate.py"
    assert (ROOT / "docs" / "presets.md").read_text() == gen.presets_reference(), "run: python docs/generate.py"


def test_cli_reference_lists_every_command():
    text = (ROOT / "docs" / "cli.md").read_text()
    for command in ("ebmctl train", "ebmctl sample", "ebmctl ood", "ebmctl presets list", "ebmctl presets show"):
        assert f"`{command}`" in text


def test_links_in_readme_and_docs_resolve():
    for page in [ROOT / "README.md", *(ROOT / "docs").rglob("*.md")]:
        for target in re.findall(r"\]\(([^)#]+\.md)\)", page.read_text()):
            assert (page.parent / target).is_file(), f"{page.name} links to missing {target}"


def test_the_exit_codes_the_readme_states_hold(cli):
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert "exit code 2 for what is wrong on the command line (an unknown preset, key or option, a bad value), 1 " \
           "for the rest (a missing dataset, a mismatched or damaged checkpoint" in readme
    assert cli("train", "--preset", "no-such-preset").code == 2
    assert cli("train", "--set", "train.no_such_key=1").code == 2
    assert cli("train", "--preset", "icd-cifar10", "--data-root", str(ROOT / "no-such-dir")).code == 1


def test_the_docs_say_how_cifar_is_read():
    from ebmctl.data.real import cifar_files

    assert hasattr(cifar_files, "ArraysOnly")
    for page in ("README.md", "docs/runs.md"):
        text = " ".join((ROOT / page).read_text().split())
        assert "read by torchvision" not in text and "reader is torchvision's" not in text, page
        assert "arrays" in text, page


def test_performance_figures_name_their_torch_version():
    text = " ".join((ROOT / "docs" / "performance.md").read_text().split())
    assert "1.34-1.35x torchebm and ebmkit on torch 2.15 and 1.1-1.2x on torch 2.14.1" in text
    assert "1.09-1.13x" in text
