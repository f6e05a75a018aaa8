"""Typed run specs: pydantic models, presets and ``--set`` overrides.

Precedence: field defaults < the method's defaults (its released code's settings) < preset < ``--set``
< dedicated command-line options. Every model forbids unknown keys, so a typo is an error.
"""

from __future__ import annotations

import copy
import difflib
import json
import re
import tomllib
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ebmctl.errors import SpecError


class Section(BaseModel):
    """Base of every spec section: unknown keys are errors, values are validated on assignment, and no number
    may be NaN or infinite."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _no_booleans_for_numbers(cls, data: Any) -> Any:
        """true/false where a number is expected is a mistake (pydantic alone would read true as 1)."""
        if isinstance(data, dict):
            for key, value in data.items():
                field = cls.model_fields.get(key) if isinstance(key, str) else None
                if isinstance(value, bool) and field is not None:
                    kinds = set(typing.get_args(field.annotation)) or {field.annotation}
                    if bool not in kinds and kinds & {int, float}:
                        raise ValueError(f"{key}: expected a number, got {str(value).lower()}")
        return data


# ----------------------------------------------------------------------------------------------- data


class DataSpec(Section):
    name: str = Field("shapes32", description="Dataset name (see `ebmctl presets` docs: embedded or real).")
    root: str | None = Field(
        None, description="Directory holding real datasets; defaults to --data-root or $EBMCTL_DATA."
    )
    split: str = Field("train", description="Split to train on.")
    image_size: int | None = Field(None, ge=4, le=1024, description="Resize images to this size (None: native).")
    channels: int | None = Field(None, ge=1, le=3, description="Convert images to 1 or 3 channels (None: native).")
    verify_checksums: bool = Field(True, description="Verify torchvision's md5 sums of real datasets.")
    download: bool = Field(False, description="Let torchvision download a missing real dataset.")
    dequantize: bool = Field(
        True, description="Map uint8 pixels to (v + U[0,1)) / 256 as the released IGEBM/ICD code does."
    )
    workers: int = Field(0, ge=0, le=64, description="DataLoader worker processes (0: load in the main process).")
    classes: tuple[str | int, ...] | None = Field(
        None, description="Keep only these classes of a labelled dataset, by name or index (None: all); labels keep "
        "their indices. Training, probe, sample --class, compose and the FID reference see these classes only, the "
        "class and attribute judges all of them; `ebmctl ood --in` the dataset tests on them (docs/datasets.md)."
    )

    @field_validator("classes", mode="before")
    @classmethod
    def _class_items(cls, value: Any) -> Any:
        # pydantic would turn true into 1 and 1.0 into 1: a class is named by a string or an integer only
        if isinstance(value, list | tuple):
            if not value:
                raise ValueError("classes lists at least one class (none keeps every class)")
            bad = [v for v in value if isinstance(v, bool) or not isinstance(v, str | int)]
            if bad:
                raise ValueError(f"a class is a name or an index, not {json.dumps(bad[0])}")
            if any(isinstance(v, int) and v < 0 for v in value):
                raise ValueError("class indices are at least 0")
        return value


# ----------------------------------------------------------------------------------------------- nets


class IcdResNetSpec(Section):
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


class IgebmResNetSpec(Section):
    name: Literal["igebm_resnet"] = "igebm_resnet"
    width: int = Field(128, ge=4, le=1024, description="Filters of the first stage (released code: 128).")
    self_attn: bool = Field(False, description="Self-attention in place of the fourth residual block.")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout inside residual blocks (training mode only).")


class SmallConvSpec(Section):
    name: Literal["small_conv"] = "small_conv"
    width: int = Field(32, ge=4, le=1024, description="Filters of the first layer.")
    multiscale: bool = Field(False, description="Add half and quarter resolution branches.")
    down_kernel: int = Field(3, ge=3, le=4, description="Kernel of the stride-2 convs (4: no checkerboard).")


class MlpSpec(Section):
    name: Literal["mlp"] = "mlp"
    hidden: int = Field(128, ge=2, le=8192, description="Hidden units per layer.")
    depth: int = Field(3, ge=1, le=32, description="Hidden layers.")


def _check_betas(key: str, betas: tuple[float, float]) -> None:
    if not all(0 <= b < 1 for b in betas):
        raise ValueError(f"{key} must be two Adam betas, each at least 0 and below 1")


def _check_normalisation(mean: tuple[float, ...] | None, std: tuple[float, ...] | None) -> None:
    """Per-channel input statistics: one value or three (per RGB channel), and a positive std."""
    for key, values in (("mean", mean), ("std", std)):
        if values is not None and len(values) not in (1, 3):
            raise ValueError(f"{key} lists one value per channel: 1 or 3 of them, not {len(values)}")
    if std is not None and min(std) <= 0:
        raise ValueError("std must be positive")


class ClelResNetSpec(Section):
    name: Literal["clel_resnet"] = "clel_resnet"
    channels: tuple[int, ...] = Field(
        (128, 128, 256, 256), description="Channels of each stage (CLEL base; small 64,64,128,128; large 256 x4)."
    )
    blocks: tuple[int, ...] = Field((2, 2, 2, 2), description="Residual blocks per stage (small: 1 each).")
    scales: Literal[1, 3] = Field(1, description="3: three ResNets on 32/16/8 px, features concatenated (large).")
    hidden: int = Field(2048, ge=1, le=65_536, description="Hidden width of the head f and the projection g.")
    latent_dim: int = Field(128, ge=2, le=8192, description="Dimension of f(x) and of the latent z.")
    projection: Literal["mlp", "linear", "identity"] = Field(
        "mlp", description="The projection g of f/|f|: the bias-free MLP latent-hidden-latent (paper), or Table 5's "
        "ablations: one bias-free linear layer, or no g (identity: the latent is f/|f| itself)."
    )
    spectral_norm: bool = Field(True, description="Spectral normalisation on every conv.")
    mean: tuple[float, ...] | None = Field(None, description="Per-channel input mean (None: CIFAR-10's).")
    std: tuple[float, ...] | None = Field(None, description="Per-channel input std (None: CIFAR-10's).")

    @model_validator(mode="after")
    def _stages(self) -> ClelResNetSpec:
        if not self.channels or len(self.channels) != len(self.blocks):
            raise ValueError("channels and blocks must list the same number of stages")
        if min(self.channels) < 1 or min(self.blocks) < 1:
            raise ValueError("channels and blocks must be positive")
        if max(self.channels) > 8192 or max(self.blocks) > 64:
            raise ValueError("channels must be at most 8192 and blocks at most 64 per stage")
        _check_normalisation(self.mean, self.std)
        return self


class CebmConvSpec(Section):
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


class ConvMlpSpec(Section):
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


class ResNetEncoderSpec(Section):
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
        _check_normalisation(self.mean, self.std)
        return self


class SnganSpec(Section):
    name: Literal["sngan"] = "sngan"
    nz: int = Field(128, ge=1, le=4096, description="Latent dimension of the generator.")
    ngf: int | None = Field(None, ge=16, le=8192, description="Generator width (None: 256 at 32 px, 1024 at 64/128).")
    ndf: int | None = Field(None, ge=16, le=8192, description="Discriminator width (None: 128 at 32 px, 1024 at 64/128).")


class HatNetSpec(Section):
    name: Literal["hat"] = "hat"
    ndf: int | None = Field(None, ge=16, le=8192, description="Width of the hat network, the SN-GAN discriminator "
                            "without spectral norm (None: 128 at 32 px, 1024 at 64/128; released code: 256 at 32 px).")
    # The field defaults are the layout of runs saved before these keys existed (their spec.json lacks them);
    # new hat runs take the released layout from METHOD_DEFAULTS.
    pooling: Literal["sum", "mean"] = Field(
        "sum", description="How the last features are pooled over H and W (released code: mean; sum scales H by "
        "H*W, 64 at 32 px)."
    )
    bias: bool = Field(True, description="Bias on the output layer (released code: none).")
    block_hidden: Literal["in", "out"] = Field(
        "in", description="Width of a residual block's first conv: its input's (Mimicry) or its output's (released "
        "code); differs at 64 and 128 px only."
    )


class AutoencoderSpec(Section):
    name: Literal["autoencoder"] = "autoencoder"
    nef: int = Field(256, ge=4, le=8192, description="Width of the encoder (the inference net).")
    ngf: int = Field(256, ge=4, le=8192, description="Width of the decoder (the generator a retrofit Hat EBM uses).")
    latent_channels: int = Field(1, ge=1, le=64, description="Channels of the image-shaped latent at half the image "
                                 "side (paper: 16x16x1 for 32 px).")
    out_scale: float = Field(2.0, gt=0, description="The decoder outputs out_scale * tanh (released code: 2).")


NetSpec = Annotated[
    IcdResNetSpec | IgebmResNetSpec | SmallConvSpec | MlpSpec | ClelResNetSpec | CebmConvSpec | ResNetEncoderSpec
    | SnganSpec | HatNetSpec | AutoencoderSpec | ConvMlpSpec,
    Field(discriminator="name"),
]


# -------------------------------------------------------------------------------------------- sampler


class SamplerSpec(Section):
    steps: int = Field(60, ge=1, le=100_000, description="Langevin steps per training iteration.")
    step_size: float = Field(10.0, gt=0, description="Multiplier of the energy gradient in each step.")
    noise: float = Field(0.005, ge=0, description="Standard deviation of the Gaussian noise added each step.")
    noise_first: bool = Field(True, description="Add the noise before evaluating the gradient (IGEBM, ICD).")
    grad_clamp: float | None = Field(None, gt=0, description="Clamp each gradient element to +-this (None: off).")
    pixel_clamp: tuple[float, float] | None = Field((0.0, 1.0), description="Clamp chains to this range after each step.")
    precision: Literal["fp32", "bf16"] = Field(
        "fp32", description="Energy net precision inside the sampler; bf16 runs it under autocast while the chains, "
        "gradients and updates stay float32 (docs/performance.md)."
    )
    layout: Literal["auto", "channels_last", "contiguous"] = Field(
        "auto", description="Memory layout of image chains; auto: channels_last for the nets measured faster in it."
    )
    cuda_graph: bool = Field(False, description="On CUDA, capture one Langevin step as a CUDA graph and replay it.")

    @model_validator(mode="after")
    def _ordered_clamp(self) -> SamplerSpec:
        if self.pixel_clamp is not None and not self.pixel_clamp[0] < self.pixel_clamp[1]:
            raise ValueError("pixel_clamp must be [low, high] with low < high")
        return self


class BufferSpec(Section):
    policy: Literal["fifo", "reservoir", "slots", "none"] = Field(
        "fifo", description="fifo: newest replace oldest; reservoir: uniform over all negatives ever seen; "
        "slots: chains drawn from random slots and written back to them (CLEL)."
    )
    size: int = Field(10_000, ge=1, le=10_000_000, description="Capacity in samples.")
    reinit: float = Field(0.05, ge=0, le=1, description="Probability that a chain restarts from uniform noise.")
    uint8: bool = Field(True, description="Store images as uint8 (dequantised on draw).")
    augment: bool = Field(False, description="Apply a random augmentation to every draw (ICD's transitions).")


class AugmentSpec(Section):
    backend: Literal["v2", "tensor"] = Field(
        "v2", description="v2: torchvision.transforms.v2 called image by image; tensor: the same moves vectorised "
        "over the batch with per-image parameters (faster, stays on the GPU)."
    )
    crop_scale: tuple[float, float] = Field((0.08, 1.0), description="RandomResizedCrop area range.")
    flip: bool = Field(True, description="Random horizontal flip.")
    jitter: tuple[float, float, float, float] = Field(
        (0.8, 0.8, 0.8, 0.4), description="ColorJitter brightness, contrast, saturation, hue."
    )
    jitter_p: float = Field(0.8, ge=0, le=1, description="Probability of the colour jitter.")
    gray_p: float = Field(0.2, ge=0, le=1, description="Probability of converting to grayscale.")
    blur_p: float = Field(0.0, ge=0, le=1, description="Probability of a Gaussian blur (sigma 0.1-2).")

    @model_validator(mode="after")
    def _ordered_scale(self) -> AugmentSpec:
        lo, hi = self.crop_scale
        if not 0 < lo <= hi <= 1:
            raise ValueError("crop_scale must be [low, high] with 0 < low <= high <= 1")
        if min(self.jitter[:3]) < 0 or not 0 <= self.jitter[3] <= 0.5:
            raise ValueError("jitter must be [brightness, contrast, saturation, hue] with the first three >= 0 and "
                             "hue between 0 and 0.5")
        return self


# ---------------------------------------------------------------------------------------------- train


class TrainSpec(Section):
    steps: int = Field(1000, ge=1, le=100_000_000, description="Optimiser steps.")
    batch_size: int = Field(128, ge=1, le=65_536, description="Data (and chain) batch size.")
    lr: float = Field(3e-4, gt=0, description="Learning rate.")
    optimizer: Literal["adam", "adam_clip", "sgd"] = Field(
        "adam", description="Adam (betas); adam_clip: IGEBM's released Adam, each gradient element clipped to "
        "3 sqrt(v_hat) + 0.1 first (docs/methods/igebm.md); or SGD (momentum)."
    )
    betas: tuple[float, float] = Field((0.0, 0.999), description="Adam betas.")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum.")
    weight_decay: float = Field(0.0, ge=0, description="L2 weight decay of the optimiser.")
    grad_clip: float | None = Field(None, gt=0, description="Clip the parameter-gradient norm (None: off).")
    grad_clip_mode: Literal["total", "per_tensor"] = Field(
        "total", description="grad_clip bounds the norm of all gradients together (total) or of each parameter "
        "tensor on its own (per_tensor, as Hat EBM's released code)."
    )
    ema: float | None = Field(None, ge=0, lt=1, description="EMA decay of the weights (None: no EMA).")
    log_every: int = Field(10, ge=1, le=100_000_000, description="Steps between lines of metrics.jsonl.")
    checkpoint_every: int = Field(1000, ge=1, le=100_000_000, description="Steps between checkpoints (and at the end).")
    sample_every: int = Field(1000, ge=1, le=100_000_000, description="Steps between grids of training negatives.")
    loggers: list[Literal["tensorboard"]] = Field(
        default_factory=list, description="Where to log besides metrics.jsonl and samples/: tensorboard writes "
        "the same scalars and the negatives grids under <run>/tensorboard (pip install 'ebmctl[tensorboard]')."
    )

    @model_validator(mode="after")
    def _betas(self) -> TrainSpec:
        _check_betas("betas", self.betas)
        return self


class GuardSpec(Section):
    """The divergence guard: what counts as a run going wrong, and what a rollback changes (docs/reliability.md)."""

    enabled: bool = Field(True, description="Roll a diverging run back to its last good checkpoint (off: stop at "
                          "the first non-finite value).")
    max_energy: float | None = Field(1e6, gt=0, description="Largest |E+| or |E-| (batch means) of a healthy run "
                                     "(None: no limit).")
    max_gap: float | None = Field(None, gt=0, description="Largest |E+ - E-| of a healthy run (None: no limit).")
    min_diversity: float = Field(0.05, ge=0, description="Smallest spread of the negatives across the batch, "
                                 "relative to the data batch's, before they count as collapsed (0: off).")
    max_rollbacks: int = Field(3, ge=0, le=1000, description="Rollbacks before the run stops as diverged.")
    lr_factor: float = Field(0.5, gt=0, le=1, description="Each rollback multiplies every learning rate by this.")
    step_size_factor: float = Field(1.0, gt=0, le=1, description="Each rollback multiplies the Langevin step size "
                                    "(Hat EBM: both epsilons) by this.")
    reinit_buffer: bool = Field(True, description="Each rollback empties the replay buffers (chains restart from "
                                "noise).")


class SampleSpec(Section):
    """Test-time sampling defaults for `ebmctl sample` (overridden by its options)."""

    steps: int = Field(100, ge=1, le=1_000_000, description="Langevin steps from the initial chains.")
    n: int = Field(64, ge=1, le=1_000_000, description="Number of samples.")
    init: Literal["noise", "buffer"] = Field("noise", description="Start from uniform noise or the replay buffer.")
    aug_every: int = Field(0, ge=0, le=1_000_000, description="Augment the chains every K steps (0: never; ICD Algorithm 2).")
    plain_steps: int = Field(0, ge=0, le=1_000_000, description="Final steps without augmentation.")
    step_size: float | None = Field(None, gt=0, description="Step size (None: the training sampler's).")
    noise: float | None = Field(None, ge=0, description="Noise (None: the training sampler's).")
    schedule: Literal["chains", "pool"] = Field(
        "chains", description="chains: n independent chains of `steps` steps (ICD Algorithm 2 when aug_every > 0); "
        "pool: ICD's released test script, a pool advanced in rounds of aug_every steps over batches drawn with "
        "replacement (`steps` and `plain_steps` do not apply)."
    )
    pool: int = Field(1000, ge=1, le=1_000_000, description="Chains in the pool (pool schedule; released: 1000); "
                      "each pool returns up to this many samples.")
    pool_batch: int = Field(128, ge=1, le=65_536, description="Chains a round draws from the pool, with replacement "
                            "(pool schedule; released: 128).")
    pool_rounds: int = Field(100, ge=1, le=1_000_000, description="Rounds of the pool schedule, those filling the "
                             "pool included (released: 100).")
    pool_plain_rounds: int = Field(30, ge=0, le=1_000_000, description="Last rounds of the pool schedule without "
                                   "augmentation, each on one of pool_plain_splits fixed slices (released: 30).")
    pool_plain_splits: int = Field(2, ge=1, le=1_000_000, description="Slices the plain rounds visit in turn "
                                   "(released: 2 for CIFAR-10).")

    @model_validator(mode="after")
    def _pool(self) -> SampleSpec:
        if self.schedule == "pool":
            fill = -(-self.pool // self.pool_batch)
            if self.aug_every < 1:
                raise ValueError("the pool schedule runs rounds of aug_every steps: aug_every must be at least 1")
            if self.pool_rounds < max(fill, self.pool_plain_rounds) or self.pool_plain_splits > self.pool:
                raise ValueError(f"pool_rounds ({self.pool_rounds}) must cover the {fill} rounds that fill the pool "
                                 f"and pool_plain_rounds ({self.pool_plain_rounds}); pool_plain_splits at most pool")
        return self


class EvalSpec(Section):
    inception_weights: str | None = Field(
        None, description="Local Inception-v3 weights for FID/KID (pt_inception-2015-12-05); else the judge."
    )
    fid_samples: int = Field(1000, ge=10, le=1_000_000, description="Samples (and reference images) for --fid.")
    fid_reference: Literal["held_out", "train"] = Field(
        "held_out", description="Split the --fid reference images come from: the dataset's held-out split (test; val "
        "for ImageNet) or its training split."
    )
    judge_steps: int = Field(1500, ge=10, le=10_000_000, description="Training steps of the in-domain judge on first use.")
    attribute_judge_steps: int | None = Field(
        None, ge=1, le=10_000_000, description="Training steps of the attribute judge of compose (None: 1000 for the CNN, 4000 "
        "for CelebA's ResNet-18)."
    )


# ---------------------------------------------------------------------------------------------- methods


class IgebmMethodSpec(Section):
    name: Literal["igebm"] = "igebm"
    l2: float = Field(1.0, ge=0, description="Coefficient of E+^2 + E-^2.")
    condition: str | None = Field(
        None, description="Train a conditional model: 'class', or one binary attribute of the dataset (e.g. "
        "'smiling'), whose models compose with `ebmctl compose --runs`."
    )


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


class EncoderSpec(Section):
    name: Literal["resnet18"] = "resnet18"
    width: int = Field(64, ge=4, le=1024, description="Channels of the first stage (64: ResNet-18).")
    out_dim: int = Field(128, ge=2, le=8192, description="Output dimension of the MLP head.")
    hidden: int = Field(2048, ge=1, le=65_536, description="Hidden width of the MLP head.")


class ClelMethodSpec(Section):
    name: Literal["clel"] = "clel"
    alpha: float = Field(1.0, ge=0, description="Energy regularisation: alpha (E+^2 + E-^2).")
    beta: float = Field(0.01, ge=0, description="Weight of the latent term -beta g(f/|f|)^T z in E(x, z).")
    temperature: float = Field(0.2, gt=0, description="NT-Xent temperature of the latent encoder.")
    extra_negatives: bool = Field(True, description="Use the EBM's latents of the negatives as extra negatives.")
    encoder: EncoderSpec = Field(default_factory=EncoderSpec, description="The contrastive latent encoder h.")
    encoder_lr: float = Field(0.03, gt=0, description="SGD learning rate of the encoder (cosine schedule).")
    encoder_momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum of the encoder.")
    encoder_weight_decay: float = Field(5e-4, ge=0, description="SGD weight decay of the encoder.")
    encoder_batch_size: int | None = Field(
        None, ge=1, le=65_536, description="Images per step for the encoder (large: 256); None: train.batch_size."
    )
    warmup: int = Field(2000, ge=0, le=100_000_000, description="Linear learning-rate warm-up steps of the EBM.")
    ema_halflife: float = Field(
        20000, gt=0, description="EMA half-life in images: decay 0.5^(batch/halflife), on after halflife/batch steps."
    )
    ood_beta: float = Field(0.1, ge=0, description="beta of the joint OOD score (eq. 14; the released README: 0.1).")
    guidance: float | None = Field(
        None, ge=0, description="beta of E(x|z) in conditional sampling and composition (None: beta)."
    )
    latent_examples: int = Field(500, ge=1, le=1_000_000, description="Labelled examples averaged into a class or attribute latent.")


class CebmMethodSpec(Section):
    name: Literal["cebm"] = "cebm"
    l2: float = Field(0.1, ge=0, description="Energy regularisation l2 (E+^2 + E-^2) (paper and released "
                      "camera-ready scripts: 0.1; the released mixture scripts: 1e-3).")
    data_noise: float = Field(0.03, ge=0, description="Std of the Gaussian noise added to data before encoding.")
    ood_noise: float = Field(0.0, ge=0, description="Std of the Gaussian noise added to inputs (in [-1, 1]) before "
                             "the energy and grad_norm OOD scores (released evaluation: 0.03; 0: none). Seeded per "
                             "scored set.")


class EbclrMethodSpec(Section):
    name: Literal["ebclr"] = "ebclr"
    temperature: float = Field(0.1, gt=0, description="tau of the similarity -||z - z'||^2 / tau.")
    lmda1: float = Field(1e-3, ge=0, description="Weight of the projection-norm penalty in the generative term.")
    lmda2: float = Field(0.1, ge=0, description="Weight lambda of the generative term.")
    sigma_min: float = Field(0.01, ge=0, description="MSGLD noise std of chains that have run often.")
    sigma_max: float = Field(0.05, ge=0, description="MSGLD noise std of fresh chains.")
    noise_decay: float = Field(3.0, gt=0, description="K of MSGLD: visits over which the noise falls to sigma_min.")
    view_noise: float = Field(0.03, ge=0, description="Std of Gaussian noise added to every augmented view.")


class SimclrMethodSpec(Section):
    name: Literal["simclr"] = "simclr"
    temperature: float = Field(0.1, gt=0, description="NT-Xent temperature (cosine similarity).")


class SnganMethodSpec(Section):
    name: Literal["sngan"] = "sngan"
    n_dis: int = Field(5, ge=1, le=100, description="Discriminator updates per generator update.")


class HatMethodSpec(Section):
    name: Literal["hat"] = "hat"
    mode: Literal["refine", "retrofit", "synthesis"] = Field(
        "refine", description="refine: joint y/z sampling on a frozen GAN generator; retrofit: the same on an "
        "autoencoder's decoder; synthesis: z fixed, generator trained in tandem from a bank of past samples."
    )
    temperature: float = Field(1e-3, gt=0, description="T of U(y, z) = H(G(z) + y) / T.")
    epsilon: float = Field(1e-4, gt=0, description="Langevin epsilon of the residual image y (step eps^2/2, noise eps).")
    epsilon_latent: float = Field(5e-3, ge=0, description="Langevin epsilon of the latent z (ignored in synthesis).")
    max_residual_step: float | None = Field(
        2.5, gt=0, description="Cap on the L2 norm of each sample's residual gradient step (None: off)."
    )
    prior_sigma: float | None = Field(
        None, gt=0, description="sigma of a Gaussian prior on y, tau = 1/(2 sigma^2) added to the energy (None: off)."
    )
    data_noise: float = Field(1e-3, ge=0, description="Std of the Gaussian noise added to data images.")
    latent_scale: float = Field(1.0, gt=0, description="Chains start at z = latent_scale * N(0, I), y = 0.")
    generator_lr: float = Field(1e-4, gt=0, description="Adam learning rate of the generator (synthesis).")
    generator_betas: tuple[float, float] = Field((0.9, 0.999), description="Adam betas of the generator (synthesis).")
    generator_loss_factor: float = Field(1000.0, gt=0, description="Scale of the generator's MSE loss (synthesis).")
    bank_size: int = Field(10_000, ge=1, le=10_000_000, description="Pairs (z, sample) in the synthesis bank.")

    @model_validator(mode="after")
    def _betas(self) -> HatMethodSpec:
        _check_betas("generator_betas", self.generator_betas)
        return self


class AeMethodSpec(Section):
    name: Literal["ae"] = "ae"
    loss_factor: float = Field(1000.0, gt=0, description="Scale of the reconstruction MSE.")
    latent_noise: float = Field(0.02, ge=0, description="Std of the Gaussian noise added to latents before decoding.")


MethodSpec = Annotated[
    IgebmMethodSpec | IcdMethodSpec | ClelMethodSpec | CebmMethodSpec | EbclrMethodSpec | SimclrMethodSpec
    | SnganMethodSpec | HatMethodSpec | AeMethodSpec,
    Field(discriminator="name"),
]


class GeneratorSpec(Section):
    """The architecture of a Hat EBM's generator (the output size and channels are the data's)."""

    kind: Literal["sngan", "image_latent"] = Field(
        "sngan", description="sngan: the SN-GAN ResNet generator on a latent vector; image_latent: the autoencoder "
        "decoder on an image-shaped latent at half the image side."
    )
    nz: int = Field(128, ge=1, le=4096, description="Latent dimension (sngan).")
    latent_channels: int = Field(1, ge=1, le=64, description="Latent channels (image_latent).")
    ngf: int | None = Field(None, ge=4, le=8192, description="Generator width (None: the SN-GAN default).")
    out_scale: float = Field(1.0, gt=0, description="The generator outputs out_scale * tanh.")


class HatSpec(Section):
    """The generator a Hat EBM stands on."""

    generator: str | None = Field(
        None, description="refine/retrofit: the generator to build on: a run directory (sngan or ae run), "
        "latest:PRESET (the newest completed run of that preset) or a generator .safetensors file."
    )
    generator_net: GeneratorSpec = Field(
        default_factory=GeneratorSpec, description="Generator architecture: read from hat.generator for "
        "refine/retrofit, the generator trained from scratch in synthesis."
    )


def _expand_name(value: Any) -> Any:
    """Allow ``method = "icd"`` as shorthand for ``[method] name = "icd"`` (same for net)."""
    return {"name": value} if isinstance(value, str) else value


class RunSpec(Section):
    """Everything a training run needs; saved as spec.json and inside every checkpoint."""

    preset: str | None = Field(None, description="Name of the preset this spec came from.")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="Seed of every random draw of the run.")
    method: MethodSpec = Field(default_factory=IcdMethodSpec, description="Training method and its loss terms.")
    data: DataSpec = Field(default_factory=DataSpec)
    net: NetSpec = Field(default_factory=IcdResNetSpec, description="Energy network.")
    sampler: SamplerSpec = Field(default_factory=SamplerSpec)
    buffer: BufferSpec = Field(default_factory=BufferSpec)
    augment: AugmentSpec = Field(default_factory=AugmentSpec)
    train: TrainSpec = Field(default_factory=TrainSpec)
    sample: SampleSpec = Field(default_factory=SampleSpec)
    eval: EvalSpec = Field(default_factory=EvalSpec)
    hat: HatSpec = Field(default_factory=HatSpec, description="Hat EBM: the generator it stands on.")
    guard: GuardSpec = Field(default_factory=GuardSpec, description="Divergence guard of training.")

    @model_validator(mode="before")
    @classmethod
    def _shorthands(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            for key in ("method", "net"):
                if key in data:
                    data[key] = _expand_name(data[key])
        return data


# The released code's settings per method: the layer between field defaults and presets.
METHOD_DEFAULTS: dict[str, dict[str, Any]] = {
    "igebm": {
        "net": {"name": "igebm_resnet"},
        "sampler": {"steps": 60, "step_size": 10.0, "noise": 0.005, "noise_first": True, "grad_clamp": 0.01},
        "buffer": {"policy": "fifo", "size": 10_000, "reinit": 0.05, "augment": False},
        "train": {"batch_size": 128, "lr": 3e-4, "optimizer": "adam_clip", "betas": (0.0, 0.999), "grad_clip": None,
                  "ema": None},
        "sample": {"steps": 60, "aug_every": 0, "plain_steps": 0},
    },
    "icd": {
        "net": {"name": "icd_resnet"},
        "sampler": {"steps": 40, "step_size": 100.0, "noise": 0.001, "noise_first": True, "grad_clamp": None},
        "buffer": {"policy": "reservoir", "size": 10_000, "reinit": 0.001, "augment": True},
        "train": {"batch_size": 128, "lr": 2e-4, "betas": (0.0, 0.9), "grad_clip": 0.5, "ema": 0.99},
        "sample": {"schedule": "pool", "steps": 1000, "aug_every": 10, "plain_steps": 300},
    },
    "clel": {
        "net": {"name": "clel_resnet"},
        "sampler": {"steps": 60, "step_size": 100.0, "noise": 0.001, "noise_first": False, "grad_clamp": None},
        "buffer": {"policy": "slots", "size": 10_000, "reinit": 0.001, "uint8": False, "augment": True},
        "augment": {"crop_scale": (0.08, 1.0), "flip": True, "jitter": (0.4, 0.4, 0.4, 0.1), "jitter_p": 0.8,
                    "gray_p": 0.2},
        "train": {"steps": 100_000, "batch_size": 64, "lr": 1e-4, "betas": (0.0, 0.999), "grad_clip": None,
                  "ema": None},
        "sample": {"steps": 600, "aug_every": 60, "plain_steps": 0},
    },
    "cebm": {
        "net": {"name": "cebm_conv"},
        "sampler": {"steps": 60, "step_size": 1.0, "noise": 0.0075, "noise_first": False, "grad_clamp": None,
                    "pixel_clamp": None},
        "buffer": {"policy": "slots", "size": 5000, "reinit": 0.05, "uint8": False, "augment": False},
        "train": {"batch_size": 100, "lr": 5e-5, "betas": (0.9, 0.999), "grad_clip": None, "ema": None},
        "sample": {"steps": 500, "aug_every": 0, "plain_steps": 0},
    },
    "ebclr": {
        "net": {"name": "resnet18", "batch_norm": False, "activation": "leaky_relu", "hidden": 512},
        "sampler": {"steps": 10, "step_size": 0.05, "noise": 0.01, "noise_first": False, "grad_clamp": 1.0,
                    "pixel_clamp": None},
        "buffer": {"policy": "slots", "size": 50_000, "reinit": 0.2, "uint8": False, "augment": False},
        "augment": {"crop_scale": (0.08, 1.0), "flip": True, "jitter": (0.8, 0.8, 0.8, 0.2), "jitter_p": 0.8,
                    "gray_p": 0.2, "blur_p": 1.0},
        "train": {"batch_size": 128, "lr": 2e-4, "optimizer": "adam", "betas": (0.9, 0.999), "grad_clip": None,
                  "ema": None},
    },
    "sngan": {
        "net": {"name": "sngan"},
        "train": {"batch_size": 64, "lr": 2e-4, "optimizer": "adam", "betas": (0.0, 0.9), "grad_clip": None,
                  "ema": None},
    },
    "hat": {
        "net": {"name": "hat", "pooling": "mean", "bias": False, "block_hidden": "out"},
        "data": {"dequantize": False},  # pixels v / 255; the data noise is method.data_noise alone
        "sampler": {"steps": 250, "pixel_clamp": None},
        "train": {"steps": 20_000, "batch_size": 128, "lr": 1e-5, "optimizer": "adam", "betas": (0.9, 0.999),
                  "grad_clip": None, "ema": None},
        "sample": {"steps": 250, "aug_every": 0, "plain_steps": 0},
    },
    "ae": {
        "net": {"name": "autoencoder"},
        "train": {"steps": 49_900, "batch_size": 128, "lr": 1e-4, "optimizer": "adam", "betas": (0.9, 0.999),
                  "grad_clip": None, "ema": None},
    },
    "simclr": {
        "net": {"name": "resnet18", "batch_norm": True, "activation": "relu", "hidden": 512},
        "augment": {"crop_scale": (0.08, 1.0), "flip": True, "jitter": (0.8, 0.8, 0.8, 0.2), "jitter_p": 0.8,
                    "gray_p": 0.2, "blur_p": 1.0},
        "train": {"batch_size": 128, "lr": 0.015, "optimizer": "sgd", "momentum": 0.9, "weight_decay": 1e-4,
                  "grad_clip": None, "ema": None},
    },
}

METHOD_NAMES = tuple(METHOD_DEFAULTS)


# --------------------------------------------------------------------------------------- dict plumbing


def deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """Merge ``top`` into a copy of ``base``; nested dicts merge, everything else is replaced.

    A section whose ``name`` changes (another net or method) is replaced whole, not merged.
    """
    out = copy.deepcopy(base)
    for key, value in top.items():
        old = out.get(key)
        if isinstance(value, dict) and isinstance(old, dict):
            if "name" in value and "name" in old and value["name"] != old["name"]:
                out[key] = copy.deepcopy(value)
            else:
                out[key] = deep_merge(old, value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def set_path(tree: dict[str, Any], path: str, value: Any) -> None:
    """Set ``a.b.c`` in a nested dict, creating sections on the way."""
    keys = path.split(".")
    node = tree
    for key in keys[:-1]:
        child = node.get(key)
        if isinstance(child, str) and key in ("method", "net"):
            child = {"name": child}
        if not isinstance(child, dict):
            child = {}
        node[key] = child
        node = child
    node[keys[-1]] = value


def parse_literal(text: str) -> Any:
    """Parse a ``--set`` value as a TOML literal (never evaluated); a bare word stays a string."""
    if "\n" in text or "\r" in text:  # TOML would read a second line as another key, and it would be lost
        raise SpecError(f"the value {text!r} spans several lines", "give each key its own --set")
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        if any(c in text for c in "[]{}\"'") or text.strip() != text or text == "":
            raise SpecError(
                f"cannot parse the value {text!r} as a TOML literal",
                'quote strings with spaces, e.g. --set data.root="/my data"; lists look like [0.0, 1.0]',
            ) from None
        return text


def parse_override(item: str) -> tuple[str, Any]:
    """Split ``a.b=c`` into its path and parsed value."""
    if "=" not in item:
        raise SpecError(f"--set {item!r} has no '='", "write --set key.path=value, e.g. --set train.steps=500")
    path, _, raw = item.partition("=")
    path = path.strip()
    if not path or any(not part.isidentifier() for part in path.split(".")):
        raise SpecError(f"--set {item!r}: {path!r} is not a key path", "keys look like train.steps or sampler.noise")
    return path, parse_literal(raw.strip())


# ------------------------------------------------------------------------------------- key checking


def _section_model(annotation: Any, value: Any) -> type[BaseModel] | None:
    """The pydantic model a dict value is validated against (resolving discriminated unions by name)."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is Annotated:
        return _section_model(args[0], value)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    members = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
    if not members:
        return None
    name = value.get("name") if isinstance(value, dict) else None
    for member in members:
        if member.model_fields.get("name") and member.model_fields["name"].default == name:
            return member
    return None


