"""CLEL (paper 000, Lee et al. 2023): an EBM of images guided by a contrastive latent encoder, E(x, z) with the
encoder's latents as extra negatives."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
from pydantic import Field, model_validator

from ebmctl.data import DataInfo
from ebmctl.errors import SpecError
from ebmctl.methods.clel import Clel
from ebmctl.methods.energy_model import EnergyModel
from ebmctl.nets.encoders import ENCODERS
from ebmctl.recipes.base import Recipe
from ebmctl.recipes.blocks import augmentation, chain_source, energy_net, fast_layout, net_for, sampler_params
from ebmctl.released.clel import convert as convert_release
from ebmctl.specs import NetSection, Section
from ebmctl.specs.sections import check_normalisation


class ClelResNetSpec(NetSection):
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
        check_normalisation(self.mean, self.std)
        return self


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


class ClelRecipe(Recipe):
    name = "clel"
    spec = ClelMethodSpec
    release = staticmethod(convert_release)
    method = Clel
    net = ClelResNetSpec
    nets = (ClelResNetSpec,)
    slots = True
    probe_protocol = "ebclr"  # as paper 004 probes contrastive encoders
    defaults: ClassVar[dict[str, Any]] = {
        "net": {"name": "clel_resnet"},
        "sampler": {"steps": 60, "step_size": 100.0, "noise": 0.001, "noise_first": False, "grad_clamp": None},
        "buffer": {"policy": "slots", "size": 10_000, "reinit": 0.001, "uint8": False, "augment": True},
        "augment": {"crop_scale": (0.08, 1.0), "flip": True, "jitter": (0.4, 0.4, 0.4, 0.1), "jitter_p": 0.8,
                    "gray_p": 0.2},
        "train": {"steps": 100_000, "batch_size": 64, "lr": 1e-4, "betas": (0.0, 0.999), "grad_clip": None,
                  "ema": None},
        "sample": {"steps": 600, "aug_every": 60, "plain_steps": 0},
    }

    def global_batches(self, spec: Any) -> dict[str, int]:
        sizes = super().global_batches(spec)
        if spec.method.encoder_batch_size:
            sizes["method.encoder_batch_size"] = spec.method.encoder_batch_size
        return sizes

    def build(self, spec: Any, info: DataInfo, device: torch.device) -> Clel:
        net = energy_net(spec, info, device)
        chains = chain_source(spec, info, Clel.pixel_range, device)
        sampler = sampler_params(spec, net)
        net = fast_layout(net, sampler)
        m, tr = spec.method, spec.train
        if info.kind != "image" or not isinstance(spec.net, ClelResNetSpec):
            raise SpecError("clel models images with the clel_resnet net", "use a clel-* preset (net.name=clel_resnet)")
        if tr.ema is not None:
            raise SpecError("clel sets its EMA through method.ema_halflife", "leave train.ema unset (none)")
        if spec.net.latent_dim != m.encoder.out_dim:
            raise SpecError(f"net.latent_dim {spec.net.latent_dim} differs from method.encoder.out_dim "
                            f"{m.encoder.out_dim}: the latent term compares g(f/|f|) with the encoder's latent",
                            f"set --set method.encoder.out_dim={spec.net.latent_dim}")
        ebm_batch = tr.batch_size
        encoder_batch = m.encoder_batch_size or ebm_batch
        decay = 0.5 ** (ebm_batch / m.ema_halflife)
        ema_start = int(m.ema_halflife / ebm_batch)
        model = EnergyModel(net, lr=tr.lr, betas=tr.betas, grad_clip=tr.grad_clip, grad_clip_mode=tr.grad_clip_mode,
                            ema=decay, warmup=m.warmup, ema_start=ema_start)
        enc = net_for(info, f"{m.encoder.name} encoder", lambda: ENCODERS[m.encoder.name](
            in_channels=info.shape[0], image_size=info.shape[-1], width=m.encoder.width, out_dim=m.encoder.out_dim,
            hidden=m.encoder.hidden, mean=spec.net.mean, std=spec.net.std,
        )).to(device)
        encoder = EnergyModel(enc, lr=m.encoder_lr, optimizer="sgd", momentum=m.encoder_momentum,
                              weight_decay=m.encoder_weight_decay, cosine_steps=tr.steps, ema=decay, ema_start=ema_start)
        return Clel(model, encoder, sampler=sampler, chains=chains, augment=augmentation(spec, tuple(info.shape)),
                    alpha=m.alpha, beta=m.beta, temperature=m.temperature, extra_negatives=m.extra_negatives,
                    ebm_batch_size=ebm_batch, encoder_batch_size=encoder_batch, ood_beta=m.ood_beta,
                    guidance=m.guidance, latent_examples=m.latent_examples, device=device)


RECIPE = ClelRecipe()
