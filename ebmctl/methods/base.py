"""What every method offers the commands, and the shared shape of persistent-chain image EBMs.

A method is built from plain arguments (the service turns a spec into them). It owns its energy, its
training step and its state; commands ask it for capabilities, typed in :mod:`ebmctl.methods.capabilities`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor

from ebmctl.methods.chains import ChainSource, buffer_share
from ebmctl.methods.energies import energy_scores, summed_energy
from ebmctl.methods.energy_model import EnergyModel
from ebmctl.methods.model_state import ModelState, PixelRange
from ebmctl.methods.replication import Replicas
from ebmctl.samplers.buffers import ReplayBuffer
from ebmctl.samplers.langevin import LangevinParams, augmented_sgld, frozen
from ebmctl.samplers.pool import PoolResult, PoolSchedule, pool_sgld


class PersistentChainEbm(PixelRange, ModelState, ABC):
    """An image (or point) EBM trained with persistent Langevin chains: IGEBM and ICD."""

    name = "base"

    def __init__(self, model: EnergyModel, *, sampler: LangevinParams, chains: ChainSource, device: torch.device):
        self.model = model
        self.sampler = sampler
        self.chains = chains
        self.device = device
        self.last_negatives: Tensor | None = None

    def label_energy(self, y: Tensor, ema: bool = True) -> Callable[[Tensor], Tensor]:
        """E(x | y) of a conditional net (one label per chain, or one broadcast to every chain)."""
        net = self.model.eval_net(ema)

        def energy(x: Tensor) -> Tensor:
            labels = y.expand(x.shape[0]) if y.dim() == 0 or len(y) == 1 else y
            return net(x, labels.reshape(-1).to(x.device)).sum(dim=1)

        return energy

    @abstractmethod
    def train_step(self, x: Tensor, y: Tensor | None = None) -> dict[str, float]:
        """Sample negatives, compute the loss, take one optimiser step; return scalar metrics."""

    def replay_buffers(self) -> list[ReplayBuffer]:
        return [self.chains.buffer] if self.chains.buffer is not None else []

    def replicate(self, replicas: Replicas) -> None:
        super().replicate(replicas)
        if self.chains.buffer is not None:
            self.chains = replace(self.chains, buffer=buffer_share(self.chains.buffer, replicas))

    # ------------------------------------------------------------------ capabilities

    def energy(self, x: Tensor, y: Tensor | None = None, ema: bool = True) -> Tensor:
        """Per-sample energy (B,) with the evaluation weights."""
        net = self.model.eval_net(ema)
        with torch.no_grad():
            return summed_energy(net, y)(self.to_model(x))

    def sample(
        self,
        n: int,
        *,
        steps: int,
        step_size: float | None = None,
        noise: float | None = None,
        init: str = "noise",
        aug_every: int = 0,
        plain_steps: int = 0,
        ema: bool = True,
        y: Tensor | None = None,
        energy: Callable[[Tensor], Tensor] | None = None,
        callback: Callable[[int, Tensor], None] | None = None,
    ) -> Tensor:
        """Draw ``n`` samples with the test-time schedule (ICD Algorithm 2 when ``aug_every`` > 0).

        ``energy`` replaces the model's own (a conditional or composed energy built on the same nets)."""
        net = self.model.eval_net(ema)
        if init == "buffer":
            buffer = self.chains.buffer
            if buffer is None or len(buffer) == 0:
                raise ValueError("this run has no replay buffer to start from")
            x0 = buffer.sample(n).to(self.device)
        else:
            x0 = self.chains.noise(n, self.device)
        params = replace(
            self.sampler,
            steps=steps,
            step_size=self.sampler.step_size if step_size is None else step_size,
            noise=self.sampler.noise if noise is None else noise,
        )
        if callback is not None and self.pixel_range != (0.0, 1.0):
            user_callback = callback
            callback = lambda k, x: user_callback(k, self.to_images(x))  # noqa: E731
        with frozen(net):
            x = augmented_sgld(
                energy or summed_energy(net, y),
                x0,
                params,
                transition=self.chains.transition,
                aug_every=aug_every,
                plain_steps=plain_steps,
                callback=callback,
            )
        return self.to_images(x)

    def sample_pool(
        self,
        schedule: PoolSchedule,
        *,
        step_size: float | None = None,
        noise: float | None = None,
        init: str = "noise",
        ema: bool = True,
        y: Tensor | None = None,
        energy: Callable[[Tensor], Tensor] | None = None,
        callback: Callable[[int, Tensor], None] | None = None,
    ) -> PoolResult:
        """One pool of ICD's released test schedule (:func:`pool_sgld`), filled from ``init`` (noise or the
        replay buffer); ``callback(round, images)`` sees the chains filled so far after every round."""
        net = self.model.eval_net(ema)
        if callback is not None and self.pixel_range != (0.0, 1.0):
            user_callback = callback
            callback = lambda k, x: user_callback(k, self.to_images(x))  # noqa: E731
        buffer = self.chains.buffer
        if init == "buffer" and (buffer is None or len(buffer) == 0):
            raise ValueError("this run has no replay buffer to start from")

        def fresh(n: int) -> Tensor:
            if init == "buffer" and buffer is not None:
                return buffer.sample(n).to(self.device)
            return self.chains.noise(n, self.device)

        params = replace(
            self.sampler,
            step_size=self.sampler.step_size if step_size is None else step_size,
            noise=self.sampler.noise if noise is None else noise,
        )
        with frozen(net):
            out = pool_sgld(energy or summed_energy(net, y), fresh, params, schedule,
                            transition=self.chains.transition, callback=callback)
        out.x = self.to_images(out.x)
        return out

    def ood_scores(self, x: Tensor, names: list[str], ema: bool = True) -> dict[str, Tensor]:
        """Scores with higher = more in-distribution (see :func:`energy_scores`)."""
        net = self.model.eval_net(ema)
        return energy_scores(summed_energy(net), net, self.to_model(x), names)

    def representation(self, x: Tensor, ema: bool = True) -> Tensor:
        """Penultimate features of the energy net (as the CEBM paper probes IGEBM)."""
        net = self.model.eval_net(ema)
        with torch.no_grad():
            return net.features(self.to_model(x))

    # ------------------------------------------------------------------ state

    def state_tensors(self) -> dict[str, Tensor]:
        out = super().state_tensors()
        if self.chains.buffer is not None:
            out.update(self.chains.buffer.state_tensors())
        return out

    def state_meta(self) -> dict[str, Any]:
        meta = super().state_meta()
        if self.chains.buffer is not None:
            meta["buffer"] = self.chains.buffer.state_meta()
        return meta

    def load_state(self, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
        super().load_state(tensors, meta)
        if self.chains.buffer is not None and "buffer" in meta:
            self.chains.buffer.load_state(tensors, meta["buffer"])