def union_names(annotation: Any) -> list[str]:
    """The ``name`` values a discriminated union accepts."""
    if typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    return [a.model_fields["name"].default for a in typing.get_args(annotation) if hasattr(a, "model_fields")]


def check_keys(tree: dict[str, Any], model: type[BaseModel] | None = None, prefix: str = "") -> None:
    """Raise SpecError naming the first unknown key, with a "did you mean" from the valid keys."""
    model = model or RunSpec
    fields = model.model_fields
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if key not in fields:
            known = sorted(fields)
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.5)
            near = f"did you mean {prefix}{close[0]}?" if close else f"valid keys here: {', '.join(known)}"
            raise SpecError(f"unknown key {path!r}", near)
        annotation = fields[key].annotation
        sub = _section_model(annotation, value)
        if key == "name" and isinstance(value, str):
            continue
        if isinstance(value, dict):
            if sub is None:
                names = union_names(annotation)
                if names:
                    raise SpecError(
                        f"unknown {path}.name {value.get('name')!r}",
                        _did_you_mean(str(value.get("name")), names),
                    )
                continue
            check_keys(value, sub, prefix=f"{path}.")
        elif isinstance(value, str) and key in ("method", "net"):
            names = union_names(annotation)
            if value not in names:
                raise SpecError(f"unknown {path} {value!r}", _did_you_mean(value, names))


