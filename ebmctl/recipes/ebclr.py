"""EBCLR (paper 004, Kim & Ye 2022): contrastive learning as an EBM of pairs of views, with MSGLD chains kept in
fixed slots."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
from pydantic import Field

from ebmctl.data import DataInfo
from ebmctl.methods.ebclr import Ebclr
from ebmctl.recipes.base import Recipe
from ebmctl.recipes.blocks import augmentation, encoder_model, sampler_params
from ebmctl.released.ebclr import convert as convert_release
from ebmctl.samplers.buffers import SlotBuffer, make_buffer
from ebmctl.specs import Section
from ebmctl.specs.nets import ResNetEncoderSpec


class EbclrMethodSpec(Section):
    name: Literal["ebclr"] = "ebclr"
    temperature: float = Field(0.1, gt=0, description="tau of the similarity -||z - z'||^2 / tau.")
    lmda1: float = Field(1e-3, ge=0, description="Weight of the projection-norm penalty in the generative term.")
    lmda2: float = Field(0.1, ge=0, description="Weight lambda of the generative term.")
    sigma_min: float = Field(0.01, ge=0, description="MSGLD noise std of chains that have run often.")
    sigma_max: float = Field(0.05, ge=0, description="MSGLD noise std of fresh chains.")
    noise_decay: float = Field(3.0, gt=0, description="K of MSGLD: visits over which the noise falls to sigma_min.")
    view_noise: float = Field(0.03, ge=0, description="Std of Gaussian noise added to every augmented view.")


class EbclrRecipe(Recipe):
    name = "ebclr"
    spec = EbclrMethodSpec
    method = Ebclr
    net = ResNetEncoderSpec
    slots = True
    probe_protocol = "ebclr"
    release = staticmethod(convert_release)
    defaults: ClassVar[dict[str, Any]] = {
        "net": {"name": "resnet18", "batch_norm": False, "activation": "leaky_relu", "hidden": 512},
        "sampler": {"steps": 10, "step_size": 0.05, "noise": 0.01, "noise_first": False, "grad_clamp": 1.0,
                    "pixel_clamp": None},
        "buffer": {"policy": "slots", "size": 50_000, "reinit": 0.2, "uint8": False, "augment": False},
        "augment": {"crop_scale": (0.08, 1.0), "flip": True, "jitter": (0.8, 0.8, 0.8, 0.2), "jitter_p": 0.8,
                    "gray_p": 0.2, "blur_p": 1.0},
        "train": {"batch_size": 128, "lr": 2e-4, "optimizer": "adam", "betas": (0.9, 0.999), "grad_clip": None,
                  "ema": None},
    }

    def build(self, spec: Any, info: DataInfo, device: torch.device) -> Ebclr:
        model = encoder_model(spec, info, device)
        buffer = make_buffer("slots", spec.buffer.size, quantize=False, value_range=Ebclr.pixel_range, device=device)
        assert isinstance(buffer, SlotBuffer)
        return Ebclr(model, augment=augmentation(spec, tuple(info.shape)), sampler=sampler_params(spec, model.net),
                     buffer=buffer, shape=tuple(info.shape), rho=spec.buffer.reinit, device=device,
                     **spec.method.model_dump(exclude={"name"}))


RECIPE = EbclrRecipe()
