"""ICD (Du et al. 2021, Improved Contrastive Divergence), Algorithm 1.

Per step: chains start from augmented reservoir-buffer draws (0.1% restart from noise) and run K Langevin
steps; the last step is kept differentiable on up to ``kl_chains`` chains. Loss:

    L_CD  = mean E(x+) - mean E(sg(x-)) + l2 (mean E(x+)^2 + mean E(x-)^2)
    L_opt = mean E_sg(theta)(x_kl)                 (gradient reaches theta through the last step only)
    L_ent = -mean log min_j ||x_kl - b_j||_2       (b: augmented past samples from the buffer)
    L     = L_CD + kl_coeff L_opt + entropy_coeff L_ent

then gradient-norm clipping, Adam and an EMA of the weights. Every term is switchable (Table 2 ablation:
``kl``, ``entropy``; augmentation and multiscale live in the buffer and net settings).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ebmctl.losses.contrastive_divergence import cd_loss, nn_entropy
from ebmctl.methods.base import PersistentChainEbm
from ebmctl.methods.chains import ChainSource
from ebmctl.methods.energies import summed_energy
from ebmctl.methods.energy_model import EnergyModel
from ebmctl.methods.replication import Replicas
from ebmctl.samplers.langevin import LangevinParams, frozen, sgld_params, sgld_with_differentiable_tail


class Icd(PersistentChainEbm):
    name = "icd"

    def __init__(
        self,
        model: EnergyModel,
        *,
        sampler: LangevinParams,
        chains: ChainSource,
        l2: float = 1.0,
        kl: bool = True,
        kl_coeff: float = 1.0,
        kl_chains: int = 128,
        entropy: bool = True,
        entropy_coeff: float = 0.3,
        entropy_refs: int = 100,
        entropy_min_buffer: int = 1000,
        device: torch.device | str = "cpu",
    ) -> None:
        super().__init__(model, sampler=sampler, chains=chains, device=torch.device(device))
        self.l2 = l2
        self.kl, self.kl_coeff, self.kl_chains = kl, kl_coeff, kl_chains
        self.entropy, self.entropy_coeff = entropy, entropy_coeff
        self.entropy_refs, self.entropy_min_buffer = entropy_refs, entropy_min_buffer

    def replicate(self, replicas: Replicas) -> None:
        """Each process differentiates its share of ``kl_chains`` and starts L_ent at its share of the fill."""
        super().replicate(replicas)
        self.kl_chains = replicas.share(self.kl_chains)
        self.entropy_min_buffer = replicas.share(self.entropy_min_buffer)

    def train_step(self, x: Tensor, y: Tensor | None = None) -> dict[str, float]:
        net = self.net.train()
        energy = summed_energy(net, y)
        x0 = self.chains.draw(x.shape[0], self.device)
        x_kl = None
        if self.kl or self.entropy:
            rows = None if y is None else (lambda r: summed_energy(net, y[r]))
            x_neg, x_kl = sgld_with_differentiable_tail(energy, x0, self.sampler, n_diff=self.kl_chains, module=net,
                                                        rows_energy=rows)
        else:
            with frozen(net):
                x_neg = sgld_params(energy, x0, self.sampler)

        e_pos = self.model.forward(x, y)
        e_neg = self.model.forward(x_neg, y)
        loss_cd = cd_loss(e_pos, e_neg, self.l2)
        loss = loss_cd
        buffer = self.chains.buffer
        # The entropy references are past samples (eq. 8), drawn before this batch joins the buffer: a chain
        # compared with its own copy would give log 0.
        refs = None
        if self.entropy and x_kl is not None and buffer is not None and len(buffer) > self.entropy_min_buffer:
            refs = buffer.sample(self.entropy_refs).to(self.device)
            if self.chains.transition is not None:
                refs = self.chains.transition(refs)
        if buffer is not None:
            buffer.add(x_neg)

        metrics: dict[str, float] = {}
        if self.kl and x_kl is not None:
            with frozen(net):
                loss_opt = net(x_kl, None if y is None else y[: len(x_kl)]).mean()
            loss = loss + self.kl_coeff * loss_opt
            metrics["kl"] = loss_opt.item()
        if refs is not None:
            ent = nn_entropy(x_kl, refs)
            loss = loss - self.entropy_coeff * ent
            metrics["entropy"] = ent.item()

        grad_norm = self.model.step(loss)
        self.last_negatives = x_neg
        ep, en = e_pos.detach().sum(1).mean().item(), e_neg.detach().sum(1).mean().item()
        return {"loss": loss.item(), "loss_cd": loss_cd.item(), "e_pos": ep, "e_neg": en, "gap": ep - en,
                "grad_norm": grad_norm, **metrics}