def _did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.4)
    return f"did you mean {close[0]!r}? choices: {', '.join(choices)}" if close else f"choices: {', '.join(choices)}"


def _nones(value: Any) -> Any:
    """TOML has no null: the string "none" stands for None (e.g. --set train.ema=none)."""
    if isinstance(value, dict):
        return {k: _nones(v) for k, v in value.items()}
    if isinstance(value, str) and value.lower() == "none":
        return None
    return value


def validate_spec(tree: dict[str, Any]) -> RunSpec:
    """Validate a merged dict into a RunSpec, turning pydantic's report into one line."""
    check_keys(tree)
    try:
        return RunSpec.model_validate(_nones(tree))
    except ValidationError as exc:
        err = exc.errors()[0]
        loc, message = err["loc"], err["msg"].removeprefix("Value error, ")
        named = re.match(r"(\w+): (.*)", message) if err["type"] == "value_error" else None
        if named and _field_at((*loc, named[1])) is not None:  # a section's own check that names one of its keys
            loc, message = (*loc, named[1]), named[2]
        parts = [str(p) for i, p in enumerate(loc) if not (i and loc[i - 1] in ("method", "net") and _is_union_tag(p))]
        where = ".".join(parts)
        key = ".".join(str(p) for p in parts[: next((i for i, p in enumerate(parts) if p.isdigit()), len(parts))])
        got = err.get("input")
        shown = "" if isinstance(got, dict) else f" (got {json.dumps(got, default=str)})"
        field = _field_at(loc)
        expected = _expected(field) if field is not None else None
        raise SpecError(
            f"bad value for {where or 'spec'}: {message}{shown}",
            f"{key} takes {expected}; see docs/presets.md" if expected else
            "see `ebmctl presets show NAME` for valid values, or docs/presets.md",
        ) from None


