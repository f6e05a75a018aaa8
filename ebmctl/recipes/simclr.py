"""SimCLR (Chen et al. 2020), the baseline EBCLR (paper 004) is measured against: NT-Xent on two augmented views."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
from pydantic import Field

from ebmctl.data import DataInfo
from ebmctl.methods.simclr import Simclr
from ebmctl.recipes.base import Recipe
from ebmctl.recipes.blocks import augmentation, encoder_model
from ebmctl.specs import Section
from ebmctl.specs.nets import ResNetEncoderSpec


class SimclrMethodSpec(Section):
    name: Literal["simclr"] = "simclr"
    temperature: float = Field(0.1, gt=0, description="NT-Xent temperature (cosine similarity).")


class SimclrRecipe(Recipe):
    name = "simclr"
    spec = SimclrMethodSpec
    method = Simclr
    net = ResNetEncoderSpec
    probe_protocol = "ebclr"  # as paper 004 probes contrastive encoders
    langevin = False
    defaults: ClassVar[dict[str, Any]] = {
        "net": {"name": "resnet18", "batch_norm": True, "activation": "relu", "hidden": 512},
        "augment": {"crop_scale": (0.08, 1.0), "flip": True, "jitter": (0.8, 0.8, 0.8, 0.2), "jitter_p": 0.8,
                    "gray_p": 0.2, "blur_p": 1.0},
        "train": {"batch_size": 128, "lr": 0.015, "optimizer": "sgd", "momentum": 0.9, "weight_decay": 1e-4,
                  "grad_clip": None, "ema": None},
    }

    def build(self, spec: Any, info: DataInfo, device: torch.device) -> Simclr:
        model = encoder_model(spec, info, device)
        return Simclr(model, augment=augmentation(spec, tuple(info.shape)), temperature=spec.method.temperature,
                      device=device)


RECIPE = SimclrRecipe()
