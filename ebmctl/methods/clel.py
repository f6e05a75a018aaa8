"""CLEL (Lee et al. 2023, Guiding Energy-based Models via Contrastive Latent Variables), Algorithm 1.

The spherical latent-variable EBM and its marginal::

    E(x, z) = 1/2 ||f(x)||^2 - beta g(f(x)/||f(x)||)^T z        E(x) = 1/2 ||f(x)||^2 (+ const)

with g ending in an L2 normalisation and z on the unit sphere. Per step: chains drawn from random buffer
slots (0.1% restarted from noise), augmented, advanced by SGLD on E(x) and written back; then

    L_EBM = mean(E(x+) - E(x-)) + alpha mean(E(x+)^2 + E(x-)^2) - beta mean g(f(x+)/|f|)^T z+
    L_LE  = NT-Xent(h(t1(x+)), h(t2(x+)); extra negatives sg(g(f(x-)/|f|)))

with z+ = sg(h(t(x+))/|h(t(x+))|). The EBM takes Adam with linear warm-up, the encoder SGD with a cosine
schedule; both keep an EMA. Conditional energies E(x|z) and attribute compositions use the same form.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ebmctl.losses.contrastive import simclr_loss
from ebmctl.methods.base import PersistentChainEbm
from ebmctl.methods.chains import ChainSource
from ebmctl.methods.energies import energy_scores, summed_energy
from ebmctl.methods.energy_model import EnergyModel
from ebmctl.methods.replication import Replicas
from ebmctl.methods.state import prefixed, unprefixed
from ebmctl.samplers.buffers import SlotBuffer
from ebmctl.samplers.langevin import LangevinParams, frozen, sgld_params
from ebmctl.samplers.transitions import Transition


def marginal_energy(f: Tensor) -> Tensor:
    """E(x) = 1/2 ||f(x)||^2 per sample."""
    return 0.5 * f.pow(2).sum(dim=1)


def joint_energy(f: Tensor, u: Tensor, z: Tensor, beta: float) -> Tensor:
    """E(x, z) = 1/2 ||f||^2 - beta u^T z with u = g(f/||f||) (unit norm) and z (B, d) on the sphere."""
    return marginal_energy(f) - beta * (u * z).sum(dim=1)


def composed_energy(f: Tensor, u: Tensor, latents: Tensor, signs: Tensor, beta: float) -> Tensor:
    """E(x | A) = 1/2 ||f||^2 - beta sum_a s_a cos(u, z_a) (section 4.4; s_a = -1 negates attribute a).

    ``latents`` is (k, d) shared by every sample or (B, k, d) per sample; ``signs`` is (k,)."""
    z = F.normalize(latents, dim=-1)
    sims = u @ z.T if z.dim() == 2 else torch.einsum("bd,bkd->bk", u, z)
    return marginal_energy(f) - beta * (sims * signs.to(sims)).sum(dim=1)


class Clel(PersistentChainEbm):
    name = "clel"

    def __init__(
        self,
        model: EnergyModel,
        encoder: EnergyModel,
        *,
        sampler: LangevinParams,
        chains: ChainSource,
        augment: Transition,
        alpha: float = 1.0,
        beta: float = 0.01,
        temperature: float = 0.2,
        extra_negatives: bool = True,
        ebm_batch_size: int = 64,
        encoder_batch_size: int | None = None,
        ood_beta: float = 0.1,
        guidance: float | None = None,
        latent_examples: int = 500,
        device: torch.device | str = "cpu",
    ) -> None:
        super().__init__(model, sampler=sampler, chains=chains, device=torch.device(device))
        if not isinstance(chains.buffer, SlotBuffer):
            raise ValueError("CLEL keeps its chains in a slots buffer (buffer.policy = 'slots')")
        self.encoder = encoder
        self.augment = augment
        self.alpha, self.beta, self.temperature = alpha, beta, temperature
        self.extra_negatives = extra_negatives
        self.ebm_batch_size = ebm_batch_size
        self.encoder_batch_size = encoder_batch_size or ebm_batch_size
        self.data_batch_size = max(self.ebm_batch_size, self.encoder_batch_size)
        self.ood_beta = ood_beta
        self.guidance = beta if guidance is None else guidance
        self.latent_examples = latent_examples

    # ------------------------------------------------------------------ training

    def replicate(self, replicas: Replicas) -> None:
        """Both nets are wrapped; the EBM and encoder batches are global, each process takes its part."""
        super().replicate(replicas)
        self.ebm_batch_size = replicas.split(self.ebm_batch_size)
        self.encoder_batch_size = replicas.split(self.encoder_batch_size)
        self.data_batch_size = max(self.ebm_batch_size, self.encoder_batch_size)

    def train_step(self, x: Tensor, y: Tensor | None = None) -> dict[str, float]:
        x_pos = x[: self.ebm_batch_size]
        net, encoder = self.net.train(), self.encoder.net.train()
        idx, x0 = self.chains.draw_slots(len(x_pos), self.device)
        with frozen(net):
            x_neg = sgld_params(summed_energy(net), x0, self.sampler)
        self.chains.buffer.write(idx, x_neg)  # type: ignore[union-attr]

        f_pos, u_pos = self.model.forward(x_pos, entry="f_and_latent")
        f_neg, u_neg = self.model.forward(x_neg, entry="f_and_latent")
        e_pos, e_neg = marginal_energy(f_pos), marginal_energy(f_neg)
        with torch.no_grad():
            z_pos = F.normalize(encoder(self.augment(x_pos)), dim=1)
        s_pos = (u_pos * z_pos).sum(dim=1)
        loss_ebm = (e_pos - e_neg).mean() + self.alpha * (e_pos.pow(2) + e_neg.pow(2)).mean() - self.beta * s_pos.mean()
        extra = self.gather(u_neg.detach()) if self.extra_negatives else None
        loss_le = simclr_loss(self.encoder.forward, x[: self.encoder_batch_size], self.augment, self.temperature,
                              extra, gather=self.gather)

        grad_norm = self.model.step(loss_ebm)
        self.encoder.step(loss_le)
        self.last_negatives = x_neg
        ep, en = e_pos.detach().mean().item(), e_neg.detach().mean().item()
        return {"loss": loss_ebm.item() + loss_le.item(), "loss_ebm": loss_ebm.item(), "loss_le": loss_le.item(),
                "e_pos": ep, "e_neg": en, "gap": ep - en, "s_pos": s_pos.detach().mean().item(),
                "grad_norm": grad_norm}

    # ------------------------------------------------------------------ latents and conditional energies

    def encoder_net(self, ema: bool = True) -> torch.nn.Module:
        return self.encoder.eval_net(ema)

    @torch.no_grad()
    def encode(self, x: Tensor, *, augment: bool = True, ema: bool = True, batch_size: int = 256) -> Tensor:
        """Latents z ~ p_data(z|x) = h(t(x))/||h(t(x))|| (t a random augmentation unless ``augment`` is off)."""
        encoder = self.encoder_net(ema)
        out = []
        for chunk in x.split(batch_size):
            chunk = chunk.to(self.device)
            if augment:
                chunk = self.augment(chunk)
            out.append(F.normalize(encoder(chunk), dim=1))
        return torch.cat(out)

    def pooled_latent(self, x: Tensor, ema: bool = True) -> Tensor:
        """The latent shared by a set of examples: the normalised sum of their latents (section 4.3)."""
        return F.normalize(self.encode(x, ema=ema).sum(dim=0), dim=0)

    def conditional_energy(
        self, latents: Tensor, signs: Tensor | None = None, *, beta: float | None = None, ema: bool = True
    ) -> Callable[[Tensor], Tensor]:
        """E(x | z_1..z_k) = 1/2 ||f||^2 - beta sum_a s_a cos(g(f/|f|), z_a) as a sampler energy.

        ``latents`` (k, d) or (B, k, d); ``signs`` (k,) of +-1 (default all +1); ``beta`` defaults to
        ``method.guidance``."""
        net = self.model.eval_net(ema)
        k = latents.shape[-2] if latents.dim() == 3 else latents.shape[0]
        signs = torch.ones(k) if signs is None else signs
        weight = self.guidance if beta is None else beta
        latents = latents.to(self.device)

        def energy(x: Tensor) -> Tensor:
            f, u = net.f_and_latent(x)
            return composed_energy(f, u, latents, signs, weight)

        return energy

    # ------------------------------------------------------------------ capabilities

    def ood_scores(self, x: Tensor, names: list[str], ema: bool = True, beta: float | None = None) -> dict[str, Tensor]:
        """``energy`` (-E(x)), ``grad_norm`` and ``joint``: -(1/2||f||^2 - beta cos(g(f/|f|), h(x))), eq. 14."""
        net = self.model.eval_net(ema)
        out = energy_scores(summed_energy(net), net, x, [n for n in names if n != "joint"])
        if "joint" in names:
            with torch.no_grad():
                f, u = net.f_and_latent(x)
                z = self.encode(x, augment=False, ema=ema)
                out["joint"] = -joint_energy(f, u, z, self.ood_beta if beta is None else beta)
        return out

    def representation(self, x: Tensor, ema: bool = True) -> Tensor:
        """The encoder's pooled backbone features (what a linear probe of CLEL's encoder reads)."""
        with torch.no_grad():
            return self.encoder_net(ema).backbone(x)

    # ------------------------------------------------------------------ state

    def weight_tensors(self) -> dict[str, Tensor]:
        return {**self.model.weight_tensors(), **prefixed("encoder.", self.encoder.weight_tensors())}

    def load_weights(self, tensors: dict[str, Tensor]) -> None:
        self.model.load_weights({k: v for k, v in tensors.items() if not k.startswith("encoder.")})
        self.encoder.load_weights(unprefixed("encoder.", tensors))

    def state_tensors(self) -> dict[str, Tensor]:
        out = super().state_tensors()
        out.update(prefixed("encoder.", self.encoder.state_tensors()))
        return out

    def state_meta(self) -> dict[str, Any]:
        return {**super().state_meta(), "encoder": self.encoder.state_meta()}

    def load_state(self, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
        super().load_state({k: v for k, v in tensors.items() if not k.startswith("encoder.")}, meta)
        self.encoder.load_state(unprefixed("encoder.", tensors), meta["encoder"])
