"""What an importer of a released format returns, and the checks every importer shares."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ebmctl.errors import CheckpointError


@dataclass
class Imported:
    """A released checkpoint as an ebmctl run: the preset and the settings read from the file's shapes, the
    weights under ebmctl's keys, and what of the release was used or left out."""

    preset: str
    overrides: list[str]
    weights: dict[str, torch.Tensor]
    step: int = 0
    used: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    companions: list[Path] = field(default_factory=list)  # other files the weights came from (hashed with it)
    chains: torch.Tensor | None = None  # the release's replay buffer: its chains, in the method's pixel range


def step_in_name(source: Path, pattern: str) -> int:
    """The training step a released file's name carries (``pattern``'s one group), or 0."""
    found = re.fullmatch(pattern, source.name)
    return int(found[1]) if found else 0


def renamed(tensors: dict[str, torch.Tensor], renames: list[tuple[str, str]], source: str) -> dict[str, torch.Tensor]:
    """``tensors`` with each key's first matching prefix replaced; a key no prefix matches is a one-line error."""
    out = {}
    for key, value in tensors.items():
        new = next((to + key[len(frm):] for frm, to in renames if key.startswith(frm)), None)
        if new is None:
            raise CheckpointError(f"{source} holds {key}, which the released architecture does not have",
                                  "pass a checkpoint of the released code, unmodified")
        out[new] = value.detach().to(torch.float32) if value.is_floating_point() else value.detach()
    return out


def shape_of(tensors: dict[str, torch.Tensor], key: str, source: str) -> tuple[int, ...]:
    if key not in tensors:
        raise CheckpointError(f"{source} has no {key}", "pass a checkpoint of the released code, unmodified")
    return tuple(tensors[key].shape)


def as_list(values: Any) -> str:
    """A TOML list for --set."""
    return "[" + ",".join(str(v) for v in values) + "]"
