"""One tensor streamed to a safetensors file batch by batch: memory stays at one batch, whatever the total.

A safetensors file is an 8-byte little-endian header length, a JSON header ``{name: {dtype, shape,
data_offsets}, "__metadata__": {...}}`` padded with spaces to a multiple of 8, then the raw little-endian
bytes. With the number of rows known in advance, the header is written with the first batch (which gives
the trailing shape and the dtype) and the rows are appended as they come, into a temporary file that is
renamed into place only once every row is there (:func:`ebmctl.checkpoints.atomic_path`), or once a stopped
stream has ended the tensor at the rows it has. The file is the one :func:`ebmctl.checkpoints.save_tensors`
would write for the whole tensor, byte for byte, digest included.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import torch
from safetensors import safe_open

from ebmctl.checkpoints import DIGEST_KEY, META_KEY, TensorDigest, atomic_path

DTYPES = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
    torch.bool: "BOOL",
}  # fmt: skip


def header_bytes(name: str, dtype: torch.dtype, shape: tuple[int, ...], meta: dict[str, str], size: int = 0) -> bytes:
    """The length prefix and padded JSON header of a file holding one tensor ``name`` (padded with spaces to at
    least ``size`` bytes in all, when given)."""
    if dtype not in DTYPES:
        raise ValueError(f"cannot stream {dtype} tensors")
    nbytes = math.prod(shape) * torch.empty((), dtype=dtype).element_size()
    doc = {"__metadata__": meta, name: {"dtype": DTYPES[dtype], "shape": list(shape), "data_offsets": [0, nbytes]}}
    raw = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    raw += b" " * max(-len(raw) % 8, size - 8 - len(raw))
    return len(raw).to_bytes(8, "little") + raw


class StreamingTensorWriter:
    """Appends the rows of one ``(n, ...)`` tensor to an open file; made by :func:`streaming_tensor_file`.

    The header goes first with a placeholder for the tensors' digest of the same length; the digest is computed as
    the rows pass and written over the placeholder at the end."""

    def __init__(self, fh: IO[bytes], name: str, n: int, meta: dict[str, Any]) -> None:
        if n < 1:
            raise ValueError("a streamed tensor needs at least one row")
        self.fh, self.name, self.n = fh, name, n
        self.doc = json.loads(json.dumps(meta))  # fixed now: later changes to ``meta`` are not saved
        self.digest = TensorDigest()
        self.written = 0
        self.row_shape: tuple[int, ...] | None = None
        self.dtype: torch.dtype | None = None
        self.header_size = 0
        self.sealed = False

    def write(self, batch: torch.Tensor) -> None:
        """Append ``batch`` (rows of the tensor, in order); the first batch fixes the row shape and dtype."""
        batch = batch.detach().to("cpu").contiguous()
        if batch.dim() < 1 or len(batch) == 0:
            raise ValueError("a batch needs at least one row")
        if self.row_shape is None:
            self.row_shape, self.dtype = tuple(batch.shape[1:]), batch.dtype
            header = self._header(self.n, "0" * 64)
            self.header_size = len(header)
            self.fh.write(header)
        elif tuple(batch.shape[1:]) != self.row_shape or batch.dtype != self.dtype:
            raise ValueError(f"batch of {batch.dtype} {tuple(batch.shape[1:])} after {self.dtype} {self.row_shape}")
        if self.written + len(batch) > self.n:
            raise ValueError(f"{self.written + len(batch)} rows written to a tensor of {self.n}")
        self.fh.write(memoryview(batch.reshape(-1).view(torch.uint8).numpy()))  # the host's order: little-endian
        self.digest.update(batch)
        self.written += len(batch)

    def keep_written(self, meta: dict[str, Any] | None = None) -> int:
        """End the tensor at the rows written so far (a stopped stream keeps its finished batches), with ``meta``
        (when given) in place of the metadata the stream began with; their number."""
        if self.written == 0:
            raise ValueError("no rows were written")
        if meta is not None:
            self.doc = json.loads(json.dumps(meta))
        self.n = self.written
        self._seal()
        return self.written

    def finish(self) -> None:
        if self.written != self.n:
            raise ValueError(f"{self.written} of {self.n} rows were written to {self.name}")
        self._seal()

    def _header(self, n: int, digest: str) -> bytes:
        assert self.row_shape is not None and self.dtype is not None
        meta = {META_KEY: json.dumps({**self.doc, DIGEST_KEY: digest}, sort_keys=True)}
        return header_bytes(self.name, self.dtype, (n, *self.row_shape), meta, self.header_size)

    def _seal(self) -> None:
        """Write the final header over the first one: spaces pad a shorter one to its length; a longer one (new
        metadata) moves the rows up first."""
        if self.sealed:
            return
        assert self.row_shape is not None and self.dtype is not None
        self.digest.end_tensor(self.name, self.dtype, (self.n, *self.row_shape))
        header = self._header(self.n, self.digest.hexdigest())
        row_bytes = math.prod(self.row_shape) * torch.empty((), dtype=self.dtype).element_size()
        if len(header) > self.header_size:
            self._move_rows(len(header) - self.header_size, self.n * row_bytes)
            self.header_size = len(header)
        self.fh.seek(0)
        self.fh.write(header)
        self.fh.truncate(self.header_size + self.n * row_bytes)
        self.fh.seek(0, 2)
        self.sealed = True

    move_chunk = 1 << 24  # bytes read at a time when rows move

    def _move_rows(self, by: int, nbytes: int) -> None:
        """Move the first ``nbytes`` bytes of rows ``by`` bytes further into the file, last chunk first."""
        end = nbytes
        while end > 0:
            start = max(0, end - self.move_chunk)
            self.fh.seek(self.header_size + start)
            data = self.fh.read(end - start)
            self.fh.seek(self.header_size + start + by)
            self.fh.write(data)
            end = start


@contextmanager
def streaming_tensor_file(path: Path, name: str, n: int, meta: dict[str, Any]) -> Iterator[StreamingTensorWriter]:
    """Stream the ``n`` rows of tensor ``name`` into ``path``, which appears only if the block ends normally
    with all ``n`` rows written; a failure leaves the previous file (if any) and no temporary file."""
    with atomic_path(Path(path)) as tmp, open(tmp, "w+b") as fh:
        writer = StreamingTensorWriter(fh, name, n, meta)
        yield writer
        writer.finish()


def iter_rows(path: Path, name: str, batch: int) -> Iterator[torch.Tensor]:
    """Read tensor ``name`` of a safetensors file back ``batch`` rows at a time (memory: one batch)."""
    with safe_open(str(path), framework="pt") as fh:
        part = fh.get_slice(name)
        total = part.get_shape()[0]
        for start in range(0, total, batch):
            yield part[start : min(start + batch, total)]
