"""Reading a TensorFlow checkpoint (a tensor bundle) without TensorFlow.

``tf.train.Saver`` and Keras ``save_weights`` write ``<prefix>.index`` and ``<prefix>.data-NNNNN-of-MMMMM``. The
index is a LevelDB table (uncompressed blocks of prefix-compressed keys, a block index and a 48-byte footer) that
maps each variable's name to a ``BundleEntryProto``: its dtype, shape, shard, offset and size. Under the empty
key sits a ``BundleHeaderProto`` with the shard count and byte order. The data shards hold the raw bytes. Only
numbers are read; string tensors (Keras' object graph) are listed and left."""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import torch

from ebmctl.errors import CheckpointError, RunError

MAGIC = 0xDB4775248B80FB57
FOOTER = 48
DTYPES = {1: torch.float32, 2: torch.float64, 3: torch.int32, 4: torch.uint8, 5: torch.int16, 6: torch.int8,
          9: torch.int64, 10: torch.bool, 14: torch.bfloat16, 19: torch.float16}
NAMES = {7: "string", 20: "resource", 21: "variant"}
HINT = "pass the checkpoint's prefix (e.g. model_1000 or ebm_1000.ckpt) or its .index file, with its .data file beside it"


@dataclass
class Bundle:
    """A checkpoint's numeric tensors in TensorFlow's layout (convs HWIO, dense (in, out)), by variable name."""

    prefix: Path
    tensors: dict[str, torch.Tensor]
    skipped: list[str] = field(default_factory=list)  # non-numeric entries, as "name (dtype)"
    files: list[Path] = field(default_factory=list)


def bundle_prefix(path: Path) -> Path:
    """The bundle a user's path names: the prefix itself, its ``.index`` or a ``.data`` shard, or a folder whose
    ``checkpoint`` file names the latest one."""
    if path.is_dir():
        state = path / "checkpoint"
        found = re.search(r'^model_checkpoint_path:\s*"(.+)"', state.read_text(errors="replace"), re.M) \
            if state.is_file() else None
        if not found:
            raise RunError(f"{path} is a folder without a TensorFlow 'checkpoint' file naming a checkpoint", HINT)
        named = Path(found[1])
        path = named if named.is_absolute() else path / named
        if not path.with_name(path.name + ".index").is_file():  # a path relative to where training ran
            path = state.parent / named.name
    name = re.sub(r"\.(index|data-\d{5}-of-\d{5})$", "", path.name)
    prefix = path.with_name(name)
    if not prefix.with_name(name + ".index").is_file():
        raise RunError(f"{prefix.with_name(name + '.index')} does not exist: {path} is not a TensorFlow checkpoint",
                       HINT)
    return prefix


def read_bundle(path: Path) -> Bundle:
    """Every numeric tensor of the TensorFlow checkpoint ``path`` names, on the CPU."""
    prefix = bundle_prefix(path)
    index = prefix.with_name(prefix.name + ".index")
    shards, entries = _entries(index)
    bundle = Bundle(prefix, {}, files=[index])
    handles: dict[int, BinaryIO] = {}
    try:
        for name, (dtype, shape, shard, offset, size, sliced) in entries.items():
            if dtype not in DTYPES:
                bundle.skipped.append(f"{name} ({NAMES.get(dtype, f'dtype {dtype}')})")
                continue
            if sliced:
                raise CheckpointError(f"{index} stores {name} in slices (a partitioned variable), which ebmctl does "
                                      "not join", "re-save it unpartitioned")
            data = prefix.with_name(f"{prefix.name}.data-{shard:05d}-of-{shards:05d}")
            if shard not in handles:
                if not data.is_file():
                    raise RunError(f"{data} does not exist: the checkpoint's data are missing", HINT)
                handles[shard] = data.open("rb")
                bundle.files.append(data)
            bundle.tensors[name] = _tensor(handles[shard], data, name, DTYPES[dtype], shape, offset, size)
    finally:
        for handle in handles.values():
            handle.close()
    return bundle


def _entries(index: Path) -> tuple[int, dict[str, tuple[int, list[int], int, int, int, bool]]]:
    """The shard count and, by name, each entry's (dtype, shape, shard, offset, size, sliced)."""
    try:
        entries = dict(_table(index.read_bytes(), index))
        if b"" not in entries:
            raise CheckpointError(f"{index} has no bundle header: it is not a TensorFlow checkpoint index", HINT)
        header = _message(entries.pop(b""))
        if header.get(2, 0) != 0:
            raise CheckpointError(f"{index} was written on a big-endian machine, which ebmctl does not read",
                                  "re-save the checkpoint on a little-endian machine")
        out = {}
        for key, value in entries.items():
            entry = _message(value)
            out[key.decode("utf-8", errors="replace")] = (
                entry.get(1, 0), _shape(entry.get(2, b"")), entry.get(3, 0), entry.get(4, 0), entry.get(5, 0),
                7 in entry)
        return header.get(1, 1), out
    except (struct.error, IndexError, TypeError) as exc:  # a record cut short or of the wrong kind
        raise CheckpointError(f"{index} is damaged ({type(exc).__name__}: {exc})", "copy the checkpoint again") from None


