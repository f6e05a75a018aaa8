"""EBCLR (Kim & Ye 2022): contrastive learning as an EBM of positive pairs, q(v, v') ~ exp(-||z - z'||^2 / tau).

Per step, for a batch and two augmented views v1, v2 of every image (with Gaussian view noise, in [-1, 1]):

* chains come from distinct slots of a replay buffer; a slot never used, or with probability rho, restarts
  from a fresh augmented data image (the proposal q0 = p(v)) and its visit count starts again at 0;
* multi-stage SGLD (Algorithm 1) runs on E(v) = -log sum_m exp(-||z(v) - z'_m||^2 / tau) against the second
  views: v <- v - alpha clamp(dE/dv, +-delta) + sigma(kappa) N, sigma(kappa) = sigma_min +
  (sigma_max - sigma_min) [1 - kappa / K]_+ with kappa the chain's visits before this run (eq. 22);
* the loss is NT-Xent + lambda * generative term (see :func:`ebmctl.losses.contrastive.ebclr_loss`).

The encoder is ResNet-18 without BatchNorm, with LeakyReLU, and a 512-512-128 projection; the probe reads
the pooled backbone. Unlike the released code, every image draws its own augmentation, and no
parameter-gradient clamp is applied (the released one never runs).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ebmctl.losses.contrastive import ebclr_log_density, ebclr_loss
from ebmctl.methods.chains import buffer_share
from ebmctl.methods.energy_model import EnergyModel
from ebmctl.methods.replication import Replicas
from ebmctl.methods.simclr import Simclr
from ebmctl.samplers.buffers import ReplayBuffer, SlotBuffer
from ebmctl.samplers.langevin import LangevinParams, frozen, msgld_noise, sgld
from ebmctl.samplers.transitions import Transition


class Ebclr(Simclr):
    name = "ebclr"
    pixel_range = (-1.0, 1.0)

    def __init__(
        self,
        model: EnergyModel,
        *,
        augment: Transition,
        sampler: LangevinParams,
        buffer: SlotBuffer,
        shape: tuple[int, ...],
        rho: float = 0.2,
        temperature: float = 0.1,
        lmda1: float = 1e-3,
        lmda2: float = 0.1,
        sigma_min: float = 0.01,
        sigma_max: float = 0.05,
        noise_decay: float = 3.0,
        view_noise: float = 0.03,
        device: torch.device | str = "cpu",
    ) -> None:
        super().__init__(model, augment=augment, temperature=temperature, view_noise=view_noise, device=device)
        self.sampler = sampler
        self.buffer = buffer
        self.shape = shape
        self.rho = rho
        self.lmda1, self.lmda2 = lmda1, lmda2
        self.sigma_min, self.sigma_max, self.noise_decay = sigma_min, sigma_max, noise_decay

    def replay_buffers(self) -> list[ReplayBuffer]:
        return [self.buffer]

    def replicate(self, replicas: Replicas) -> None:
        super().replicate(replicas)
        shared = buffer_share(self.buffer, replicas)
        assert isinstance(shared, SlotBuffer)
        self.buffer = shared

    def energy_against(self, keys: Tensor) -> Any:
        """E(v; {v'_m}) = -log sum_m exp(-||z(v) - z'_m||^2 / tau), one value per chain."""
        net = self.net
        return lambda v: -ebclr_log_density(net(v), keys, self.temperature)

    def draw_chains(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Slots, their states and visit counts; fresh or restarted chains are new augmented views of ``x``."""
        n = x.shape[0]
        idx, x0 = self.buffer.draw(n, self.shape)
        x0 = x0.to(self.device)
        visits = self.buffer.counts(idx).to(self.device)
        restart = (visits == 0) | (torch.rand(n, device=self.device) < self.rho)
        if restart.any():
            pick = torch.randint(0, n, (int(restart.sum()),), device=x.device)
            fresh = self.augment(x[pick])
            if self.view_noise > 0:
                fresh = fresh + self.view_noise * torch.randn_like(fresh)
            x0[restart] = self.to_model(fresh).to(x0)
            self.buffer.restart(idx[restart.cpu()])
            visits = torch.where(restart, torch.zeros_like(visits), visits)
        return idx, x0, visits

    def train_step(self, x: Tensor, y: Tensor | None = None) -> dict[str, float]:
        net = self.net.train()
        v1, v2 = self.views(x)
        z1, z2 = self.model.forward(v1), self.model.forward(v2)
        keys = self.gather(z2)  # the second views of the global batch
        idx, x0, visits = self.draw_chains(x)
        sigma = msgld_noise(visits, self.sigma_min, self.sigma_max, self.noise_decay)
        kwargs = {**self.sampler.sgld_kwargs(), "noise": sigma}
        with frozen(net):
            x_neg = sgld(self.energy_against(keys.detach()), x0, steps=self.sampler.steps, **kwargs)
        self.buffer.write(idx, x_neg)
        z_neg = self.model.forward(x_neg)
        loss, parts = ebclr_loss(self.gather(z1), keys, self.gather(z_neg), temperature=self.temperature,
                                 lmda1=self.lmda1, lmda2=self.lmda2)
        grad_norm = self.model.step(loss)
        self.last_negatives = self.to_images(x_neg.detach())
        e_pos, e_neg = -parts["log_q_pos"].item(), -parts["log_q_neg"].item()
        return {"loss": loss.item(), "contrastive": parts["discriminative"].item(),
                "generative": parts["generative"].item(), "e_pos": e_pos, "e_neg": e_neg, "gap": e_pos - e_neg,
                "grad_norm": grad_norm}

    # ------------------------------------------------------------------ state

    def state_tensors(self) -> dict[str, Tensor]:
        return {**super().state_tensors(), **self.buffer.state_tensors()}

    def state_meta(self) -> dict[str, Any]:
        return {**super().state_meta(), "buffer": self.buffer.state_meta()}

    def load_state(self, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
        super().load_state(tensors, meta)
        if "buffer" in meta:
            self.buffer.load_state(tensors, meta["buffer"])
