"""Tables at 80 columns: paths wrap after a '/', never inside a name; presets list shows whole summaries."""

from __future__ import annotations

import json
import re

from rich.console import Console

from ebmctl.cli.common import kv_table, with_notes, wrap_at_breaks

RUN = "/home/someone/experiments/runs/quickstart-20261207-163508"


def _render(renderable, width: int = 80) -> str:
    console = Console(width=width, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(renderable)
    return console.export_text()


def test_paths_in_an_80_column_table_break_only_after_a_slash():
    paths = [f"{RUN}/checkpoints/model.safetensors", f"{RUN}/checkpoints/state.safetensors"]
    text = _render(kv_table("trained", [("checkpoint", paths[0]), ("resume state", paths[1]),
                                        ("next", f"ebmctl sample --run {RUN}")]))
    assert max(len(line) for line in text.splitlines()) <= 80
    cells = [re.sub(r"^│ [^│]*│ (.*?) *│$", r"\1", line) for line in text.splitlines() if line.startswith("│")]
    for name in ("model.safetensors", "state.safetensors", "quickstart-20261207-163508"):
        assert any(name in cell for cell in cells), (name, text)
    for i, cell in enumerate(cells[:-1]):  # every cut line of a path ends with '/' (or is a whole word)
        if cells[i + 1] and not cells[i + 1].startswith(("ebmctl", "/")) and cell.startswith("/"):
            assert cell.endswith("/"), text


def test_notes_after_a_table_keep_names_whole():
    text = _render(with_notes(kv_table("t", [("a", "b")]), f"pictures in {RUN}/ood/20261207-170000"))
    assert "quickstart-20261207-163508/" in text and "20261207-170000" in text


def test_wrap_at_breaks_folds_only_names_longer_than_the_width():
    assert wrap_at_breaks("/a/bb/ccc/dddd", 6) == ["/a/bb/", "ccc/", "dddd"]
    assert wrap_at_breaks("/a/" + "x" * 12 + "/b", 6) == ["/a/", "xxxxxx", "xxxxxx", "/b"]
    assert wrap_at_breaks("ebmctl sample --run /r", 12) == ["ebmctl", "sample --run", "/r"]


def test_presets_list_shows_a_whole_sentence_per_preset(cli):
    doc = json.loads(cli("--json", "presets", "list").out)
    summaries = {p["name"]: p["summary"] for p in doc["presets"]}
    assert summaries["quickstart"] == ("Quickstart: ICD (paper 002: the KL and entropy terms, an augmented reservoir "
                                       "buffer, EMA) on the embedded shapes32 data with a small conv energy.")
    for name, summary in summaries.items():
        assert summary.endswith(".") and summary.count("(") == summary.count(")"), (name, summary)
    table = cli("presets", "list").out
    words = " ".join(line[50:].strip() for line in table.splitlines())
    assert "on the embedded shapes32 data with a small conv energy." in re.sub(r" +", " ", words)
