"""The one precedence mechanism of run specs, as dict plumbing: field defaults < a method's defaults < preset <
``--set`` < a command's dedicated options. Every layer is a nested dict merged onto the one below."""

from __future__ import annotations

import copy
import tomllib
from typing import Any

from ebmctl.errors import SpecError

NAMED_SECTIONS = ("method", "net")  # sections picked by their ``name``: ``method = "icd"`` is short for [method]


def deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """Merge ``top`` into a copy of ``base``; nested dicts merge, everything else is replaced.

    A section whose ``name`` changes (another net or method) is replaced whole, not merged.
    """
    out = copy.deepcopy(base)
    for key, value in top.items():
        old = out.get(key)
        if isinstance(value, dict) and isinstance(old, dict):
            if "name" in value and "name" in old and value["name"] != old["name"]:
                out[key] = copy.deepcopy(value)
            else:
                out[key] = deep_merge(old, value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def set_path(tree: dict[str, Any], path: str, value: Any) -> None:
    """Set ``a.b.c`` in a nested dict, creating sections on the way."""
    keys = path.split(".")
    node = tree
    for key in keys[:-1]:
        child = node.get(key)
        if isinstance(child, str) and key in NAMED_SECTIONS:
            child = {"name": child}
        if not isinstance(child, dict):
            child = {}
        node[key] = child
        node = child
    node[keys[-1]] = value


def parse_literal(text: str) -> Any:
    """Parse a ``--set`` value as a TOML literal (never evaluated); a bare word stays a string."""
    if "\n" in text or "\r" in text:  # TOML would read a second line as another key, and it would be lost
        raise SpecError(f"the value {text!r} spans several lines", "give each key its own --set")
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        if any(c in text for c in "[]{}\"'") or text.strip() != text or text == "":
            raise SpecError(
                f"cannot parse the value {text!r} as a TOML literal",
                'quote strings with spaces, e.g. --set data.root="/my data"; lists look like [0.0, 1.0]',
            ) from None
        return text


def parse_override(item: str) -> tuple[str, Any]:
    """Split ``a.b=c`` into its path and parsed value."""
    if "=" not in item:
        raise SpecError(f"--set {item!r} has no '='", "write --set key.path=value, e.g. --set train.steps=500")
    path, _, raw = item.partition("=")
    path = path.strip()
    if not path or any(not part.isidentifier() for part in path.split(".")):
        raise SpecError(f"--set {item!r}: {path!r} is not a key path", "keys look like train.steps or sampler.noise")
    return path, parse_literal(raw.strip())



def nones(value: Any) -> Any:
    """TOML has no null: the string "none" stands for None (e.g. --set train.ema=none)."""
    if isinstance(value, dict):
        return {k: nones(v) for k, v in value.items()}
    if isinstance(value, str) and value.lower() == "none":
        return None
    return value



def expand_names(tree: dict[str, Any]) -> dict[str, Any]:
    """``method = "icd"`` as ``[method] name = "icd"`` (same for net), at the top of ``tree``."""
    return {k: {"name": v} if k in NAMED_SECTIONS and isinstance(v, str) else v for k, v in tree.items()}


def layered(base: dict[str, Any], overrides: list[str] | tuple[str, ...] = (),
            extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """``base`` (a preset's tree) with ``--set key.path=value`` strings on top, then a command's dedicated
    options (``{"key.path": value}``, highest precedence)."""
    tree = copy.deepcopy(base)
    for item in overrides:
        path, value = parse_override(item)
        set_path(tree, path, value)
    for path, value in (extra or {}).items():
        set_path(tree, path, value)
    return expand_names(tree)
