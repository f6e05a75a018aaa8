"""Reading a released checkpoint safely: torch's weights-only unpickler, with only the harmless globals a format
names allowed. A file that needs anything else is refused in one line; nothing in it is run."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from ebmctl.errors import CheckpointError, RunError


def read_release(path: Path, allowed: Iterable[Any] = ()) -> Any:
    """The object ``torch.save`` wrote to ``path``, on the CPU; only tensors, plain containers and numbers, and
    the globals in ``allowed`` are rebuilt."""
    if not path.is_file():
        raise RunError(f"{path} does not exist", "give the checkpoint file the released training code wrote")
    try:
        with torch.serialization.safe_globals(list(allowed)):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch reports a refused global, a damaged zip and a non-checkpoint file alike
        text = str(exc)
        refused = re.search(r"GLOBAL ([\w.]+)", text)
        if refused:
            raise CheckpointError(f"{path} holds a {refused[1]} object, which ebmctl does not rebuild (it reads "
                                  "released checkpoints without running code from them)",
                                  "load it with the released code and save the state_dicts alone, e.g. "
                                  "torch.save({'ebm': ebm.state_dict()}, path)") from None
        first = (text.strip().splitlines() or [type(exc).__name__])[0][:160]
        raise CheckpointError(f"{path} is not a torch checkpoint this version of torch can read ({first})",
                              "pass the file torch.save wrote, unchanged") from None


def sha256(*paths: Path) -> tuple[str, dict[str, str]]:
    """The SHA-256 of the files' bytes one after the other (of the one file, for one), and each file's, in hex."""
    together, each = hashlib.sha256(), {}
    for path in paths:
        alone = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda handle=handle: handle.read(1 << 20), b""):
                together.update(block)
                alone.update(block)
        each[str(path)] = alone.hexdigest()
    return together.hexdigest(), each


def contents(doc: Any) -> str:
    """What a loaded file holds, for an error: its top-level keys, or its type."""
    return ", ".join(sorted(map(str, doc)))[:120] if isinstance(doc, dict) else type(doc).__name__


def state_dict(doc: Any, key: str, path: Path, what: str) -> dict[str, torch.Tensor]:
    """``doc[key]``, a state_dict of tensors; anything else is a one-line error naming the entry."""
    entry = doc.get(key) if isinstance(doc, dict) else None
    if not isinstance(entry, dict) or not entry or not all(isinstance(v, torch.Tensor) for v in entry.values()):
        raise CheckpointError(f"{path} has no {key!r} state_dict (found: {contents(doc)}): it is not {what}",
                              "pass the checkpoint file the released training code saved")
    return dict(entry)
