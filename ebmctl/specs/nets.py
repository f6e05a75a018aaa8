"""Specs of the nets any method may be given, and of the generators a generator-based method builds on.

A net spec whose ``role`` is set is not a plain energy net: only the method that asks for it by name may use it
(``role`` says why, in the error a mismatch gets). The nets that belong to one method live in its recipe.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from ebmctl.specs.sections import Section, check_normalisation


class NetSection(Section):
    """A net's spec: its ``name`` picks the architecture."""

    role: ClassVar[str | None] = None  # set: not a plain energy net, and why (only its own method may use it)


class IcdResNetSpec(NetSection):
    name: Literal["icd_resnet"] = "icd_resnet"
    width: int = Field(64, ge=4, le=1024, description="Filters of the first stage (released code: 64).")
    multiscale: bool = Field(True, description="Sum energies at full, half and quarter resolution.")
    self_attn: bool = Field(True, description="SAGAN self-attention after the second stage (8x8 at 32 px).")
    norm: bool = Field(True, description="InstanceNorm (<=128 ch) / GroupNorm(32) inside residual blocks.")
    spectral_norm: bool = Field(False, description="Spectrally normalised convs instead of weight standardisation.")
    label_maps: int = Field(
        10, ge=0, le=1024, description="Width of the FiLM label maps the released code builds in every block (unused "
        "when unconditional; 10 reproduces its parameter count, 0 drops them)."
    )


class IgebmResNetSpec(NetSection):
    name: Literal["igebm_resnet"] = "igebm_resnet"
    width: int = Field(128, ge=4, le=1024, description="Filters of the first stage (released code: 128).")
    self_attn: bool = Field(False, description="Self-attention in place of the fourth residual block.")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout inside residual blocks (training mode only).")


class SmallConvSpec(NetSection):
    name: Literal["small_conv"] = "small_conv"
    width: int = Field(32, ge=4, le=1024, description="Filters of the first layer.")
    multiscale: bool = Field(False, description="Add half and quarter resolution branches.")
    down_kernel: int = Field(3, ge=3, le=4, description="Kernel of the stride-2 convs (4: no checkerboard).")


class MlpSpec(NetSection):
    name: Literal["mlp"] = "mlp"
    hidden: int = Field(128, ge=2, le=8192, description="Hidden units per layer.")
    depth: int = Field(3, ge=1, le=32, description="Hidden layers.")


class ConvMlpSpec(NetSection):
    name: Literal["conv_mlp"] = "conv_mlp"
    channels: tuple[int, ...] = Field((64, 128, 256, 512), description="Filters of each conv (MNIST: 64,64,32,32).")
    kernels: tuple[int, ...] = Field((3, 4, 4, 4), description="Kernel of each conv.")
    strides: tuple[int, ...] = Field((1, 2, 2, 2), description="Stride of each conv.")
    paddings: tuple[int, ...] = Field((1, 1, 1, 1), description="Padding of each conv.")
    hidden: tuple[int, ...] = Field((128, 128), description="FC layers between the convs and the scalar energy; the "
                                    "last one's output is the representation (paper 001's IGEBM: 128, 128).")
    activation: Literal["silu", "leaky_relu"] = Field("silu", description="Activation (CEBM's released code: SiLU).")

    @model_validator(mode="after")
    def _layers(self) -> ConvMlpSpec:
        if not self.channels or not len(self.channels) == len(self.kernels) == len(self.strides) == len(self.paddings):
            raise ValueError("channels, kernels, strides and paddings must list the same number of convs")
        if not all(1 <= c <= 8192 for c in (*self.channels, *self.hidden)):
            raise ValueError("channels and hidden widths must lie between 1 and 8192")
        if not all(1 <= k <= 64 for k in (*self.kernels, *self.strides)) or not all(0 <= p <= 64 for p in self.paddings):
            raise ValueError("kernels and strides must lie between 1 and 64, paddings between 0 and 64")
        if not self.hidden:
            raise ValueError("hidden lists at least one FC layer (its output is the representation)")
        return self


class ResNetEncoderSpec(NetSection):
    role: ClassVar[str | None] = "is an encoder"
    name: Literal["resnet18"] = "resnet18"
    width: int = Field(64, ge=4, le=1024, description="Channels of the first stage (64: ResNet-18).")
    out_dim: int = Field(128, ge=2, le=8192, description="Output dimension of the projection head.")
    hidden: int = Field(512, ge=1, le=65_536, description="Hidden width of the projection head.")
    batch_norm: bool = Field(True, description="BatchNorm in the backbone (EBCLR: none).")
    activation: Literal["relu", "leaky_relu"] = Field("relu", description="ReLU, or LeakyReLU(0.2) (EBCLR).")
    head_bn: bool = Field(False, description="BatchNorm in the projection head (CLEL's encoder: yes).")
    normalize: bool = Field(False, description="Standardise inputs with mean/std first.")
    mean: tuple[float, ...] | None = Field(None, description="Per-channel input mean (None: CIFAR-10's).")
    std: tuple[float, ...] | None = Field(None, description="Per-channel input std (None: CIFAR-10's).")

    @model_validator(mode="after")
    def _normalisation(self) -> ResNetEncoderSpec:
        check_normalisation(self.mean, self.std)
        return self


class GeneratorSpec(Section):
    """The architecture of a generator: an SN-GAN generator or an autoencoder's decoder (the output size and channels
    are the data's)."""

    kind: Literal["sngan", "image_latent"] = Field(
        "sngan", description="sngan: the SN-GAN ResNet generator on a latent vector; image_latent: the autoencoder "
        "decoder on an image-shaped latent at half the image side."
    )
    nz: int = Field(128, ge=1, le=4096, description="Latent dimension (sngan).")
    latent_channels: int = Field(1, ge=1, le=64, description="Latent channels (image_latent).")
    ngf: int | None = Field(None, ge=4, le=8192, description="Generator width (None: the SN-GAN default).")
    out_scale: float = Field(1.0, gt=0, description="The generator outputs out_scale * tanh.")


# The nets every recipe may offer an energy net from; recipes add their own (ebmctl.recipes).
SHARED_NETS: tuple[type[NetSection], ...] = (IcdResNetSpec, IgebmResNetSpec, SmallConvSpec, MlpSpec, ConvMlpSpec,
                                          ResNetEncoderSpec)
