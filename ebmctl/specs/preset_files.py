"""Preset files: TOML specs shipped in the package, found by name or path."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from ebmctl.errors import SpecError
from ebmctl.specs.explain import did_you_mean


def presets_dir() -> Path:
    """The folder of preset TOML files, shipped inside the package (the repository's presets/ points here)."""
    return Path(__file__).resolve().parent.parent / "presets"


def preset_names() -> list[str]:
    return sorted(p.stem for p in presets_dir().glob("*.toml"))


def preset_path(name_or_path: str) -> Path:
    """Resolve a preset name or a path to a TOML file."""
    if not name_or_path or "\x00" in name_or_path:
        raise SpecError(f"{name_or_path!r} is not a preset name or path", "list presets with `ebmctl presets list`")
    try:
        candidate = Path(name_or_path).expanduser()
    except RuntimeError:  # ~user of a user that does not exist
        raise SpecError(f"preset file {name_or_path} does not exist", "write the path without ~user") from None
    is_path = candidate.suffix == ".toml" or "/" in name_or_path
    path = presets_dir() / f"{name_or_path}.toml"
    if candidate.is_dir() and (is_path or not path.is_file()):
        raise SpecError(f"preset {name_or_path} is a directory, not a .toml file",
                        "give a preset name (list them with `ebmctl presets list`) or the path of a .toml file")
    if is_path:
        if not candidate.is_file():
            raise SpecError(f"preset file {name_or_path} does not exist", "give a preset name or a path to a .toml file")
        return candidate
    if not path.is_file():
        raise SpecError(f"unknown preset {name_or_path!r}", did_you_mean(name_or_path, preset_names()) +
                        " (list them with `ebmctl presets list`)")
    return path


def read_preset(name_or_path: str) -> dict[str, Any]:
    path = preset_path(name_or_path)
    try:
        tree = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"preset {path} is not valid TOML ({exc})", "fix the file's syntax") from None
    except UnicodeDecodeError:
        raise SpecError(f"preset {path} is not UTF-8 text", "a preset is a TOML file saved as UTF-8") from None
    except OSError as exc:
        raise SpecError(f"cannot read preset {path} ({exc.strerror or type(exc).__name__})",
                        "check the file's permissions") from None
    if not tree:
        raise SpecError(f"preset {path} sets nothing", "a preset sets at least one key, e.g. [method] name = \"icd\"; "
                        "see `ebmctl presets show quickstart`")
    return tree


def preset_header(path: Path) -> list[str]:
    """The comment lines a preset file opens with, without the leading '#'."""
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        lines.append(line[1:].strip())
    return lines


