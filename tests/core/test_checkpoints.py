"""Checkpoints: exact round trip, atomic writes, corrupt files as clear errors."""

from __future__ import annotations

import pytest
import torch

from ebmctl.checkpoints import atomic_path, load_tensors, read_meta, save_tensors
from ebmctl.errors import CheckpointError


def test_round_trip_is_exact(tmp_path):
    tensors = {"a": torch.randn(3, 4), "b": torch.arange(5, dtype=torch.uint8), "c": torch.tensor(2.5, dtype=torch.float64)}
    meta = {"spec": {"seed": 3, "nested": [1, 2.5, None]}, "step": 7}
    path = tmp_path / "x.safetensors"
    save_tensors(path, tensors, meta)
    loaded, loaded_meta = load_tensors(path)
    assert loaded_meta == meta and read_meta(path) == meta
    for k, v in tensors.items():
        assert torch.equal(loaded[k], v) and loaded[k].dtype == v.dtype


def test_atomic_write_leaves_the_old_file_when_interrupted(tmp_path):
    path = tmp_path / "x.safetensors"
    save_tensors(path, {"a": torch.zeros(2)}, {"v": 1})
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("killed")
    assert load_tensors(path)[1] == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["x.safetensors"], "no temporary file may be left behind"


@pytest.mark.parametrize("cut", [0, 5, 20, -10])
def test_truncated_or_garbage_files_raise_checkpoint_error(tmp_path, cut):
    path = tmp_path / "x.safetensors"
    save_tensors(path, {"a": torch.randn(100)}, {"v": 1})
    data = path.read_bytes()
    path.write_bytes(data[:cut] if cut else b"not a checkpoint at all")
    with pytest.raises(CheckpointError) as err:
        load_tensors(path)
    assert "\n" not in err.value.message


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError):
        load_tensors(tmp_path / "nope.safetensors")
