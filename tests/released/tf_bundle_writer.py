"""Writes TensorFlow tensor bundles the way TensorFlow's BundleWriter lays them out (a LevelDB table of
BundleEntryProto records, data shards of raw bytes), so the reader's corners can be tested without TensorFlow."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

DTYPES = {np.dtype("float32"): 1, np.dtype("float64"): 2, np.dtype("int32"): 3, np.dtype("int64"): 9}


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(number: int, value: int | bytes) -> bytes:
    if isinstance(value, bytes):
        return varint(number << 3 | 2) + varint(len(value)) + value
    return varint(number << 3) + varint(value)


def entry(dtype: int, shape: tuple[int, ...], shard: int, offset: int, size: int, sliced: bool = False) -> bytes:
    dims = b"".join(field(2, field(1, d)) for d in shape)
    return (field(1, dtype) + field(2, dims) + (field(3, shard) if shard else b"") + field(4, offset)
            + field(5, size) + varint(6 << 3 | 5) + b"\0\0\0\0" + (field(7, b"") if sliced else b""))


def block(items: list[tuple[bytes, bytes]], restart_every: int = 4) -> bytes:
    out, restarts, last = bytearray(), [], b""
    for i, (key, value) in enumerate(items):
        shared = 0
        if i % restart_every:
            while shared < min(len(key), len(last)) and key[shared] == last[shared]:
                shared += 1
        else:
            restarts.append(len(out))
        out += varint(shared) + varint(len(key) - shared) + varint(len(value)) + key[shared:] + value
        last = key
    return bytes(out) + b"".join(struct.pack("<I", r) for r in restarts) + struct.pack("<I", len(restarts))


def table(items: list[tuple[bytes, bytes]], per_block: int = 3, compressed: bool = False) -> bytes:
    out, index = bytearray(), []
    for start in range(0, len(items), per_block):
        chunk = items[start:start + per_block]
        data = block(chunk)
        index.append((chunk[-1][0], varint(len(out)) + varint(len(data))))
        out += data + (b"\1" if compressed else b"\0") + b"\0\0\0\0"
    meta = block([])
    meta_handle = varint(len(out)) + varint(len(meta))
    out += meta + b"\0\0\0\0\0"
    index_block = block(index)
    index_handle = varint(len(out)) + varint(len(index_block))
    out += index_block + b"\0\0\0\0\0"
    handles = meta_handle + index_handle
    return bytes(out) + handles + b"\0" * (40 - len(handles)) + struct.pack("<Q", 0xDB4775248B80FB57)


def write_bundle(prefix: Path, tensors: dict[str, np.ndarray], shards: int = 1, *, extra: dict[str, bytes] | None = None,
                 big_endian: bool = False, sliced: tuple[str, ...] = (), compressed: bool = False) -> None:
    """``tensors`` (TF layout) at ``prefix``, spread round-robin over ``shards`` data files; ``extra`` adds raw
    index entries (e.g. a string tensor's)."""
    data = [bytearray() for _ in range(shards)]
    items = [(b"", field(1, shards) + (field(2, 1) if big_endian else b""))]
    for i, (name, array) in enumerate(sorted(tensors.items())):
        raw = np.ascontiguousarray(array).tobytes()
        shard = i % shards
        items.append((name.encode(), entry(DTYPES[array.dtype], array.shape, shard, len(data[shard]), len(raw),
                                           name in sliced)))
        data[shard] += raw
    items += [(k.encode(), v) for k, v in (extra or {}).items()]
    items.sort()
    prefix.with_name(prefix.name + ".index").write_bytes(table(items, compressed=compressed))
    for shard, raw in enumerate(data):
        prefix.with_name(f"{prefix.name}.data-{shard:05d}-of-{shards:05d}").write_bytes(bytes(raw))
