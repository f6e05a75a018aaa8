"""The deterministic autoencoder behind Hat EBM's retrofit experiment (Hill et al. 2022, section 4.2 and
appendix E): a generator that was never trained as a GAN, whose latent space a Hat EBM then learns.

The encoder maps an image x (in [-1, 1] inside the method) to an image-shaped latent z = enc(x) on the
sphere of radius sqrt(m), m its number of entries; the decoder reconstructs from a slightly perturbed
latent, and both nets minimise one loss with a shared backward pass,

    L = loss_factor * mean (dec(z + latent_noise * eps) - x)^2,   eps ~ N(0, I).

The released code trains it with the MSE scaled by 1000 and latent noise 0.02, Adam at learning rate
1e-4 for both nets, batches of 128, for 100 epochs. Sampling decodes z ~ N(0, I) of the latent's shape,
which is how the decoder serves as the generator a Hat EBM refines.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ebmctl.methods.energy_model import EnergyModel
from ebmctl.methods.model_state import GeneratorPair


class Autoencoder(GeneratorPair):
    """Encoder and decoder trained jointly on the noisy-latent reconstruction loss; the decoder is ``net``."""

    name = "ae"
    pixel_range = (-1.0, 1.0)
    PARTNER = "encoder"

    def __init__(
        self,
        encoder: EnergyModel,
        generator: EnergyModel,
        *,
        loss_factor: float = 1000.0,
        latent_noise: float = 0.02,
        device: torch.device | str = "cpu",
    ) -> None:
        self.encoder = encoder
        self.generator = generator
        self.loss_factor = loss_factor
        self.latent_noise = latent_noise
        self.device = torch.device(device)
        self.chains = None
        self.last_negatives: Tensor | None = None

    def train_step(self, x: Tensor, y: Tensor | None = None) -> dict[str, float]:
        """One joint update of both nets on images ``x`` in [0, 1]; labels are ignored."""
        self.encoder.net.train()
        self.generator.net.train()
        target = self.to_model(x)
        z = self.encoder.forward(target)
        z_in = z + self.latent_noise * torch.randn_like(z) if self.latent_noise > 0 else z
        x_rec = self.generator.forward(z_in)
        mse = (x_rec - target).pow(2).mean()
        loss = self.loss_factor * mse
        self.encoder.zero_grad()
        self.generator.zero_grad()
        loss.backward()
        enc_norm = self.encoder.update()
        dec_norm = self.generator.update()
        self.last_negatives = self.to_images(x_rec.detach())
        return {
            "loss": loss.item(),
            "mse": mse.item(),
            "z_norm": z.detach().flatten(1).norm(dim=1).mean().item(),
            "enc_grad_norm": enc_norm,
            "dec_grad_norm": dec_norm,
        }

    def reconstruct(self, x: Tensor, ema: bool = True) -> Tensor:
        """dec(enc(x)) of images ``x`` in [0, 1], as images in [0, 1] (no latent noise)."""
        enc, dec = self.encoder.eval_net(ema), self.generator.eval_net(ema)
        with torch.no_grad():
            return self.to_images(dec(enc(self.to_model(x))))

    def representation(self, x: Tensor, ema: bool = True) -> Tensor:
        """The encoder's latents of images ``x`` in [0, 1], flattened to (B, m)."""
        enc = self.encoder.eval_net(ema)
        with torch.no_grad():
            return enc(self.to_model(x)).flatten(1)
