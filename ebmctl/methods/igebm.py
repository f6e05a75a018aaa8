"""IGEBM (Du & Mordatch 2019): persistent contrastive divergence with a FIFO replay buffer.

Each step: chains start from the buffer (5% restart from uniform noise), run SGLD with the gradient clamped
elementwise, and the loss is mean E(x+) - mean E(x-) + l2 (mean E(x+)^2 + mean E(x-)^2).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ebmctl.losses.contrastive_divergence import cd_loss
from ebmctl.methods.base import PersistentChainEbm
from ebmctl.methods.chains import ChainSource
from ebmctl.methods.energies import summed_energy
from ebmctl.methods.energy_model import EnergyModel
from ebmctl.samplers.langevin import LangevinParams, frozen, sgld_params


class Igebm(PersistentChainEbm):
    name = "igebm"

    def __init__(
        self,
        model: EnergyModel,
        *,
        sampler: LangevinParams,
        chains: ChainSource,
        l2: float = 1.0,
        device: torch.device | str = "cpu",
    ) -> None:
        super().__init__(model, sampler=sampler, chains=chains, device=torch.device(device))
        self.l2 = l2

    def train_step(self, x: Tensor, y: Tensor | None = None) -> dict[str, float]:
        net = self.net.train()
        x0 = self.chains.draw(x.shape[0], self.device)
        with frozen(net):
            x_neg = sgld_params(summed_energy(net, y), x0, self.sampler)
        e_pos = self.model.forward(x, y)
        e_neg = self.model.forward(x_neg, y)
        loss = cd_loss(e_pos, e_neg, self.l2)
        grad_norm = self.model.step(loss)
        if self.chains.buffer is not None:
            self.chains.buffer.add(x_neg)
        self.last_negatives = x_neg
        ep, en = e_pos.detach().sum(1).mean().item(), e_neg.detach().sum(1).mean().item()
        return {"loss": loss.item(), "e_pos": ep, "e_neg": en, "gap": ep - en, "grad_norm": grad_norm}