def _is_union_tag(part: Any) -> bool:
    return isinstance(part, str) and part in {n for a in (MethodSpec, NetSpec) for n in union_names(a)}


def _field_at(loc: tuple[Any, ...]) -> Any:
    """The FieldInfo a pydantic error location points at (None when it points at a section or list item)."""
    node: Any = RunSpec  # a model, or a discriminated union of models whose tag comes next
    field = None
    for part in loc:
        if not isinstance(part, str):  # an item of a list: the list's field
            return field if node is None else None
        if node is None:
            return None
        if isinstance(node, type) and issubclass(node, BaseModel):
            if part not in node.model_fields:
                return None
            field = node.model_fields[part]
            node = _model_or_union(field.annotation)
        else:
            members = [m for m in typing.get_args(node) if m.model_fields["name"].default == part]
            if not members:
                return None
            node, field = members[0], None
    return field if node is None else None


def _model_or_union(annotation: Any) -> Any:
    if typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return annotation if union_names(annotation) else None


def _expected(field: Any) -> str | None:
    """What a scalar field accepts, in words: its type, range or choices (None for anything else)."""
    annotation = field.annotation
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    optional = len(args) < len(typing.get_args(annotation))
    kind = args[0] if optional and len(args) == 1 else annotation
    bounds = []
    for meta in field.metadata:
        for attr, sign in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            if getattr(meta, attr, None) is not None:
                bounds.append(f"{sign} {getattr(meta, attr):_}".replace("_", ","))
    limits = f" {' and '.join(bounds)}" if bounds else ""
    if kind is bool:
        text = "true or false"
    elif kind is int:
        text = f"an integer{limits}"
    elif kind is float:
        text = f"a finite number{limits}"
    elif kind is str:
        text = "a string"
    elif typing.get_origin(kind) is Literal:
        text = "one of " + ", ".join(str(c) for c in typing.get_args(kind))
    elif typing.get_origin(kind) is tuple:
        items = typing.get_args(kind)
        what = ("integers" if items and items[0] is int else "finite numbers" if items and items[0] is float
                else "names or integers")
        text = f"a list of {what}" if Ellipsis in items else f"a list of {len(items)} {what}"
    elif typing.get_origin(kind) is list and typing.get_origin(typing.get_args(kind)[0]) is Literal:
        choices = ", ".join(f'"{c}"' for c in typing.get_args(typing.get_args(kind)[0]))
        text = f"a list of {choices} (may be empty)"
    else:
        return None
    return text + (" (or none)" if optional else "")


