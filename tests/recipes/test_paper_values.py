"""The guard rail of the paper presets: every value a paper or released config fixes is in docs/paper-values.md
with its source, and every paper preset resolves to exactly those values.

A paper preset is one on real data (the presets on embedded data are sized for a CPU and say so in their
headers). Each key that a paper preset's file sets, and each released-code default its method supplies, must have
a row; a row marked as a departure quotes a phrase that the preset's header must contain, so that a header and
the table cannot disagree. ``null`` in the table is a value left unset (None).
"""

from __future__ import annotations

import fnmatch
import math
import re
from pathlib import Path
from typing import Any

import pytest

from ebmctl.data.registry import dataset_entry
from ebmctl.recipes import RECIPES, resolve_spec
from ebmctl.specs import parse_literal, preset_header, preset_names, preset_path, read_preset

TABLE = Path(__file__).resolve().parents[2] / "docs" / "paper-values.md"
# Keys that are names (the preset's own identity), references to other runs, or bookkeeping with no paper value.
EXEMPT = re.compile(r"(^|\.)name$|^preset$|^hat\.generator$|^data\.root$|^train\.(checkpoint|sample|log)_every$")
ROW = re.compile(r"^\|\s*(?P<presets>`[^|]+`)\s*\|\s*`(?P<key>[^`]+)`\s*\|\s*`(?P<value>[^`]*)`\s*\|"
                 r"\s*(?P<source>[^|]*?)\s*\|\s*(?P<departure>[^|]*?)\s*\|\s*$")


def _paper_presets() -> list[str]:
    return [n for n in preset_names() if not dataset_entry(resolve_spec(n).data.name).embedded]


def _rows() -> list[dict[str, Any]]:
    rows = []
    for number, line in enumerate(TABLE.read_text(encoding="utf-8").splitlines(), 1):
        m = ROW.match(line)
        if m:
            globs = re.findall(r"`([^`]+)`", m["presets"])
            rows.append({**m.groupdict(), "globs": globs, "line": number})
    return rows


def _preset_keys(preset: str) -> set[str]:
    """The keys a paper preset fixes: those its file sets, its method's released-code defaults, and every field of
    its method and net sections (the loss, sampler-side and architecture settings)."""
    tree = read_preset(preset)
    for section in ("method", "net"):
        if isinstance(tree.get(section), str):
            tree[section] = {"name": tree[section]}
    doc = resolve_spec(preset).model_dump(mode="json")
    keys = set(_flat(tree)) | set(_flat(RECIPES[doc["method"]["name"]].defaults))
    keys |= set(_flat(doc["method"], "method.")) | set(_flat(doc["net"], "net."))
    return {k for k in keys if not EXEMPT.search(k)}


def _flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flat(value, f"{path}."))
        else:
            out[path] = value
    return out


def _at(doc: dict[str, Any], key: str) -> Any:
    node: Any = doc
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(key)
        node = node[part]
    return node


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=0.0)
    return a == b


def _matches(row: dict[str, Any], preset: str) -> bool:
    return any(fnmatch.fnmatchcase(preset, g) for g in row["globs"])


PAPER = _paper_presets()
ROWS = _rows()


def test_the_table_has_rows_and_paper_presets_exist():
    assert len(PAPER) >= 20 and len(ROWS) >= 100


@pytest.mark.parametrize("row", ROWS, ids=lambda r: f"line{r['line']}")
def test_each_row_names_paper_presets_and_their_values(row):
    hits = [p for p in PAPER if _matches(row, p)]
    assert hits, f"docs/paper-values.md line {row['line']}: {row['globs']} matches no paper preset"
    assert row["source"], f"line {row['line']}: no source"
    want = None if row["value"] == "null" else parse_literal(row["value"])
    for preset in hits:
        got = _at(resolve_spec(preset).model_dump(mode="json"), row["key"])
        assert _same(got, want), f"{preset}: {row['key']} is {got!r}, docs/paper-values.md line {row['line']} says {want!r}"


@pytest.mark.parametrize("preset", PAPER)
def test_every_fixed_key_of_a_paper_preset_has_a_row(preset):
    missing = sorted(k for k in _preset_keys(preset) if not any(_matches(r, preset) and r["key"] == k for r in ROWS))
    assert not missing, f"{preset}: no row in docs/paper-values.md for {', '.join(missing)}"


@pytest.mark.parametrize("preset", PAPER)
def test_no_key_has_two_rows_for_one_preset(preset):
    keys = [r["key"] for r in ROWS if _matches(r, preset)]
    assert len(keys) == len(set(keys)), sorted({k for k in keys if keys.count(k) > 1})


@pytest.mark.parametrize("row", [r for r in ROWS if r["departure"]], ids=lambda r: f"line{r['line']}")
def test_a_departure_is_stated_in_the_preset_header(row):
    phrases = re.findall(r'"([^"]+)"', row["departure"])
    assert phrases, f"line {row['line']}: a departure quotes the phrase its preset header states it with"
    for preset in (p for p in PAPER if _matches(row, p)):
        header = " ".join(" ".join(preset_header(preset_path(preset))).split()).lower()
        for phrase in phrases:
            assert " ".join(phrase.split()).lower() in header, f"{preset}: header does not say {phrase!r}"
