"""Progress of Langevin chains step by step: batches of chains report every step, with the mean energy now and
then (one extra forward pass at most every ``energy_every`` seconds)."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch import Tensor

from ebmctl.services.runtime.reporting import ProgressHandle

ENERGY_SECONDS = 1.0


class ChainProgress:
    """Turns each batch's ``callback(k, images)`` into updates of ``bar`` counted in steps of all batches.

    ``energy`` maps a batch of images to per-sample energies (None: no energy shown); it sees the first
    ``energy_chains`` chains only, so that the extra forward pass stays small next to a Langevin step."""

    def __init__(self, bar: ProgressHandle, steps: int, energy: Callable[[Tensor], Tensor] | None = None,
                 energy_every: float = ENERGY_SECONDS, energy_chains: int = 64) -> None:
        self.bar, self.steps, self.energy = bar, steps, energy
        self.energy_every, self.energy_chains = energy_every, energy_chains
        self.last_energy = float("-inf")

    def batch(self, index: int, then: Callable[[int, Tensor], None] | None = None) -> Callable[[int, Tensor], None]:
        """The callback of batch ``index`` (0-based); ``then(k, images)`` is called after the update."""

        def report(k: int, images: Tensor) -> None:
            fields = {}
            now = time.perf_counter()
            if self.energy is not None and (now - self.last_energy >= self.energy_every or k + 1 == self.steps):
                self.last_energy = now
                chains = images[: self.energy_chains]
                with torch.no_grad():
                    fields["mean E"] = float(self.energy(chains).float().reshape(len(chains), -1).sum(1).mean())
            self.bar.update(index * self.steps + k + 1, **fields)
            if then is not None:
                then(k, images)

        return report