# -------------------------------------------------------------------------------------------- presets


def presets_dir() -> Path:
    """The folder of preset TOML files, shipped inside the package (the repository's presets/ points here)."""
    return Path(__file__).resolve().parent / "presets"


def preset_names() -> list[str]:
    return sorted(p.stem for p in presets_dir().glob("*.toml"))


def preset_path(name_or_path: str) -> Path:
    """Resolve a preset name or a path to a TOML file."""
    if not name_or_path or "\x00" in name_or_path:
        raise SpecError(f"{name_or_path!r} is not a preset name or path", "list presets with `ebmctl presets list`")
    try:
        candidate = Path(name_or_path).expanduser()
    except RuntimeError:  # ~user of a user that does not exist
        raise SpecError(f"preset file {name_or_path} does not exist", "write the path without ~user") from None
    is_path = candidate.suffix == ".toml" or "/" in name_or_path
    path = presets_dir() / f"{name_or_path}.toml"
    if candidate.is_dir() and (is_path or not path.is_file()):
        raise SpecError(f"preset {name_or_path} is a directory, not a .toml file",
                        "give a preset name (list them with `ebmctl presets list`) or the path of a .toml file")
    if is_path:
        if not candidate.is_file():
            raise SpecError(f"preset file {name_or_path} does not exist", "give a preset name or a path to a .toml file")
        return candidate
    if not path.is_file():
        raise SpecError(f"unknown preset {name_or_path!r}", _did_you_mean(name_or_path, preset_names()) +
                        " (list them with `ebmctl presets list`)")
    return path


