"""Conjugate EBMs (Wu et al. 2021): an energy defined by neural sufficient statistics and a conjugate bias.

The net (:mod:`ebmctl.nets.cebm`) gives t(x) = (W1 h, -(W2 h)^2) and the marginal energy
E(x) = sum_d A(lambda) - sum_d A(lambda + t(x)) (a mixture bias: log K - logsumexp_k of the component
terms). Training is persistent contrastive divergence as the paper's Algorithm 1 and the released code:
chains in [-1, 1], unclamped, drawn from a 5k slot buffer (5% restarted from U[-1, 1]), SGLD
x <- x - 1.0 dE/dx + 0.0075 N, data perturbed by N(0, 0.03^2), and the loss
mean E(x+) - mean E(x-) + l2 (mean E(x+)^2 + mean E(x-)^2). The representation is the posterior mean of z.
With ``ood_noise`` > 0 the OOD scores are taken on inputs perturbed by N(0, ood_noise^2), as the released
evaluation does with the training noise.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ebmctl.losses.contrastive_divergence import cd_loss
from ebmctl.methods.base import PersistentChainEbm
from ebmctl.methods.chains import ChainSource
from ebmctl.methods.energies import energy_scores, summed_energy
from ebmctl.methods.energy_model import EnergyModel
from ebmctl.samplers.buffers import SlotBuffer
from ebmctl.samplers.langevin import LangevinParams, frozen, sgld_params


class Cebm(PersistentChainEbm):
    name = "cebm"
    pixel_range = (-1.0, 1.0)

    def __init__(
        self,
        model: EnergyModel,
        *,
        sampler: LangevinParams,
        chains: ChainSource,
        l2: float = 0.1,
        data_noise: float = 0.03,
        ood_noise: float = 0.0,
        device: torch.device | str = "cpu",
    ) -> None:
        super().__init__(model, sampler=sampler, chains=chains, device=torch.device(device))
        if not isinstance(chains.buffer, SlotBuffer):
            raise ValueError("CEBM keeps its chains in a slots buffer (buffer.policy = 'slots')")
        self.l2 = l2
        self.data_noise = data_noise
        self.ood_noise = ood_noise

    def train_step(self, x: Tensor, y: Tensor | None = None) -> dict[str, float]:
        net = self.net.train()
        x_pos = self.to_model(x)
        if self.data_noise > 0:
            x_pos = x_pos + self.data_noise * torch.randn_like(x_pos)
        idx, x0 = self.chains.draw_slots(x.shape[0], self.device)
        with frozen(net):
            x_neg = sgld_params(summed_energy(net), x0, self.sampler)
        self.chains.buffer.write(idx, x_neg)  # type: ignore[union-attr]
        e_pos, e_neg = self.model.forward(x_pos), self.model.forward(x_neg)
        loss = cd_loss(e_pos, e_neg, self.l2)
        grad_norm = self.model.step(loss)
        self.last_negatives = self.to_images(x_neg)
        ep, en = e_pos.detach().mean().item(), e_neg.detach().mean().item()
        return {"loss": loss.item(), "e_pos": ep, "e_neg": en, "gap": ep - en, "grad_norm": grad_norm}

    def ood_scores(self, x: Tensor, names: list[str], ema: bool = True,
                   generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """Scores with higher = more in-distribution (see :func:`energy_scores`), on inputs perturbed by
        ``ood_noise`` when that is set. The noise is drawn on the CPU image by image from ``generator`` (torch's
        global generator when None), so a seeded generator gives the same scores at any batch size."""
        net = self.model.eval_net(ema)
        x = self.to_model(x)
        if self.ood_noise > 0:
            noise = torch.stack([torch.randn(x.shape[1:], generator=generator) for _ in range(x.shape[0])])
            x = x + self.ood_noise * noise.to(device=x.device, dtype=x.dtype)
        return energy_scores(summed_energy(net), net, x, names)
