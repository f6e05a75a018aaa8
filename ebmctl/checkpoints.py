"""safetensors files with JSON metadata, written atomically. No pickle is ever loaded."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from ebmctl.errors import CheckpointError

META_KEY = "ebmctl"  # metadata entry holding the JSON document


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes_atomic(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_with(path: Path, writer: Callable[[Path], Any]) -> None:
    """Let ``writer`` write a temporary file, then move it into place."""
    with atomic_path(path) as tmp:
        writer(tmp)


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Save ``tensors`` and a JSON ``meta`` document as one safetensors file, atomically."""
    clean = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    blob = st_save(clean, metadata={META_KEY: json.dumps(meta, sort_keys=True)})
    write_bytes_atomic(path, blob)


def load_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Load a file written by :func:`save_tensors`. Corrupt or foreign files raise CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no such file: {path}", "check the path, or list runs with `ls` on the runs directory")
    data = path.read_bytes()
    try:
        tensors = st_load(data)
        meta = _read_meta(data)
    except (SafetensorError, ValueError, OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(
            f"{path} is not a readable safetensors file ({_short(exc)})",
            "the file is corrupt or truncated; use another checkpoint or retrain",
        ) from exc
    return tensors, meta


def read_meta(path: Path) -> dict[str, Any]:
    """Read only the metadata of a safetensors file (cheap: the header)."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
            n = int.from_bytes(head, "little")
            if len(head) < 8 or n <= 0 or n > 100_000_000:
                raise ValueError("bad header length")
            header = fh.read(n)
        meta = json.loads(header).get("__metadata__", {})
        return json.loads(meta.get(META_KEY, "{}"))
    except (OSError, ValueError, json.JSONDecodeError) as exc:
        raise CheckpointError(
            f"{path} is not a readable safetensors file ({_short(exc)})",
            "the file is corrupt or truncated; use another checkpoint or retrain",
        ) from exc


def _read_meta(data: bytes) -> dict[str, Any]:
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    return json.loads(header.get("__metadata__", {}).get(META_KEY, "{}"))


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:120]