def read_preset(name_or_path: str) -> dict[str, Any]:
    path = preset_path(name_or_path)
    try:
        tree = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"preset {path} is not valid TOML ({exc})", "fix the file's syntax") from None
    except UnicodeDecodeError:
        raise SpecError(f"preset {path} is not UTF-8 text", "a preset is a TOML file saved as UTF-8") from None
    except OSError as exc:
        raise SpecError(f"cannot read preset {path} ({exc.strerror or type(exc).__name__})",
                        "check the file's permissions") from None
    if not tree:
        raise SpecError(f"preset {path} sets nothing", "a preset sets at least one key, e.g. [method] name = \"icd\"; "
                        "see `ebmctl presets show quickstart`")
    return tree


def preset_header(path: Path) -> list[str]:
    """The comment lines a preset file opens with, without the leading '#'."""
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        lines.append(line[1:].strip())
    return lines


def method_defaults(tree: dict[str, Any]) -> dict[str, Any]:
    method = tree.get("method", {})
    name = method if isinstance(method, str) else method.get("name", "icd") if isinstance(method, dict) else "icd"
    if not isinstance(name, str) or name not in METHOD_DEFAULTS:
        raise SpecError(f"unknown method {name!r}", _did_you_mean(str(name), list(METHOD_NAMES)))
    return METHOD_DEFAULTS[name]


