"""SimCLR (Chen et al. 2020), the contrastive baseline EBCLR is measured against.

Two augmented views of every image go through the encoder separately (so BatchNorm sees each view batch
on its own, as the released baselines do) and the NT-Xent loss pulls the two projections together. The
probe reads the pooled backbone features. The same encoder and NT-Xent code serve CLEL's latent encoder.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ebmctl.losses.contrastive import nt_xent
from ebmctl.methods.energy_model import EnergyModel
from ebmctl.methods.model_state import ModelState, PixelRange
from ebmctl.samplers.transitions import Transition


class Simclr(PixelRange, ModelState):
    name = "simclr"

    def __init__(
        self,
        model: EnergyModel,
        *,
        augment: Transition,
        temperature: float = 0.1,
        view_noise: float = 0.0,
        device: torch.device | str = "cpu",
    ) -> None:
        self.model = model
        self.augment = augment
        self.temperature = temperature
        self.view_noise = view_noise
        self.device = torch.device(device)
        self.chains = None
        self.last_negatives: Tensor | None = None

    def views(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Two independently augmented views of every image (one draw per image), in the encoder's range."""
        v = self.augment(torch.cat([x, x]))
        if self.view_noise > 0:
            v = v + self.view_noise * torch.randn_like(v)
        v1, v2 = self.to_model(v).chunk(2)
        return v1, v2

    def train_step(self, x: Tensor, y: Tensor | None = None) -> dict[str, float]:
        self.net.train()
        v1, v2 = self.views(x)
        z1, z2 = self.model.forward(v1), self.model.forward(v2)
        loss = nt_xent(torch.cat([self.gather(z1), self.gather(z2)]), self.temperature)
        grad_norm = self.model.step(loss)
        return {"loss": loss.item(), "grad_norm": grad_norm}

    def representation(self, x: Tensor, ema: bool = True) -> Tensor:
        """Pooled backbone features of images in [0, 1] (the projection head is not used)."""
        net = self.model.eval_net(ema)
        with torch.no_grad():
            return net.backbone(self.to_model(x))
