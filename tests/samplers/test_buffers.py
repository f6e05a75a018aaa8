"""Replay buffers: FIFO order, reservoir uniformity, uint8 round trip, state round trip."""

from __future__ import annotations

import pytest
import torch

from ebmctl.samplers.buffers import FifoBuffer, ReservoirBuffer, make_buffer


def test_fifo_replaces_the_oldest():
    buf = FifoBuffer(4, quantize=False)
    buf.add(torch.arange(3, dtype=torch.float32).view(3, 1))
    buf.add(torch.arange(3, 6, dtype=torch.float32).view(3, 1))
    assert len(buf) == 4 and buf.seen == 6
    # slots: 0..3 got 0,1,2,3 then 4,5 overwrote slots 0,1
    assert buf.storage.view(-1).tolist() == [4.0, 5.0, 2.0, 3.0]
    buf.add(torch.arange(10, 16, dtype=torch.float32).view(6, 1))  # more than capacity: only the last 4 stay
    assert sorted(buf.storage.view(-1).tolist()) == [12.0, 13.0, 14.0, 15.0]


def test_reservoir_keeps_a_uniform_sample_of_everything_seen():
    torch.manual_seed(0)
    counts = torch.zeros(100)
    for _ in range(300):
        buf = ReservoirBuffer(10, quantize=False)
        for start in range(0, 100, 20):
            buf.add(torch.arange(start, start + 20, dtype=torch.float32).view(20, 1))
        assert len(buf) == 10 and buf.seen == 100
        counts[buf.storage.view(-1).long()] += 1
    # Each of the 100 items should survive with probability 10/100: 30 of 300 trials.
    early, late = counts[:50].mean().item(), counts[50:].mean().item()
    assert abs(early - 30) < 4 and abs(late - 30) < 4
    assert counts.min() > 10 and counts.max() < 55


def test_uint8_round_trip_is_exact_and_does_not_drift():
    buf = FifoBuffer(8, quantize=True)
    x = torch.rand(8, 3, 4, 4)
    buf.add(x)
    first = buf.storage.clone()
    assert torch.equal(first.float(), (x * 256).floor().clamp(0, 255))
    for seed in range(20):  # decode (with fresh dequantisation noise) and store again, many times
        y = buf._decode(buf.storage, torch.Generator().manual_seed(seed))
        assert y.min() >= 0 and y.max() <= 1
        assert (y - x).abs().max() <= 1 / 256 + 1e-6
        buf = FifoBuffer(8, quantize=True)
        buf.add(y)
    assert torch.equal(buf.storage, first)


def test_state_round_trip_and_policy_check():
    buf = ReservoirBuffer(5, quantize=True)
    buf.add(torch.rand(7, 1, 2, 2))
    tensors, meta = buf.state_tensors(), buf.state_meta()
    other = ReservoirBuffer(5, quantize=True)
    other.load_state(tensors, meta)
    assert torch.equal(other.storage, buf.storage) and other.seen == 7 and len(other) == 5
    fifo = FifoBuffer(5)
    try:
        fifo.load_state(tensors, meta)
    except ValueError as exc:
        assert "reservoir" in str(exc)
    else:
        raise AssertionError("loading a reservoir into a FIFO buffer must fail")


def test_make_buffer_none_policy():
    assert make_buffer("none", 10) is None
    assert isinstance(make_buffer("fifo", 10), FifoBuffer)


def test_fill_with_holds_exactly_the_given_chains_as_the_buffer_stores_them():
    chains = torch.rand(6, 1, 2, 2) * 2 - 1
    slots = make_buffer("slots", 6, quantize=False, value_range=(-1.0, 1.0))
    slots.fill_with(chains)
    assert torch.equal(slots.storage, chains) and slots.visits.tolist() == [0] * 6 and len(slots) == slots.seen == 6
    quantised = make_buffer("fifo", 6, quantize=True, value_range=(-1.0, 1.0))
    quantised.fill_with(chains)
    assert quantised.storage.dtype == torch.uint8
    assert torch.equal(quantised.storage, ((chains + 1) / 2 * 256).floor().clamp(0, 255).to(torch.uint8))
    with pytest.raises(ValueError, match="5 chains for a buffer of 6"):
        quantised.fill_with(chains[:5])
