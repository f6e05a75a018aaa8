"""SN-GAN (Miyato et al. 2018): the generator a refining Hat EBM (paper 003) stands on."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
from pydantic import Field

from ebmctl.data import DataInfo
from ebmctl.methods.energy_model import EnergyModel
from ebmctl.methods.sngan import Sngan
from ebmctl.nets.sngan import IMAGE_SIZES, SnganDiscriminator
from ebmctl.recipes.base import Recipe
from ebmctl.recipes.blocks import build_generator, check_square, optim_kwargs
from ebmctl.specs import GeneratorSpec, NetSection, Section


class SnganSpec(NetSection):
    role: ClassVar[str | None] = "is a generator and a discriminator"
    name: Literal["sngan"] = "sngan"
    nz: int = Field(128, ge=1, le=4096, description="Latent dimension of the generator.")
    ngf: int | None = Field(None, ge=16, le=8192, description="Generator width (None: 256 at 32 px, 1024 at 64/128).")
    ndf: int | None = Field(None, ge=16, le=8192, description="Discriminator width (None: 128 at 32 px, 1024 at 64/128).")


class SnganMethodSpec(Section):
    name: Literal["sngan"] = "sngan"
    n_dis: int = Field(5, ge=1, le=100, description="Discriminator updates per generator update.")


class SnganRecipe(Recipe):
    name = "sngan"
    spec = SnganMethodSpec
    method = Sngan
    net = SnganSpec
    nets = (SnganSpec,)
    langevin = False
    defaults: ClassVar[dict[str, Any]] = {
        "net": {"name": "sngan"},
        "train": {"batch_size": 64, "lr": 2e-4, "optimizer": "adam", "betas": (0.0, 0.9), "grad_clip": None,
                  "ema": None},
    }

    def generator_arch(self, spec: Any) -> GeneratorSpec:
        return GeneratorSpec(kind="sngan", nz=spec.net.nz, ngf=spec.net.ngf)

    def build(self, spec: Any, info: DataInfo, device: torch.device) -> Sngan:
        """The ResNet generator and the spectrally normalised discriminator at the data's size."""
        size = check_square(self.name, info, IMAGE_SIZES)
        gen = build_generator(self.generator_arch(spec), size, info.shape[0]).to(device)
        disc = SnganDiscriminator(size, ndf=spec.net.ndf, in_channels=info.shape[0]).to(device)
        kwargs = optim_kwargs(spec)
        return Sngan(EnergyModel(gen, ema=spec.train.ema, **kwargs), EnergyModel(disc, **kwargs),
                     n_dis=spec.method.n_dis, device=device)


RECIPE = SnganRecipe()
