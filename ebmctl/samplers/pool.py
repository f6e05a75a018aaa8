"""ICD's released test-time schedule: a pool of chains advanced in rounds over random batches.

The pool fills batch by batch (each batch from fresh chains and one round of ``steps`` SGLD steps). Every later
round draws ``batch`` chains with replacement, augments each, runs ``steps`` steps on them and writes them back;
the last ``plain_rounds`` rounds run without augmentation, each on one of ``plain_splits`` fixed slices of the
pool in turn (round ``i`` takes slice ``i % plain_splits``). A chain drawn twice in one round is written back
once, from its last copy. The rounds counted include those that fill the pool.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ebmctl.samplers.langevin import Energy, LangevinParams, sgld
from ebmctl.samplers.transitions import Transition


@dataclass(frozen=True)
class PoolSchedule:
    """The shape of the schedule (names match the ``sample.pool*`` spec keys; ``steps`` is ``aug_every``)."""

    size: int = 1000
    batch: int = 128
    rounds: int = 100
    plain_rounds: int = 30
    plain_splits: int = 2
    steps: int = 10

    def __post_init__(self) -> None:
        if min(self.size, self.batch, self.plain_splits, self.steps) < 1:
            raise ValueError("pool size, batch, plain splits and steps per round must be at least 1")
        if self.plain_splits > self.size:
            raise ValueError(f"{self.plain_splits} plain splits do not fit a pool of {self.size}")
        if not 0 <= self.plain_rounds <= self.rounds or self.rounds < self.fill_rounds:
            raise ValueError(f"{self.rounds} rounds cannot fill a pool of {self.size} in batches of {self.batch} "
                             f"({self.fill_rounds} rounds) and run {self.plain_rounds} plain rounds")

    @property
    def fill_rounds(self) -> int:
        return math.ceil(self.size / self.batch)


@dataclass
class PoolResult:
    """The final pool and, per chain, how many rounds of ``steps`` steps it received and how many were augmented."""

    x: Tensor
    rounds: Tensor
    augmented: Tensor

    def steps(self, schedule: PoolSchedule) -> Tensor:
        return self.rounds * schedule.steps


def _last_copies(idx: Tensor) -> Tensor:
    """A mask of the positions of ``idx`` that hold the last occurrence of their value."""
    pos = torch.arange(len(idx), device=idx.device)
    last = torch.full((int(idx.max()) + 1,), -1, dtype=pos.dtype, device=idx.device)
    last.scatter_reduce_(0, idx, pos, reduce="amax")
    return last[idx] == pos


def pool_sgld(
    energy: Energy,
    init: Callable[[int], Tensor],
    params: LangevinParams,
    schedule: PoolSchedule,
    *,
    transition: Transition | None,
    generator: torch.Generator | None = None,
    callback: Callable[[int, Tensor], None] | None = None,
) -> PoolResult:
    """Run ``schedule`` with the SGLD step of ``params`` (its ``steps`` is ignored); ``init(n)`` gives ``n``
    fresh chains. The draws use ``generator`` (or torch's global one), the augmentations torch's global one.
    ``callback(i, pool)`` sees the chains filled so far after round ``i``; it must not modify them."""
    s = schedule
    kwargs = params.sgld_kwargs()

    def run(x: Tensor) -> Tensor:
        return sgld(energy, x, steps=s.steps, generator=generator, **kwargs)

    pool: Tensor | None = None
    filled = 0
    rounds = torch.zeros(s.size, dtype=torch.long)
    augmented = torch.zeros(s.size, dtype=torch.long)
    slices = torch.arange(s.size).tensor_split(s.plain_splits)
    for i in range(s.rounds):
        if filled < s.size:
            x = run(init(min(s.batch, s.size - filled)))
            if pool is None:
                pool = x.new_empty((s.size, *x.shape[1:]))
            idx = torch.arange(filled, filled + len(x))
            pool[idx.to(pool.device)] = x
            filled += len(x)
        elif i < s.rounds - s.plain_rounds:
            assert pool is not None
            draw_on = generator.device if generator is not None else torch.device("cpu")
            idx = torch.randint(s.size, (s.batch,), generator=generator, device=draw_on).cpu()
            x = pool[idx.to(pool.device)]
            if transition is not None:
                x = transition(x)
            keep = _last_copies(idx)
            idx = idx[keep]
            pool[idx.to(pool.device)] = run(x)[keep.to(pool.device)]
            if transition is not None:
                augmented[idx] += 1
        else:
            assert pool is not None
            idx = slices[i % s.plain_splits]
            pool[idx.to(pool.device)] = run(pool[idx.to(pool.device)])
        rounds[idx] += 1
        if callback is not None:
            callback(i, pool[:filled])
    assert pool is not None
    return PoolResult(pool, rounds, augmented)
