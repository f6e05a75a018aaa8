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


def _flip_a_data_bit(path, from_end: int = 3) -> None:
    data = bytearray(path.read_bytes())
    data[-from_end] ^= 0x01  # in the tensor bytes: the file stays readable and every value finite
    path.write_bytes(bytes(data))


def test_a_flipped_bit_is_found_and_the_file_named(tmp_path):
    path = tmp_path / "model.safetensors"
    save_tensors(path, {"w": torch.full((64,), 0.5), "b": torch.zeros(3)}, {"step": 4})
    _flip_a_data_bit(path)
    from safetensors.torch import load_file

    assert torch.isfinite(load_file(str(path))["w"]).all()  # nothing but the digest can tell
    with pytest.raises(CheckpointError) as err:
        load_tensors(path)
    assert str(path) in err.value.message and "damaged" in err.value.message and "\n" not in str(err.value)


def test_a_file_without_a_digest_still_loads(tmp_path):
    """Files written before digests were stored load as they always did."""
    import json

    from safetensors.torch import save as st_save

    from ebmctl.checkpoints import META_KEY

    path = tmp_path / "old.safetensors"
    path.write_bytes(st_save({"w": torch.ones(3)}, metadata={META_KEY: json.dumps({"step": 2})}))
    tensors, meta = load_tensors(path)
    assert meta == {"step": 2} and torch.equal(tensors["w"], torch.ones(3))


def test_the_digest_covers_names_dtypes_and_shapes():
    from ebmctl.checkpoints import tensors_digest

    x = torch.arange(6, dtype=torch.float32)
    base = tensors_digest({"a": x})
    assert base == tensors_digest({"a": x.clone()})
    assert len({base, tensors_digest({"b": x}), tensors_digest({"a": x.view(2, 3)}),
                tensors_digest({"a": x.view(torch.int32)})}) == 4
