"""`ebmctl presets`: what presets exist and what each one sets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ebmctl.specs import preset_header, preset_names, preset_path, read_preset, resolve_spec, spec_to_json


@dataclass
class PresetSummary:
    name: str
    method: str
    data: str
    summary: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "method": self.method, "data": self.data, "summary": self.summary}


def list_presets() -> list[PresetSummary]:
    out = []
    for name in preset_names():
        tree = read_preset(name)
        header = preset_header(preset_path(name))
        method = tree.get("method", {})
        method = method if isinstance(method, str) else method.get("name", "icd")
        out.append(PresetSummary(name, method, tree.get("data", {}).get("name", "shapes32"), header[0] if header else ""))
    return out


def show_preset(name: str) -> dict[str, Any]:
    """The preset file as written and the full spec it resolves to."""
    path = preset_path(name)
    spec = spec_to_json(resolve_spec(name))  # first: a file that is not a valid preset fails in one line here
    return {"name": name, "path": str(path), "text": path.read_text(encoding="utf-8"), "spec": spec}
