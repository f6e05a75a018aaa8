"""ICD (paper 002, Du et al. 2021): IGEBM's contrastive divergence plus the KL term through the last Langevin
step and a nearest-neighbour entropy term, with augmented replay-buffer transitions."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from ebmctl.methods.icd import Icd
from ebmctl.recipes.blocks import ChainEbmRecipe
from ebmctl.released.icd import GLOBALS as RELEASE_GLOBALS
from ebmctl.released.icd import convert as convert_release
from ebmctl.specs import Section


class IcdMethodSpec(Section):
    name: Literal["icd"] = "icd"
    l2: float = Field(1.0, ge=0, description="Coefficient of E+^2 + E-^2.")
    kl: bool = Field(True, description="KL term L_opt: energy of the last step, differentiated through it.")
    kl_coeff: float = Field(1.0, ge=0, description="Weight of L_opt.")
    kl_chains: int = Field(128, ge=1, le=65_536, description="Chains differentiated through their last step.")
    entropy: bool = Field(True, description="Nearest-neighbour entropy term L_ent on the differentiable last step.")
    entropy_coeff: float = Field(0.3, ge=0, description="Weight of L_ent.")
    entropy_refs: int = Field(100, ge=1, le=65_536, description="Augmented buffer samples the nearest neighbour is taken over.")
    entropy_min_buffer: int = Field(1000, ge=1, le=10_000_000, description="Buffer fill below which L_ent is skipped.")
    condition: str | None = Field(
        None, description="Train a conditional model: 'class', or one binary attribute of the dataset (e.g. "
        "'smiling'), whose models compose with `ebmctl compose --runs`."
    )


class IcdRecipe(ChainEbmRecipe):
    name = "icd"
    spec = IcdMethodSpec
    release = staticmethod(convert_release)
    release_globals = RELEASE_GLOBALS
    conditional = True
    method = Icd
    probe_protocol = "cebm"  # as paper 001 probes IGEBM and VAEs
    defaults: ClassVar[dict[str, Any]] = {
        "net": {"name": "icd_resnet"},
        "sampler": {"steps": 40, "step_size": 100.0, "noise": 0.001, "noise_first": True, "grad_clamp": None},
        "buffer": {"policy": "reservoir", "size": 10_000, "reinit": 0.001, "augment": True},
        "train": {"batch_size": 128, "lr": 2e-4, "betas": (0.0, 0.9), "grad_clip": 0.5, "ema": 0.99},
        "sample": {"schedule": "pool", "steps": 1000, "aug_every": 10, "plain_steps": 300},
    }


RECIPE = IcdRecipe()
