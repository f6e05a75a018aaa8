"""IGEBM (paper 002's ancestor, Du & Mordatch 2019): contrastive divergence with short-run Langevin chains from a
replay buffer, and an L2 penalty on the energies."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from ebmctl.methods.igebm import Igebm
from ebmctl.recipes.blocks import ChainEbmRecipe
from ebmctl.released.igebm import convert as convert_release
from ebmctl.specs import Section


class IgebmMethodSpec(Section):
    name: Literal["igebm"] = "igebm"
    l2: float = Field(1.0, ge=0, description="Coefficient of E+^2 + E-^2.")
    condition: str | None = Field(
        None, description="Train a conditional model: 'class', or one binary attribute of the dataset (e.g. "
        "'smiling'), whose models compose with `ebmctl compose --runs`."
    )


class IgebmRecipe(ChainEbmRecipe):
    name = "igebm"
    spec = IgebmMethodSpec
    release = staticmethod(convert_release)
    release_format = "tensorflow"
    conditional = True
    method = Igebm
    probe_protocol = "cebm"  # as paper 001 probes IGEBM and VAEs
    defaults: ClassVar[dict[str, Any]] = {
        "net": {"name": "igebm_resnet"},
        "sampler": {"steps": 60, "step_size": 10.0, "noise": 0.005, "noise_first": True, "grad_clamp": 0.01},
        "buffer": {"policy": "fifo", "size": 10_000, "reinit": 0.05, "augment": False},
        "train": {"batch_size": 128, "lr": 3e-4, "optimizer": "adam_clip", "betas": (0.0, 0.999), "grad_clip": None,
                  "ema": None},
        "sample": {"steps": 60, "aug_every": 0, "plain_steps": 0},
    }


RECIPE = IgebmRecipe()
