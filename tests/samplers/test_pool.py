"""ICD's released test-time schedule: rounds per chain, which rounds augment, draws with replacement, seeds."""

from __future__ import annotations

import pytest
import torch

from ebmctl.samplers.langevin import LangevinParams
from ebmctl.samplers.pool import PoolSchedule, _last_copies, pool_sgld

# E(x) = -sum(x): every step adds exactly step_size to every coordinate (no noise, no clamp), so a chain's value
# counts the steps it received; the transition adds 1000, so the thousands count its augmentations.
COUNTING = LangevinParams(steps=1, step_size=1.0, noise=0.0, pixel_clamp=None)


def counting_energy(x: torch.Tensor) -> torch.Tensor:
    return -x.flatten(1).sum(1)


def zeros(n: int) -> torch.Tensor:
    return torch.zeros(n, 1)


def replayed_draws(schedule: PoolSchedule, seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    augmented_rounds = schedule.rounds - schedule.plain_rounds - schedule.fill_rounds
    return [torch.randint(schedule.size, (schedule.batch,), generator=g) for _ in range(augmented_rounds)]


def run_counting(schedule: PoolSchedule, seed: int):
    calls: list[int] = []
    current = [0]

    def transition(x: torch.Tensor) -> torch.Tensor:
        calls.append(current[0])
        return x + 1000.0

    def callback(i: int, pool: torch.Tensor) -> None:
        current[0] = i + 1

    res = pool_sgld(counting_energy, zeros, COUNTING, schedule, transition=transition,
                    generator=torch.Generator().manual_seed(seed), callback=callback)
    return res, calls


def test_each_chain_gets_its_rounds_of_steps_and_its_augmentations():
    s = PoolSchedule(size=10, batch=4, rounds=12, plain_rounds=4, plain_splits=2, steps=3)
    assert s.fill_rounds == 3  # batches of 4, 4 and 2
    res, calls = run_counting(s, seed=5)
    draws = replayed_draws(s, seed=5)
    assert any(len(d.unique()) < len(d) for d in draws), "the seed must draw some chain twice in one round"
    augmented = torch.zeros(10, dtype=torch.long)
    for d in draws:
        augmented[d.unique()] += 1  # a chain drawn twice in a round still takes one round
    rounds = 1 + augmented + 2  # one filling round, its draws, two plain rounds (rounds 8-11 on slices 0, 1, 0, 1)
    assert torch.equal(res.rounds, rounds) and torch.equal(res.augmented, augmented)
    assert torch.equal(res.x.squeeze(1), 1000.0 * augmented + 3.0 * rounds)
    assert torch.equal(res.steps(s), 3 * rounds)
    assert calls == [3, 4, 5, 6, 7], "only the rounds between filling and the plain tail augment"


def test_draws_are_with_replacement_even_when_the_batch_exceeds_the_pool():
    s = PoolSchedule(size=3, batch=8, rounds=4, plain_rounds=1, plain_splits=1, steps=2)
    res, calls = run_counting(s, seed=0)
    assert calls == [1, 2]
    augmented = torch.zeros(3, dtype=torch.long)
    for d in replayed_draws(s, seed=0):
        assert len(d) == 8
        augmented[d.unique()] += 1
    assert torch.equal(res.augmented, augmented)
    assert torch.equal(res.x.squeeze(1), 1000.0 * augmented + 2.0 * (1 + augmented + 1))


def test_a_chain_drawn_twice_is_written_back_from_its_last_copy():
    assert _last_copies(torch.tensor([2, 0, 2, 1, 0])).tolist() == [False, False, True, True, True]


def test_the_released_schedule_per_chain():
    """1000 chains, batches of 128, 100 rounds, the last 30 plain on two halves: 8 rounds fill the pool, 62
    augment 128 draws each, and every chain gets 15 plain rounds (150 steps)."""
    s = PoolSchedule()
    assert (s.size, s.batch, s.rounds, s.plain_rounds, s.plain_splits, s.steps) == (1000, 128, 100, 30, 2, 10)
    res, calls = run_counting(s, seed=1)
    assert s.fill_rounds == 8 and calls == list(range(8, 70))
    assert torch.equal(res.rounds - res.augmented, torch.full((1000,), 16))  # 1 filling + 15 plain
    draws = torch.cat(replayed_draws(s, seed=1))
    assert len(draws) == 62 * 128
    assert res.augmented.sum() <= len(draws) and res.augmented.float().mean() > 7.0


def test_seeds_reproduce_with_noise_and_random_augmentation():
    params = LangevinParams(steps=1, step_size=0.1, noise=0.05)
    s = PoolSchedule(size=6, batch=4, rounds=6, plain_rounds=2, plain_splits=2, steps=2)

    def energy(x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x.flatten(1).pow(2).sum(1)

    def flip(x: torch.Tensor) -> torch.Tensor:  # a random move drawn from torch's global generator
        return torch.where(torch.rand(len(x), 1, 1, 1) < 0.5, x.flip(-1), x)

    def once(seed: int) -> torch.Tensor:
        torch.manual_seed(seed)
        return pool_sgld(energy, lambda n: torch.rand(n, 1, 2, 2), params, s, transition=flip,
                         generator=torch.Generator().manual_seed(seed)).x

    assert torch.equal(once(3), once(3))
    assert not torch.equal(once(3), once(4))


@pytest.mark.parametrize("kwargs", [dict(size=10, batch=4, rounds=2), dict(rounds=10, plain_rounds=11),
                                    dict(size=2, plain_splits=3), dict(steps=0)])
def test_impossible_schedules_are_refused(kwargs):
    with pytest.raises(ValueError):
        PoolSchedule(**kwargs)
