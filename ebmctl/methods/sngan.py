"""SN-GAN (Miyato et al. 2018), the generator a Hat EBM refines: a ResNet generator and a spectrally
normalised discriminator trained with the hinge loss.

Every training step updates the discriminator on one data batch,

    L_D = mean relu(1 - D(x)) + mean relu(1 + D(G(z))),

and every ``n_dis``-th step also the generator, L_G = -mean D(G(z)) (Mimicry's schedule: n_dis
discriminator updates per generator update, so ``train.steps`` counts discriminator updates). Both take
Adam; images are in [-1, 1] inside the method. Sampling draws G(z), z ~ N(0, I).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ebmctl.losses.generators import hinge_discriminator_loss, hinge_generator_loss
from ebmctl.methods.energy_model import EnergyModel
from ebmctl.methods.model_state import GeneratorPair


class Sngan(GeneratorPair):
    name = "sngan"
    pixel_range = (-1.0, 1.0)
    PARTNER = "discriminator"

    def __init__(self, generator: EnergyModel, discriminator: EnergyModel, *, n_dis: int = 5,
                 device: torch.device | str = "cpu") -> None:
        self.generator = generator
        self.discriminator = discriminator
        self.n_dis = n_dis
        self.device = torch.device(device)
        self.chains = None
        self.last_negatives: Tensor | None = None

    def _fake(self, n: int) -> Tensor:
        return self.generator.forward(self.generator.net.sample_latent(n, device=self.device))

    def train_step(self, x: Tensor, y: Tensor | None = None) -> dict[str, float]:
        self.generator.net.train()
        disc = self.discriminator.net.train()
        real = self.to_model(x)
        with torch.no_grad():
            fake = self._fake(x.shape[0])
        d_real, d_fake = self.discriminator.forward(real), self.discriminator.forward(fake)
        d_loss = hinge_discriminator_loss(d_real, d_fake)
        self.discriminator.step(d_loss)
        metrics = {"loss": d_loss.item(), "d_real": d_real.detach().mean().item(),
                   "d_fake": d_fake.detach().mean().item()}
        if self.discriminator.updates % self.n_dis == 0:
            disc.requires_grad_(False)
            try:
                fake = self._fake(x.shape[0])
                g_loss = hinge_generator_loss(disc(fake))
                self.generator.step(g_loss)
            finally:
                disc.requires_grad_(True)
            metrics["g_loss"] = g_loss.item()
            self.last_negatives = self.to_images(fake.detach())
        return metrics
