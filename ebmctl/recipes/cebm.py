"""CEBM (paper 001, Wu et al. 2021): a conjugate EBM whose energy is a latent-variable model with a Gaussian (CEBM)
or Gaussian-mixture (CEBMM) bias, trained with SGLD chains kept in fixed slots."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from ebmctl.methods.cebm import Cebm
from ebmctl.recipes.blocks import ChainEbmRecipe
from ebmctl.released.cebm import convert as convert_release
from ebmctl.specs import NetSection, Section


class CebmConvSpec(NetSection):
    role: ClassVar[str | None] = "carries CEBM's conjugate bias"
    name: Literal["cebm_conv"] = "cebm_conv"
    channels: tuple[int, ...] = Field((64, 128, 256, 512), description="Filters of each conv (MNIST: 64,64,32,32).")
    kernels: tuple[int, ...] = Field((3, 4, 4, 4), description="Kernel of each conv.")
    strides: tuple[int, ...] = Field((1, 2, 2, 2), description="Stride of each conv.")
    paddings: tuple[int, ...] = Field((1, 1, 1, 1), description="Padding of each conv.")
    hidden: int = Field(128, ge=0, le=65_536, description="FC layer before the two heads (paper: 128; released "
                        "camera-ready scripts: 1024 CIFAR-10/SVHN, 256 MNIST; 0: none, as the later released code).")
    latent_dim: int = Field(128, ge=1, le=8192, description="Dimension of the latent z (and of t1, t2).")
    activation: Literal["silu", "leaky_relu"] = Field("silu", description="Activation (released code: SiLU).")
    bias: Literal["gaussian", "mixture"] = Field(
        "gaussian", description="Conjugate bias: spherical standard Gaussian (CEBM) or a Gaussian mixture (CEBMM)."
    )
    components: int = Field(50, ge=1, le=10_000, description="Mixture components (bias = mixture).")
    learn_bias: bool = Field(False, description="Learn the mixture means and log-stds with the net.")

    @model_validator(mode="after")
    def _layers(self) -> CebmConvSpec:
        if not self.channels or not len(self.channels) == len(self.kernels) == len(self.strides) == len(self.paddings):
            raise ValueError("channels, kernels, strides and paddings must list the same number of convs")
        if not all(1 <= c <= 8192 for c in self.channels):
            raise ValueError("channels must lie between 1 and 8192")
        if not all(1 <= k <= 64 for k in (*self.kernels, *self.strides)) or not all(0 <= p <= 64 for p in self.paddings):
            raise ValueError("kernels and strides must lie between 1 and 64, paddings between 0 and 64")
        return self


class CebmMethodSpec(Section):
    name: Literal["cebm"] = "cebm"
    l2: float = Field(0.1, ge=0, description="Energy regularisation l2 (E+^2 + E-^2) (paper and released "
                      "camera-ready scripts: 0.1; the released mixture scripts: 1e-3).")
    data_noise: float = Field(0.03, ge=0, description="Std of the Gaussian noise added to data before encoding.")
    ood_noise: float = Field(0.0, ge=0, description="Std of the Gaussian noise added to inputs (in [-1, 1]) before "
                             "the energy and grad_norm OOD scores (released evaluation: 0.03; 0: none). Seeded per "
                             "scored set.")


class CebmRecipe(ChainEbmRecipe):
    name = "cebm"
    spec = CebmMethodSpec
    method = Cebm
    probe_protocol = "cebm"
    net = CebmConvSpec
    nets = (CebmConvSpec,)
    slots = True
    release = staticmethod(convert_release)
    release_companions = ("buffer",)
    defaults: ClassVar[dict[str, Any]] = {
        "net": {"name": "cebm_conv"},
        "sampler": {"steps": 60, "step_size": 1.0, "noise": 0.0075, "noise_first": False, "grad_clamp": None,
                    "pixel_clamp": None},
        "buffer": {"policy": "slots", "size": 5000, "reinit": 0.05, "uint8": False, "augment": False},
        "train": {"batch_size": 100, "lr": 5e-5, "betas": (0.9, 0.999), "grad_clip": None, "ema": None},
        "sample": {"steps": 500, "aug_every": 0, "plain_steps": 0},
    }


RECIPE = CebmRecipe()
