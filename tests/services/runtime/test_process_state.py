"""The pieces of data-parallel training that need no second process: shares of sizes, the state layout of a
run trained on several processes, the batch and device checks, the environment."""

from __future__ import annotations

import pytest
import torch

from ebmctl.errors import SpecError, UsageError
from ebmctl.methods.replication import Replicas
from ebmctl.recipes import resolve_spec
from ebmctl.services.runtime.distributed.environment import launched, process_device
from ebmctl.services.runtime.distributed.processes import check_batches, session
from ebmctl.services.runtime.distributed.rank_state import local_part, merged_buffer, rank_state, with_ranks


def _replicas(world: int) -> Replicas:
    return Replicas(rank=0, world=world, wrap=lambda m: m, gather=lambda x: x)


def test_shares_and_splits():
    assert _replicas(3).share(10) == 4 and _replicas(2).share(10) == 5 and _replicas(1).share(7) == 7
    assert _replicas(4).split(64) == 16
    with pytest.raises(ValueError, match="does not split evenly"):
        _replicas(3).split(64)


def _state(rank: int) -> tuple[dict[str, torch.Tensor], dict]:
    tensors = {"model.w": torch.ones(2), "optim.0.exp_avg": torch.zeros(2), "buffer.storage": torch.full((3, 2), rank),
               "rng.torch": torch.tensor([rank])}
    meta = {"step": 5, "rng": {"numpy": rank}, "method": {"optimizer": {}, "buffer": {"policy": "fifo", "capacity": 4,
                                                                                       "size": 3, "seen": 3 + rank}}}
    return tensors, meta


def test_a_state_of_several_processes_gives_each_its_own_part_back():
    parts = [local_part(*_state(r), local=("buffer.",)) for r in range(3)]
    assert set(parts[1][0]) == {"buffer.storage", "rng.torch"}  # weights and optimiser state are shared
    tensors, meta = with_ranks(*_state(0), parts)
    assert meta["world_size"] == 3 and set(meta["ranks"]) == {"1", "2"}
    assert {"rank1.buffer.storage", "rank2.rng.torch", "buffer.storage", "model.w"} <= tensors.keys()
    for r in range(3):
        mine, doc = rank_state(tensors, meta, r)
        want, want_meta = _state(r)
        assert mine.keys() == want.keys()
        assert all(torch.equal(mine[k], want[k]) for k in want)
        assert doc["rng"] == want_meta["rng"] and doc["method"]["buffer"] == want_meta["method"]["buffer"]
    merged, buffer = merged_buffer(tensors, meta)
    assert merged["buffer.storage"].shape == (9, 2) and buffer["capacity"] == 12 and buffer["size"] == 9


def test_every_global_batch_must_split():
    check_batches(resolve_spec("quickstart"), 4)  # batch 32
    with pytest.raises(SpecError, match=r"train\.batch_size 32 does not split evenly over 3"):
        check_batches(resolve_spec("quickstart"), 3)
    clel = resolve_spec("clel-shapes", ["method.encoder_batch_size=30"])
    with pytest.raises(SpecError, match=r"method\.encoder_batch_size 30"):
        check_batches(clel, 4)


def test_devices_of_processes():
    assert process_device("cpu", 3, 4) == torch.device("cpu")
    with pytest.raises(UsageError, match="names one GPU"):
        process_device("cuda:0", 0, 2)


def test_without_the_launcher_variables_a_run_is_one_process(monkeypatch):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert not launched()
    with session("cpu") as procs:
        assert procs.world == 1 and procs.main and not procs.parallel
        assert procs.agree({"loss": 1.5}, True) == ({"loss": 1.5}, True)
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(UsageError, match="WORLD_SIZE"):
        session("cpu").__enter__()  # joining must fail before any process group exists


def test_the_launcher_passes_on_the_exit_code_that_explains_the_failure():
    from types import SimpleNamespace

    from ebmctl.errors import RunError
    from ebmctl.services.runtime.distributed.launcher import _exit_code

    def failure(code: int, at: int) -> SimpleNamespace:
        return SimpleNamespace(exitcode=code, timestamp=at)

    assert _exit_code({0: failure(130, 5), 1: failure(130, 5)}) == 130  # Ctrl-C: every process saved and left
    assert _exit_code({1: failure(1, 5), 0: failure(-15, 6)}) == 1  # rank 1's error, rank 0 stopped by the launcher
    with pytest.raises(RunError, match="process 1 was killed by SIGKILL"):
        _exit_code({0: failure(-15, 6), 1: failure(-9, 6)})
