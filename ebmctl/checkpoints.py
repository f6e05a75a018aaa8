"""safetensors files with JSON metadata, written atomically. No pickle is ever loaded."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from ebmctl.errors import CheckpointError, RunError

META_KEY = "ebmctl"  # metadata entry holding the JSON document
DIGEST_KEY = "sha256"  # entry of that document: the digest of the file's tensors (absent in older files)


# Write failures the user can fix (space, quota, a read-only disk, permissions): a one-line RunError.
WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)


def write_error(path: Path, exc: OSError) -> RunError:
    """The RunError for a write of ``path`` that failed with one of WRITE_ERRNOS."""
    kept = "the previous file is intact" if Path(path).exists() else "nothing was written"
    if exc.errno == errno.ENOSPC:
        return RunError(f"disk full while writing {path}; {kept}", "free space or pass --runs-dir on another disk")
    if exc.errno == errno.EDQUOT:
        return RunError(f"disk quota exceeded while writing {path}; {kept}",
                        "free space or pass --runs-dir on another disk")
    if exc.errno == errno.EROFS:
        return RunError(f"read-only file system: cannot write {path}; {kept}", "pass --runs-dir on a writable disk")
    return RunError(f"permission denied writing {path}; {kept}",
                    "make the folder writable or pass --runs-dir with a folder you can write to")


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only if the block succeeds.

    Whatever happens, the temporary file is gone afterwards and ``path`` is either the old file or the new one;
    a full disk or an unwritable folder raises a RunError naming ``path``."""
    path = Path(path)
    tmp_path: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        tmp_path = Path(tmp)
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    except OSError as exc:
        if exc.errno not in WRITE_ERRNOS:
            raise
        raise write_error(path, exc) from exc
    finally:
        if tmp_path is not None:
            with suppress(OSError):
                tmp_path.unlink(missing_ok=True)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_with(path: Path, writer: Callable[[Path], Any]) -> None:
    """Let ``writer`` write a temporary file, then move it into place."""
    with atomic_path(path) as tmp:
        writer(tmp)


class TensorDigest:
    """SHA-256 over each tensor's bytes followed by its name, dtype and shape, tensor by tensor in name order. It
    is fed as the tensors are written (:mod:`ebmctl.samples_file` streams one) and checked on load, so a flipped
    bit that leaves a file readable and its values finite is still found."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()

    def update(self, tensor: torch.Tensor) -> None:
        """Add (more rows of) the current tensor's data."""
        self._hash.update(memoryview(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy()))

    def end_tensor(self, name: str, dtype: torch.dtype, shape: tuple[int, ...]) -> None:
        self._hash.update(f"\0{name}\0{dtype}\0{list(shape)}\n".encode())

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def tensors_digest(tensors: dict[str, torch.Tensor]) -> str:
    digest = TensorDigest()
    for name in sorted(tensors):
        digest.update(tensors[name])
        digest.end_tensor(name, tensors[name].dtype, tuple(tensors[name].shape))
    return digest.hexdigest()


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Save ``tensors`` and a JSON ``meta`` document (with the tensors' digest added) as one safetensors file,
    atomically."""
    clean = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    doc = {**meta, DIGEST_KEY: tensors_digest(clean)}
    blob = st_save(clean, metadata={META_KEY: json.dumps(doc, sort_keys=True)})
    write_bytes_atomic(path, blob)


# What parsing a damaged header or tensor table raises (deeply nested JSON: RecursionError).
LOAD_ERRORS = (SafetensorError, ValueError, OSError, TypeError, OverflowError, RecursionError)
MAX_HEADER = 100_000_000  # safetensors' own limit on the JSON header


def load_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Load a file written by :func:`save_tensors`. Corrupt or foreign files, and tensors that do not match the
    digest stored with them, raise CheckpointError (a file without a digest, from an older version, is accepted)."""
    path = Path(path)
    if not path.is_file():
        what = "is a directory, not a checkpoint file" if path.is_dir() else "does not exist"
        raise CheckpointError(f"{path} {what}", "check the path, or list runs with `ls` on the runs directory")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"cannot read {path} ({_short(exc)})", "check the file's permissions") from exc
    try:
        meta = _read_meta(data)  # the header first: a foreign file is named as such before its tensors are read
        tensors = st_load(data)
    except LOAD_ERRORS as exc:
        raise _unreadable(path, exc, data[:8]) from exc
    stored = meta.pop(DIGEST_KEY, None)
    if stored is not None and stored != tensors_digest(tensors):
        raise CheckpointError(f"{path} is damaged: its tensors no longer match the digest written with them",
                              "the file changed on disk or in a copy; restore it from a copy, or use another checkpoint")
    return tensors, meta


def read_meta(path: Path) -> dict[str, Any]:
    """Read only the metadata of a safetensors file (cheap: the header)."""
    path = Path(path)
    head = b""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
            n = int.from_bytes(head, "little")
            if len(head) < 8 or n <= 0 or n > MAX_HEADER:
                raise ValueError("bad header length")
            header = fh.read(n)
        if len(header) < n:
            raise ValueError("the header is cut short")
        meta = _meta_of_header(header)
        meta.pop(DIGEST_KEY, None)
        return meta
    except LOAD_ERRORS as exc:
        raise _unreadable(path, exc, head) from exc


def _read_meta(data: bytes) -> dict[str, Any]:
    n = int.from_bytes(data[:8], "little")
    if len(data) < 8 or n <= 0 or n > MAX_HEADER:
        raise ValueError("bad header length")
    if 8 + n > len(data):
        raise ValueError("the header is cut short")
    return _meta_of_header(data[8 : 8 + n])


def _meta_of_header(header: bytes) -> dict[str, Any]:
    """The JSON document under META_KEY of a safetensors header; ValueError unless it is a JSON object."""
    doc = json.loads(header)
    if not isinstance(doc, dict):
        raise ValueError("the header is not a JSON object")
    metadata = doc.get("__metadata__", {})
    if not isinstance(metadata, dict) or not isinstance(metadata.get(META_KEY, "{}"), str):
        raise ValueError("the metadata is not a table of strings")
    meta = json.loads(metadata.get(META_KEY, "{}"))
    if not isinstance(meta, dict):
        raise ValueError(f"the {META_KEY} metadata is not a JSON object")
    return meta


def _unreadable(path: Path, exc: BaseException, head: bytes) -> CheckpointError:
    """The error for a file that is not a safetensors file ebmctl can read; pickles are named, never opened."""
    if head.startswith(b"PK\x03\x04"):
        return CheckpointError(f"{path} is a zip archive (as torch.save writes), not a safetensors file",
                               "ebmctl never unpickles files; pass a .safetensors checkpoint written by ebmctl")
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return CheckpointError(f"{path} is a Python pickle, not a safetensors file",
                               "ebmctl never unpickles files; pass a .safetensors checkpoint written by ebmctl")
    return CheckpointError(f"{path} is not a readable safetensors file ({_short(exc)})",
                           "the file is corrupt or truncated; use another checkpoint or retrain")


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:120]
