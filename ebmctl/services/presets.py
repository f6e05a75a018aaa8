"""`ebmctl presets`: what presets exist and what each one sets."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ebmctl.recipes import resolve_spec, spec_to_json
from ebmctl.recipes.registry import DEFAULT_RECIPE
from ebmctl.specs import preset_header, preset_names, preset_path, read_preset


@dataclass
class PresetSummary:
    name: str
    method: str
    data: str
    summary: str
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "method": self.method, "data": self.data, "summary": self.summary,
                "description": self.description}


def list_presets() -> list[PresetSummary]:
    out = []
    for name in preset_names():
        tree = read_preset(name)
        header = preset_header(preset_path(name))
        method = tree.get("method", {})
        method = method if isinstance(method, str) else method.get("name", DEFAULT_RECIPE.name)
        sentence = first_sentence(header)
        out.append(PresetSummary(name, method, tree.get("data", {}).get("name", "shapes32"), summary_of(sentence),
                                 sentence))
    return out


def first_sentence(lines: list[str]) -> str:
    """The first sentence of a preset's header comment, however many lines it spans: up to the first '.' that
    ends the text or is followed by a space and a capital letter, outside parentheses (so "et al. 2021" and
    "(FID 25.1, ...)" do not end it)."""
    text = " ".join(line.strip() for line in lines if line.strip())
    depth = 0
    for i, ch in enumerate(text):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch == "." and depth <= 0 and (i + 1 == len(text) or re.match(r" +[A-Z]", text[i + 1 :])):
            return text[: i + 1]
    return text


def summary_of(sentence: str, shortest: int = 20) -> str:
    """What a preset is, in one short sentence: the header's first sentence up to its first ':' or ';' outside
    parentheses that leaves at least ``shortest`` characters (the details after it are for `presets show`)."""
    depth = 0
    for i, ch in enumerate(sentence):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch in ":;" and depth <= 0 and i >= shortest:
            return sentence[:i].rstrip(" ,") + "."
    return sentence


def show_preset(name: str) -> dict[str, Any]:
    """The preset file as written and the full spec it resolves to."""
    path = preset_path(name)
    spec = spec_to_json(resolve_spec(name))  # first: a file that is not a valid preset fails in one line here
    return {"name": name, "path": str(path), "text": path.read_text(encoding="utf-8"), "spec": spec}
