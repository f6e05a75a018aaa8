"""TensorFlow checkpoints are read without TensorFlow: every numeric tensor with its dtype and shape, string
entries listed and left, and damaged or unusual files refused in one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tf_bundle_writer import entry, write_bundle

from ebmctl.errors import CheckpointError, EbmctlError, RunError
from ebmctl.released.tf_bundle import bundle_prefix, read_bundle


def _tensors() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    out = {f"model/res_{i}/c1_pre": rng.normal(size=(3, 3, 4, 2 + i)).astype(np.float32) for i in range(7)}
    out |= {"model/fc/w": rng.normal(size=(8, 1)).astype(np.float64), "global_step": np.array(1200, np.int64),
            "model/empty": np.zeros((0, 3), np.float32), "counter": np.arange(5, dtype=np.int32)}
    return out


@pytest.mark.parametrize("shards", [1, 3])
def test_every_tensor_comes_back_with_its_dtype_and_shape(tmp_path, shards):
    tensors = _tensors()
    prefix = tmp_path / "model_1200"
    object_graph = entry(7, (), 0, 0, 0)  # a string tensor, as Keras' _CHECKPOINTABLE_OBJECT_GRAPH
    write_bundle(prefix, tensors, shards, extra={"_CHECKPOINTABLE_OBJECT_GRAPH": object_graph})
    bundle = read_bundle(prefix)
    assert sorted(bundle.tensors) == sorted(tensors)
    for name, want in tensors.items():
        got = bundle.tensors[name]
        assert got.dtype == torch.from_numpy(want).dtype and torch.equal(got, torch.from_numpy(want)), name
    assert bundle.skipped == ["_CHECKPOINTABLE_OBJECT_GRAPH (string)"]
    assert len(bundle.files) == 1 + shards


def test_the_prefix_is_found_from_the_index_a_shard_or_the_folder(tmp_path):
    prefix = tmp_path / "ebm_2000.ckpt"
    write_bundle(prefix, {"w": np.ones(2, np.float32)})
    for given in (prefix, tmp_path / "ebm_2000.ckpt.index", tmp_path / "ebm_2000.ckpt.data-00000-of-00001"):
        assert bundle_prefix(given) == prefix
    (tmp_path / "checkpoint").write_text('model_checkpoint_path: "ebm_2000.ckpt"\n'
                                         'all_model_checkpoint_paths: "ebm_2000.ckpt"\n')
    assert bundle_prefix(tmp_path) == prefix
    # TensorFlow 1 wrote the path as training saw it, relative to where it ran
    (tmp_path / "checkpoint").write_text('model_checkpoint_path: "cachedir/cifar10/ebm_2000.ckpt"\n')
    assert bundle_prefix(tmp_path) == prefix
    with pytest.raises(RunError, match="not a TensorFlow checkpoint"):
        bundle_prefix(tmp_path / "ebm_1000.ckpt")


@pytest.mark.parametrize(("damage", "expect"), [
    ("truncated data", "truncated or damaged"),
    ("missing data", "data are missing"),
    ("not an index", "no table footer"),
    ("big-endian", "big-endian"),
    ("partitioned", "slices"),
    ("compressed", "compressed blocks"),
    ("damaged record", "is damaged"),
])
def test_damaged_and_unusual_files_are_refused_in_one_line(tmp_path, damage, expect):
    prefix = tmp_path / "model_10"
    tensors = {"a": np.ones((4, 4), np.float32), "b": np.ones(3, np.float32)}
    write_bundle(prefix, tensors, big_endian=damage == "big-endian", sliced=("a",) if damage == "partitioned" else (),
                 compressed=damage == "compressed", extra={"c": b"\x09\x01"} if damage == "damaged record" else None)
    data = tmp_path / "model_10.data-00000-of-00001"
    if damage == "truncated data":
        data.write_bytes(data.read_bytes()[:40])
    elif damage == "missing data":
        data.unlink()
    elif damage == "not an index":
        (tmp_path / "model_10.index").write_bytes(b"\0" * 100)
    with pytest.raises(EbmctlError, match=expect) as caught:
        read_bundle(prefix)
    assert "\n" not in str(caught.value) and isinstance(caught.value, CheckpointError | RunError)
