"""Hat EBM (Hill et al. 2022): an energy H on top of a generator, U(y, z) = H(G(z) + y) / T.

Three modes share the energy and the sampler (:mod:`ebmctl.samplers.hat`):

- ``refine``: a frozen pretrained generator (an SN-GAN); chains start at y = 0, z ~ N(0, I) and move
  jointly in y and z (section 4.1).
- ``retrofit``: the same on the frozen decoder of a deterministic autoencoder with spherical latents
  (section 4.2), usually with a Gaussian prior on y.
- ``synthesis``: the conditional Hat EBM; z stays fixed while y moves, and the generator is trained in
  tandem by regressing G(z) onto (z, sample) pairs drawn from a bank of past EBM samples, whose slots are
  overwritten with the newest pairs (section 3.4, Appendix G's algorithm). Generator BatchNorm is frozen at
  mean 0, variance 1.

Every iteration draws fresh chains (no persistent EBM chains). The hat loss is the maximum-likelihood
gradient of eq. 8 scaled by 1/T, (mean H(x+) - mean H(x-)) / T, with data x+ perturbed by N(0, data_noise^2).
Images are in [-1, 1] inside the method. The generator's weights travel in the method's checkpoint, so a hat
run never needs the run it was built on again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor, nn

from ebmctl.losses.contrastive_divergence import hat_loss
from ebmctl.losses.generators import generator_loss
from ebmctl.methods.energies import energy_scores
from ebmctl.methods.energy_model import EnergyModel
from ebmctl.methods.model_state import ModelState, PixelRange
from ebmctl.methods.replication import Replicas
from ebmctl.methods.state import prefixed, unprefixed
from ebmctl.samplers.hat import HatCallback, HatChains, HatLangevinParams, hat_langevin

MODES = ("refine", "retrofit", "synthesis")




class GeneratorBank:
    """The synthesis bank of past (z, sample) pairs, filled with (z, G(z)) at the start.

    Each generator update reads ``B`` distinct random slots and then overwrites exactly those slots with the
    newest pairs (Appendix G)."""

    def __init__(self, z: Tensor, images: Tensor) -> None:
        self.z = z
        self.images = images

    def __len__(self) -> int:
        return self.z.shape[0]

    def pick(self, n: int) -> Tensor:
        if n > len(self):
            raise ValueError(f"the bank holds {len(self)} pairs; a batch of {n} needs distinct slots")
        return torch.randperm(len(self), device=self.z.device)[:n]

    def read(self, idx: Tensor) -> tuple[Tensor, Tensor]:
        return self.z[idx], self.images[idx]

    def write(self, idx: Tensor, z: Tensor, images: Tensor) -> None:
        self.z[idx] = z.detach().to(self.z.dtype)
        self.images[idx] = images.detach().to(self.images.dtype)


class Hat(PixelRange, ModelState):
    name = "hat"
    pixel_range = (-1.0, 1.0)

    def __init__(
        self,
        model: EnergyModel,
        generator: nn.Module,
        *,
        mode: str = "refine",
        sampler: HatLangevinParams,
        data_noise: float = 1e-3,
        latent_scale: float = 1.0,
        generator_model: EnergyModel | None = None,
        generator_loss_factor: float = 1000.0,
        bank_size: int = 10_000,
        device: torch.device | str = "cpu",
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown hat mode {mode!r}; choose from {', '.join(MODES)}")
        if (mode == "synthesis") != (generator_model is not None):
            raise ValueError("synthesis trains its generator (generator_model); refine and retrofit freeze it")
        self.model = model
        self.mode = mode
        self.gen = generator
        self.generator = generator_model
        self.sampler = sampler
        self.data_noise = data_noise
        self.latent_scale = latent_scale
        self.generator_loss_factor = generator_loss_factor
        self.bank_size = bank_size
        self.bank: GeneratorBank | None = None
        self.device = torch.device(device)
        self.chains = None
        self.last_negatives: Tensor | None = None
        if generator_model is None:
            generator.eval().requires_grad_(False)
        else:
            generator.freeze_batchnorm(True)

    # ------------------------------------------------------------------ pieces

    def replicate(self, replicas: Replicas) -> None:
        """The hat network (and a synthesis generator) are wrapped; each process keeps its share of the bank."""
        super().replicate(replicas)
        self.bank_size = replicas.share(self.bank_size)

    def latents(self, n: int) -> Tensor:
        """Initial latents latent_scale * N(0, I)."""
        return self.latent_scale * self.gen.sample_latent(n, device=self.device)

    def run_chains(self, z: Tensor, *, ema: bool = True, steps: int | None = None,
                   callback: HatCallback | None = None) -> HatChains:
        """Sample (z, y) from y = 0 and the given z; returns the final pair with G(z) (z fixed in synthesis)."""
        params = self.sampler if steps is None else replace(self.sampler, steps=steps)
        return hat_langevin(self.model.eval_net(ema), self.gen, z, None, params, callback=callback)

    def decode(self, z: Tensor) -> Tensor:
        with torch.no_grad():
            return self.gen(z)

    # ------------------------------------------------------------------ training

    def train_step(self, x: Tensor, y: Tensor | None = None) -> dict[str, float]:
        if self.generator is not None:
            self.gen.train()  # BatchNorm stays frozen (freeze_batchnorm)
        n = x.shape[0]
        if self.generator is not None and self.bank is None:
            self._init_bank()
        z0 = self.latents(n)
        z, res, g = self.run_chains(z0, ema=False)
        neg = g + res
        pos = self.to_model(x)
        pos = pos + self.data_noise * torch.randn_like(pos)
        self.model.net.train()
        h_pos, h_neg = self.model.forward(pos), self.model.forward(neg)
        loss = hat_loss(h_pos, h_neg, self.sampler.temperature)
        self.model.step(loss)
        metrics = {
            "loss": loss.item(), "e_pos": h_pos.detach().mean().item(), "e_neg": h_neg.detach().mean().item(),
            "res_norm": res.flatten(1).norm(dim=1).mean().item(),
            "z_norm": z.flatten(1).norm(dim=1).mean().item(),
        }
        metrics["gap"] = metrics["e_pos"] - metrics["e_neg"]
        if self.generator is not None:
            metrics["g_loss"] = self._generator_step(z, neg)
        self.last_negatives = self.to_images(neg.detach())
        return metrics

    def _init_bank(self) -> None:
        zs, images = [], []
        with torch.no_grad():
            for start in range(0, self.bank_size, 256):
                z = self.latents(min(256, self.bank_size - start))
                zs.append(z)
                images.append(self.gen(z))
        self.bank = GeneratorBank(torch.cat(zs), torch.cat(images))

    def _generator_step(self, z: Tensor, neg: Tensor) -> float:
        """One regression step of G onto B bank pairs, then those slots take the newest (z, x-)."""
        assert self.bank is not None and self.generator is not None
        idx = self.bank.pick(z.shape[0])
        z_old, x_old = self.bank.read(idx)
        loss = generator_loss(self.generator.forward(z_old), x_old, self.generator_loss_factor)
        self.generator.step(loss)
        self.bank.write(idx, z, neg)
        return loss.item()

    # ------------------------------------------------------------------ capabilities

    def sample(self, n: int, *, steps: int | None = None, ema: bool = True,
               callback: Callable[[int, Tensor], None] | None = None, **_: Any) -> Tensor:
        """``n`` images G(z) + y in [0, 1] after ``steps`` joint steps from y = 0, z ~ N(0, I)."""
        wrapped = None
        if callback is not None:
            user = callback
            wrapped = lambda k, z, y, g: user(k, self.to_images(g + y))  # noqa: E731
        _, res, g = self.run_chains(self.latents(n), ema=ema, steps=steps, callback=wrapped)
        return self.to_images(g + res)

    def energy(self, x: Tensor, y: Tensor | None = None, ema: bool = True) -> Tensor:
        """H(x) per sample for images in [0, 1] (without the temperature)."""
        net = self.model.eval_net(ema)
        with torch.no_grad():
            return net(self.to_model(x)).sum(dim=1)

    def ood_scores(self, x: Tensor, names: list[str], ema: bool = True) -> dict[str, Tensor]:
        """-H(x) (``energy``) and -||dH/dx|| (``grad_norm``), higher = more in-distribution."""
        net = self.model.eval_net(ema)
        return energy_scores(lambda v: net(v).sum(dim=1), net, self.to_model(x), names)

    def representation(self, x: Tensor, ema: bool = True) -> Tensor:
        """The hat network's pooled features before its last linear layer."""
        net = self.model.eval_net(ema)
        with torch.no_grad():
            return net.features(self.to_model(x))

    # ------------------------------------------------------------------ state

    def generator_tensors(self) -> dict[str, Tensor]:
        if self.generator is not None:
            return prefixed("generator.", self.generator.weight_tensors())
        return prefixed("generator.model.", self.gen.state_dict())

    def weight_tensors(self) -> dict[str, Tensor]:
        return {**self.model.weight_tensors(), **self.generator_tensors()}

    def load_weights(self, tensors: dict[str, Tensor]) -> None:
        own = {k: v for k, v in tensors.items() if not k.startswith("generator.")}
        self.model.load_weights(own)
        self.load_generator(unprefixed("generator.", tensors))

    def load_generator(self, tensors: dict[str, Tensor]) -> None:
        """Generator weights as an sngan/ae run stores them (``model.*``, optional ``ema.*``)."""
        if self.generator is not None:
            self.generator.load_weights(tensors)
            return
        ema = unprefixed("ema.", tensors)
        self.gen.load_state_dict(ema or unprefixed("model.", tensors))

    def state_tensors(self) -> dict[str, Tensor]:
        out = {**self.model.state_tensors()}
        if self.generator is not None:
            out.update(prefixed("generator.", self.generator.state_tensors()))
            if self.bank is not None:
                out.update({"bank.z": self.bank.z, "bank.images": self.bank.images})
        else:
            out.update(self.generator_tensors())
        return out

    def state_meta(self) -> dict[str, Any]:
        meta = {**self.model.state_meta()}
        if self.generator is not None:
            meta["generator"] = self.generator.state_meta()
        return meta

    def load_state(self, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
        own = {k: v for k, v in tensors.items() if not k.startswith(("generator.", "bank."))}
        self.model.load_state(own, meta)
        if self.generator is not None:
            self.generator.load_state(unprefixed("generator.", tensors), meta["generator"])
            if "bank.z" in tensors:
                self.bank = GeneratorBank(tensors["bank.z"].to(self.device).clone(),
                                          tensors["bank.images"].to(self.device).clone())
        else:
            self.load_generator(unprefixed("generator.", tensors))
