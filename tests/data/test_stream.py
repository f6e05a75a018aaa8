"""BatchStream determinism and resumption, and to_float."""

from __future__ import annotations

import pytest
import torch

from ebmctl.data import BatchStream, DataInfo, load_dataset, to_float
from ebmctl.data.base import TensorImageDataset, TensorPointDataset
from ebmctl.errors import SpecError


def _indexed(n: int = 50) -> TensorPointDataset:
    """Points whose label is their index, so a batch tells which items it holds."""
    info = DataInfo("indexed", "points", "train", (2,))
    return TensorPointDataset(info, torch.randn(n, 2), torch.arange(n))


def _take(stream: BatchStream, k: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [next(stream) for _ in range(k)]


def test_resume_gives_the_same_batches():
    ds = _indexed(50)
    full = _take(BatchStream(ds, 16, seed=3), 7)  # 3 batches an epoch: crosses two epoch boundaries
    head = _take(BatchStream(ds, 16, seed=3), 3)
    tail = _take(BatchStream(ds, 16, seed=3, start_step=3), 4)
    for (x1, y1), (x2, y2) in zip(full, head + tail, strict=True):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)


def test_epochs_are_permutations_with_the_remainder_dropped():
    ds = _indexed(50)
    stream = BatchStream(ds, 16, seed=0)
    assert stream.batches_per_epoch == 3
    epochs = [torch.cat([y for _, y in _take(stream, 3)]) for _ in range(2)]
    for seen in epochs:
        assert len(seen) == 48 and len(seen.unique()) == 48
    assert not torch.equal(epochs[0], epochs[1])
    assert stream.step == 6


def test_seed_changes_the_order():
    ds = _indexed(50)
    a = next(BatchStream(ds, 10, seed=0))[1]
    b = next(BatchStream(ds, 10, seed=1))[1]
    assert not torch.equal(a, b)


def test_types_are_kept_and_labels_are_int64():
    images = load_dataset("digits", split="test")
    x, y = next(BatchStream(images, 8, seed=0))
    assert x.dtype == torch.uint8 and x.shape == (8, 1, 32, 32) and y.dtype == torch.long
    x, y = next(BatchStream(_indexed(), 8, seed=0))
    assert x.dtype == torch.float32 and y.dtype == torch.long


def test_workers_give_identical_batches_and_leave_the_global_rng_alone():
    ds = load_dataset("digits", split="test")
    plain = _take(BatchStream(ds, 32, seed=9, start_step=5), 12)
    state = torch.get_rng_state()
    stream = BatchStream(ds, 32, seed=9, start_step=5, workers=2)
    parallel = _take(stream, 12)
    stream.close()
    assert torch.equal(state, torch.get_rng_state())
    for (x1, y1), (x2, y2) in zip(plain, parallel, strict=True):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)


def test_workers_use_get_batch_of_lazy_datasets_too():
    class Lazy(TensorImageDataset):
        def get_batch(self, indices):  # the base class's item-by-item version
            return super(TensorImageDataset, self).get_batch(indices)

    images = torch.randint(0, 256, (20, 3, 4, 4), dtype=torch.uint8)
    ds = Lazy(DataInfo("lazy", "image", "train", (3, 4, 4)), images, torch.arange(20))
    stream = BatchStream(ds, 4, seed=1, workers=1)
    x, y = next(stream)
    stream.close()
    assert torch.equal(x, images[y])


def test_batch_larger_than_dataset_is_a_spec_error():
    with pytest.raises(SpecError) as info:
        BatchStream(_indexed(10), 11, seed=0)
    assert "train.batch_size" in info.value.hint
    with pytest.raises(SpecError):
        BatchStream(_indexed(10), 0, seed=0)


def test_to_float_without_dequantization():
    x = torch.tensor([0, 128, 255], dtype=torch.uint8)
    out = to_float(x, dequantize=False)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, torch.tensor([0.0, 128 / 255, 1.0]))


def test_to_float_dequantization_stays_in_the_pixel_bin():
    x = torch.randint(0, 256, (4096,), dtype=torch.uint8)
    out = to_float(x, dequantize=True, generator=torch.Generator().manual_seed(0))
    assert out.dtype == torch.float32 and out.min() >= 0 and out.max() < 1
    assert torch.equal(torch.floor(out * 256).to(torch.uint8), x)
    assert 0.4 < (out * 256 - x.float()).mean() < 0.6  # uniform noise inside the bin
    again = to_float(x, dequantize=True, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, again)


def test_to_float_passes_points_through():
    points = torch.randn(5, 2)
    assert to_float(points, dequantize=True) is points
    with pytest.raises(TypeError):
        to_float(torch.zeros(3, dtype=torch.int64), dequantize=False)


@pytest.mark.parametrize("workers", [0, 1])
def test_process_parts_of_a_batch_make_up_the_batch(workers):
    ds = _indexed(50)
    whole = _take(BatchStream(ds, 16, seed=3), 5)
    parts = [_take(BatchStream(ds, 16, seed=3, workers=workers, part=(r, 4)), 5) for r in range(4)]
    for step, (x, y) in enumerate(whole):
        assert torch.equal(torch.cat([p[step][0] for p in parts]), x)
        assert torch.equal(torch.cat([p[step][1] for p in parts]), y)
    resumed = _take(BatchStream(ds, 16, seed=3, start_step=3, part=(2, 4)), 2)
    assert all(torch.equal(a[1], b[1]) for a, b in zip(parts[2][3:], resumed, strict=True))


def test_a_batch_that_does_not_split_is_an_error():
    with pytest.raises(SpecError, match="does not split into 3 equal parts"):
        BatchStream(_indexed(50), 16, seed=0, part=(0, 3))