def resolve_spec(
    preset: str | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    extra: dict[str, Any] | None = None,
) -> RunSpec:
    """Build a RunSpec from a preset, ``--set`` strings and dedicated options (highest precedence)."""
    tree: dict[str, Any] = read_preset(preset) if preset else {}
    if preset:
        tree.setdefault("preset", Path(preset).stem if preset.endswith(".toml") else preset)
    for item in overrides:
        path, value = parse_override(item)
        set_path(tree, path, value)
    for path, value in (extra or {}).items():
        set_path(tree, path, value)
    tree = _normalise(tree)
    method = tree.setdefault("method", {})
    if not isinstance(method, dict):
        raise SpecError(f"method must be a method name or a [method] table, not {json.dumps(method, default=str)}",
                        f"choices: {', '.join(METHOD_NAMES)}")
    method.setdefault("name", RunSpec.model_fields["method"].default_factory().name)
    merged = deep_merge(method_defaults(tree), tree)
    return validate_spec(merged)


def _normalise(tree: dict[str, Any]) -> dict[str, Any]:
    out = dict(tree)
    for key in ("method", "net"):
        if isinstance(out.get(key), str):
            out[key] = {"name": out[key]}
    return out


def spec_from_json(doc: dict[str, Any]) -> RunSpec:
    """Rebuild a spec saved in spec.json or a checkpoint's metadata."""
    return validate_spec(doc)


def spec_to_json(spec: RunSpec) -> dict[str, Any]:
    return spec.model_dump(mode="json")
