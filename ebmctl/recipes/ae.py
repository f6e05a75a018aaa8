"""The autoencoder with spherical image-shaped latents whose decoder a retrofit Hat EBM (paper 003) stands on."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
from pydantic import Field

from ebmctl.data import DataInfo
from ebmctl.errors import SpecError
from ebmctl.methods.ae import Autoencoder
from ebmctl.methods.energy_model import EnergyModel
from ebmctl.nets.sngan import SphereEncoder
from ebmctl.recipes.base import Recipe
from ebmctl.recipes.blocks import build_generator, optim_kwargs
from ebmctl.specs import GeneratorSpec, NetSection, Section


class AutoencoderSpec(NetSection):
    role: ClassVar[str | None] = "is an encoder and a decoder"
    name: Literal["autoencoder"] = "autoencoder"
    nef: int = Field(256, ge=4, le=8192, description="Width of the encoder (the inference net).")
    ngf: int = Field(256, ge=4, le=8192, description="Width of the decoder (the generator a retrofit Hat EBM uses).")
    latent_channels: int = Field(1, ge=1, le=64, description="Channels of the image-shaped latent at half the image "
                                 "side (paper: 16x16x1 for 32 px).")
    out_scale: float = Field(2.0, gt=0, description="The decoder outputs out_scale * tanh (released code: 2).")


class AeMethodSpec(Section):
    name: Literal["ae"] = "ae"
    loss_factor: float = Field(1000.0, gt=0, description="Scale of the reconstruction MSE.")
    latent_noise: float = Field(0.02, ge=0, description="Std of the Gaussian noise added to latents before decoding.")


class AeRecipe(Recipe):
    name = "ae"
    spec = AeMethodSpec
    method = Autoencoder
    probe_protocol = "cebm"  # as paper 001 probes IGEBM and VAEs
    net = AutoencoderSpec
    nets = (AutoencoderSpec,)
    langevin = False
    defaults: ClassVar[dict[str, Any]] = {
        "net": {"name": "autoencoder"},
        "train": {"steps": 49_900, "batch_size": 128, "lr": 1e-4, "optimizer": "adam", "betas": (0.9, 0.999),
                  "grad_clip": None, "ema": None},
    }

    def generator_arch(self, spec: Any) -> GeneratorSpec:
        net = spec.net
        return GeneratorSpec(kind="image_latent", latent_channels=net.latent_channels, ngf=net.ngf,
                             out_scale=net.out_scale)

    def build(self, spec: Any, info: DataInfo, device: torch.device) -> Autoencoder:
        net_spec, m = spec.net, spec.method
        size = info.shape[-1]
        if info.kind != "image" or size % 2 or size < 8 or info.shape[-2] != size:
            raise SpecError(f"ae models square images with an even side of at least 8 px; {info.name} is "
                            f"{'x'.join(map(str, info.shape))}", "set data.image_size, e.g. 32")
        enc = SphereEncoder(size, nef=net_spec.nef, in_channels=info.shape[0],
                            latent_channels=net_spec.latent_channels).to(device)
        gen = build_generator(self.generator_arch(spec), size, info.shape[0]).to(device)
        kwargs = optim_kwargs(spec)
        return Autoencoder(EnergyModel(enc, **kwargs), EnergyModel(gen, ema=spec.train.ema, **kwargs),
                           loss_factor=m.loss_factor, latent_noise=m.latent_noise, device=device)


RECIPE = AeRecipe()