def _tensor(handle: BinaryIO, data: Path, name: str, dtype: torch.dtype, shape: list[int], offset: int,
            size: int) -> torch.Tensor:
    count = 1
    for dim in shape:
        count *= dim
    want = count * torch.empty((), dtype=dtype).element_size()
    raw = torch.empty(size if size == want else 0, dtype=torch.uint8)
    handle.seek(offset)
    got = handle.readinto(raw.numpy()) if size else 0
    if size != want or got != size:
        raise CheckpointError(f"{data} holds {got} bytes of {name} where its shape {shape} needs {want}: the "
                              "file is truncated or damaged", "copy the checkpoint again")
    return raw.view(dtype).reshape(shape)


# ----------------------------------------------------------------------------------------------- the table


def _table(buf: bytes, where: Path) -> Iterator[tuple[bytes, bytes]]:
    """The (key, value) entries of a LevelDB table, in order."""
    if len(buf) < FOOTER or struct.unpack_from("<Q", buf, len(buf) - 8)[0] != MAGIC:
        raise CheckpointError(f"{where} is not a TensorFlow checkpoint index (no table footer)", HINT)
    footer = buf[len(buf) - FOOTER:]
    pos = 0
    for _ in range(2):  # the metaindex handle, then the index handle
        offset, pos = _varint(footer, pos)
        size, pos = _varint(footer, pos)
    for _, handle in _block(_block_at(buf, offset, size, where), where):
        data_offset, at = _varint(handle, 0)
        data_size, _ = _varint(handle, at)
        yield from _block(_block_at(buf, data_offset, data_size, where), where)


def _block_at(buf: bytes, offset: int, size: int, where: Path) -> bytes:
    if offset + size + 5 > len(buf):
        raise CheckpointError(f"{where} is truncated (a block runs past its end)", "copy the checkpoint again")
    if buf[offset + size] != 0:
        raise CheckpointError(f"{where} has compressed blocks, which TensorFlow's checkpoints do not use", HINT)
    return buf[offset:offset + size]


def _block(block: bytes, where: Path) -> Iterator[tuple[bytes, bytes]]:
    """A block's entries: each key shares a prefix with the one before; restart offsets end the block."""
    if len(block) < 4:
        raise CheckpointError(f"{where} has a damaged block", "copy the checkpoint again")
    restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    end = len(block) - 4 - 4 * restarts
    pos, key = 0, b""
    while pos < end:
        shared, pos = _varint(block, pos)
        unshared, pos = _varint(block, pos)
        length, pos = _varint(block, pos)
        key = key[:shared] + block[pos:pos + unshared]
        pos += unshared
        yield key, block[pos:pos + length]
        pos += length


# ------------------------------------------------------------------------------------------ the protos


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf):
            raise CheckpointError("a TensorFlow checkpoint index ends inside a number: it is damaged",
                                  "copy the checkpoint again")
        byte = buf[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if byte < 0x80:
            return value, pos
        shift += 7


def _message(buf: bytes) -> dict[int, int | bytes]:
    """A protobuf message's fields by number (the last value of a repeated field; the fields read are single)."""
    out: dict[int, int | bytes] = {}
    pos = 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            out[number], pos = _varint(buf, pos)
        elif wire == 1:
            out[number], pos = struct.unpack_from("<Q", buf, pos)[0], pos + 8
        elif wire == 5:
            out[number], pos = struct.unpack_from("<I", buf, pos)[0], pos + 4
        elif wire == 2:
            length, pos = _varint(buf, pos)
            out[number], pos = buf[pos:pos + length], pos + length
        else:
            raise CheckpointError(f"a TensorFlow checkpoint index holds a field of wire type {wire}: it is damaged",
                                  "copy the checkpoint again")
    return out


def _shape(buf: bytes) -> list[int]:
    """A TensorShapeProto's dims (field 2, each a Dim whose field 1 is the size)."""
    dims, pos = [], 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        if tag & 7 == 2:
            length, pos = _varint(buf, pos)
            if tag >> 3 == 2:
                dims.append(_message(buf[pos:pos + length]).get(1, 0))
            pos += length
        elif tag & 7 == 0:
            _, pos = _varint(buf, pos)
        else:
            raise CheckpointError("a TensorFlow checkpoint index holds a damaged shape", "copy the checkpoint again")
    return dims
