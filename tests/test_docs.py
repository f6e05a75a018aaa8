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
