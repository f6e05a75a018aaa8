"""What every method repeats: the pixel range it works in, and saving and loading its state through its
trained models."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from ebmctl.methods.energy_model import EnergyModel
from ebmctl.methods.replication import Replicated
from ebmctl.methods.state import prefixed, unprefixed


class PixelRange:
    """Images outside a method are in [0, 1]; ``pixel_range`` is the range its net and chains work in."""

    pixel_range: tuple[float, float] = (0.0, 1.0)

    def to_model(self, x: Tensor) -> Tensor:
        """Images in [0, 1] to the method's pixel range."""
        lo, hi = self.pixel_range
        return x if (lo, hi) == (0.0, 1.0) else x * (hi - lo) + lo

    def to_images(self, x: Tensor) -> Tensor:
        """States in the method's pixel range back to images in [0, 1] (clamped when rescaled)."""
        lo, hi = self.pixel_range
        return x if (lo, hi) == (0.0, 1.0) else ((x - lo) / (hi - lo)).clamp(0.0, 1.0)


class ModelState(Replicated):
    """The trained net of a method held in one :class:`EnergyModel` called ``model``, with its save and load."""

    model: EnergyModel

    @property
    def net(self) -> nn.Module:
        return self.model.net

    @property
    def has_ema(self) -> bool:
        """Whether evaluation uses EMA weights."""
        return self.model.ema_net is not None

    def weight_tensors(self) -> dict[str, Tensor]:
        return self.model.weight_tensors()

    def load_weights(self, tensors: dict[str, Tensor]) -> None:
        self.model.load_weights(tensors)

    def state_tensors(self) -> dict[str, Tensor]:
        return self.model.state_tensors()

    def state_meta(self) -> dict[str, Any]:
        return self.model.state_meta()

    def load_state(self, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
        self.model.load_state(tensors, meta)


class GeneratorPair(PixelRange, Replicated):
    """A method that trains a generator beside a second net, the attribute named ``PARTNER`` (SN-GAN's
    discriminator, the autoencoder's encoder): ``net`` is the generator, and every tensor is saved under the
    name of its model."""

    PARTNER: str
    generator: EnergyModel
    device: torch.device

    def models(self) -> dict[str, EnergyModel]:
        return {"generator": self.generator, self.PARTNER: getattr(self, self.PARTNER)}

    def sample(self, n: int, *, ema: bool = True, callback: Callable[[int, Tensor], None] | None = None,
               **_: Any) -> Tensor:
        """``n`` images G(z), z ~ N(0, I), in [0, 1]; the Langevin settings a command passes do not apply."""
        net = self.generator.eval_net(ema)
        with torch.no_grad():
            x = self.to_images(net(net.sample_latent(n, device=self.device)))
        if callback is not None:
            callback(0, x)
        return x

    @property
    def net(self) -> nn.Module:
        return self.generator.net

    @property
    def has_ema(self) -> bool:
        return self.generator.ema_net is not None

    def weight_tensors(self) -> dict[str, Tensor]:
        return {k: v for name, m in self.models().items() for k, v in prefixed(f"{name}.", m.weight_tensors()).items()}

    def load_weights(self, tensors: dict[str, Tensor]) -> None:
        for name, m in self.models().items():
            m.load_weights(unprefixed(f"{name}.", tensors))

    def state_tensors(self) -> dict[str, Tensor]:
        return {k: v for name, m in self.models().items() for k, v in prefixed(f"{name}.", m.state_tensors()).items()}

    def state_meta(self) -> dict[str, Any]:
        return {name: m.state_meta() for name, m in self.models().items()}

    def load_state(self, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
        for name, m in self.models().items():
            m.load_state(unprefixed(f"{name}.", tensors), meta[name])
