"""Hat EBM (paper 003, Hill et al. 2022): an energy on the residual y between an image and a generator's output
G(z), sampled jointly in y and z; it refines a trained generator, retrofits an autoencoder's decoder, or trains
a generator from scratch (synthesis)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
from pydantic import Field, model_validator

from ebmctl.data import DataInfo
from ebmctl.errors import SpecError
from ebmctl.methods.energy_model import EnergyModel
from ebmctl.methods.hat import Hat
from ebmctl.nets.sngan import IMAGE_SIZES, SnganDiscriminator
from ebmctl.recipes.base import Recipe
from ebmctl.recipes.blocks import build_generator, check_square, optim_kwargs, sampler_params
from ebmctl.released.hat import convert as convert_release
from ebmctl.samplers.hat import HatLangevinParams
from ebmctl.specs import GeneratorSpec, NetSection, Section
from ebmctl.specs.sections import check_betas


class HatNetSpec(NetSection):
    role: ClassVar[str | None] = "stands on a generator"
    name: Literal["hat"] = "hat"
    ndf: int | None = Field(None, ge=16, le=8192, description="Width of the hat network, the SN-GAN discriminator "
                            "without spectral norm (None: 128 at 32 px, 1024 at 64/128; released code: 256 at 32 px).")
    # The field defaults are the layout of runs saved before these keys existed (their spec.json lacks them);
    # new hat runs take the released layout from the recipe's defaults.
    pooling: Literal["sum", "mean"] = Field(
        "sum", description="How the last features are pooled over H and W (released code: mean; sum scales H by "
        "H*W, 64 at 32 px)."
    )
    bias: bool = Field(True, description="Bias on the output layer (released code: none).")
    block_hidden: Literal["in", "out"] = Field(
        "in", description="Width of a residual block's first conv: its input's (Mimicry) or its output's (released "
        "code); differs at 64 and 128 px only."
    )


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
        check_betas("generator_betas", self.generator_betas)
        return self


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



class HatRecipe(Recipe):
    name = "hat"
    spec = HatMethodSpec
    release = staticmethod(convert_release)
    release_format = "tensorflow"
    release_companions = ("generator",)
    method = Hat
    probe_protocol = "cebm"  # as paper 001 probes IGEBM and VAEs
    net = HatNetSpec
    nets = (HatNetSpec,)
    local_state = ("buffer.", "bank.")  # each process keeps its share of the synthesis bank
    sections: ClassVar[dict[str, tuple[type[Section], str]]] = {"hat": (HatSpec, "Hat EBM: the generator it stands on.")}
    defaults: ClassVar[dict[str, Any]] = {
        "net": {"name": "hat", "pooling": "mean", "bias": False, "block_hidden": "out"},
        "data": {"dequantize": False},  # pixels v / 255; the data noise is method.data_noise alone
        "sampler": {"steps": 250, "pixel_clamp": None},
        "train": {"steps": 20_000, "batch_size": 128, "lr": 1e-5, "optimizer": "adam", "betas": (0.9, 0.999),
                  "grad_clip": None, "ema": None},
        "sample": {"steps": 250, "aug_every": 0, "plain_steps": 0},
    }

    def generator_arch(self, spec: Any) -> GeneratorSpec | None:
        return spec.hat.generator_net if spec.method.mode == "synthesis" else None

    def generator_to_build_on(self, spec: Any) -> str | None:
        """Refine and retrofit build on a generator another run trained; synthesis trains its own."""
        if spec.method.mode == "synthesis":
            return None
        if spec.hat.generator is None:
            raise SpecError("a refine or retrofit Hat EBM needs a generator to stand on",
                            "set hat.generator to an sngan/ae run, latest:PRESET or a generator file "
                            "(e.g. --set hat.generator=latest:sngan-shapes)")
        return spec.hat.generator

    def with_generator(self, spec: Any, arch: GeneratorSpec) -> Any:
        return spec.model_copy(update={"hat": spec.hat.model_copy(update={"generator_net": arch})})

    def sample_settings(self, spec: Any) -> dict[str, Any]:
        """Its own joint sampler: the run's epsilons, not step size and noise."""
        return {"step_size": None, "noise": None, "epsilon": spec.method.epsilon,
                "epsilon_latent": spec.method.epsilon_latent}

    def build(self, spec: Any, info: DataInfo, device: torch.device) -> Hat:
        """The hat network (SN-GAN discriminator without spectral norm) on a generator."""
        net_spec, m, tr = spec.net, spec.method, spec.train
        size = check_square(self.name, info, IMAGE_SIZES)
        if spec.sampler.cuda_graph:
            raise SpecError("sampler.cuda_graph applies to the SGLD samplers; Hat EBM's joint sampler runs eagerly",
                            "drop --set sampler.cuda_graph for hat runs")
        if m.mode == "synthesis" and spec.hat.generator is not None:
            raise SpecError("a synthesis Hat EBM trains its own generator from scratch",
                            "drop hat.generator, or use method.mode=refine or retrofit to build on a trained one")
        if tr.ema is not None:
            raise SpecError("hat runs evaluate the trained hat network itself", "leave train.ema unset (none)")
        hat_net = SnganDiscriminator(size, ndf=net_spec.ndf, in_channels=info.shape[0], spectral_norm=False,
                                     bias=net_spec.bias, pooling=net_spec.pooling,
                                     block_hidden=net_spec.block_hidden).to(device)
        gen = build_generator(spec.hat.generator_net, size, info.shape[0]).to(device)
        channels_last = sampler_params(spec, hat_net).channels_last
        if channels_last:  # conv weights in NHWC too: the chains' kernels prefer it
            hat_net, gen = (m.to(memory_format=torch.channels_last) for m in (hat_net, gen))
        model = EnergyModel(hat_net, **optim_kwargs(spec))
        generator_model = None
        if m.mode == "synthesis":
            if m.bank_size < tr.batch_size:
                raise SpecError(f"method.bank_size {m.bank_size} is smaller than the batch {tr.batch_size}",
                                "raise method.bank_size or lower train.batch_size")
            generator_model = EnergyModel(gen, lr=m.generator_lr, betas=m.generator_betas)
        sampler = HatLangevinParams(
            steps=spec.sampler.steps, epsilon=m.epsilon,
            epsilon_latent=0.0 if m.mode == "synthesis" else m.epsilon_latent, temperature=m.temperature,
            max_residual_step=m.max_residual_step,
            prior_tau=0.0 if m.prior_sigma is None else 1.0 / (2.0 * m.prior_sigma**2),
            channels_last=channels_last, precision=spec.sampler.precision,
        )
        return Hat(model, gen, mode=m.mode, sampler=sampler, data_noise=m.data_noise, latent_scale=m.latent_scale,
                   generator_model=generator_model, generator_loss_factor=m.generator_loss_factor,
                   bank_size=m.bank_size, device=device)


RECIPE = HatRecipe()
