"""The sections of a run spec that every method shares: data, sampler, buffer, augmentation, training, guard,
sampling and evaluation. Every section forbids unknown keys, so a typo is an error."""

from __future__ import annotations

import json
import typing
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


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

def check_betas(key: str, betas: tuple[float, float]) -> None:
    if not all(0 <= b < 1 for b in betas):
        raise ValueError(f"{key} must be two Adam betas, each at least 0 and below 1")


def check_normalisation(mean: tuple[float, ...] | None, std: tuple[float, ...] | None) -> None:
    """Per-channel input statistics: one value or three (per RGB channel), and a positive std."""
    for key, values in (("mean", mean), ("std", std)):
        if values is not None and len(values) not in (1, 3):
            raise ValueError(f"{key} lists one value per channel: 1 or 3 of them, not {len(values)}")
    if std is not None and min(std) <= 0:
        raise ValueError("std must be positive")


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
        check_betas("betas", self.betas)
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

