"""Building blocks recipes share: a net for the data, its sampler settings, the chains' source, an optimised
model, a generator, the augmentation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch

from ebmctl.data import DataInfo
from ebmctl.data.views import find_attribute
from ebmctl.errors import SpecError
from ebmctl.methods.chains import ChainSource
from ebmctl.methods.energy_model import EnergyModel
from ebmctl.nets import build_net
from ebmctl.nets.encoders import ENCODERS
from ebmctl.nets.sngan import ImageLatentGenerator, SnganGenerator
from ebmctl.recipes.base import Recipe
from ebmctl.samplers.buffers import make_buffer
from ebmctl.samplers.langevin import LangevinParams
from ebmctl.samplers.transitions import AUGMENTATIONS, Transition
from ebmctl.specs import GeneratorSpec


def net_kwargs(spec: Any, info: DataInfo) -> dict[str, Any]:
    """The keyword arguments of ``spec.net`` for data shaped like ``info``."""
    kwargs = spec.net.model_dump(exclude={"name"})
    if info.kind == "points":
        if spec.net.name != "mlp":
            raise SpecError(f"{info.name} holds 2D points; net {spec.net.name!r} takes images",
                            "use --set net.name=mlp (see the igebm-toy / icd-toy presets)")
        kwargs["in_dim"] = info.shape[0]
    else:
        if spec.net.name == "mlp":
            raise SpecError(f"{info.name} holds images; the mlp net takes 2D points", "pick a conv net, e.g. small_conv")
        kwargs["in_channels"] = info.shape[0]
        if spec.net.name in ("cebm_conv", "conv_mlp"):  # their FC layers take the flattened convs
            kwargs["image_size"] = info.shape[-1]
    return kwargs


def condition_classes(condition: str, info: DataInfo) -> int:
    """Number of labels of a conditional net: the dataset's classes, or 2 for one binary attribute."""
    if condition == "class":
        if info.num_classes < 2:
            raise SpecError(f"{info.name} has no class labels to condition on",
                            "condition on one of its attributes instead, or set method.condition=none")
        return info.num_classes
    if find_attribute(info, condition) is None:
        names = ", ".join(info.attribute_names) or "none"
        raise SpecError(f"{info.name} has no attribute {condition!r}",
                        f"method.condition takes 'class' or an attribute: {names}")
    return 2


def energy_net(spec: Any, info: DataInfo, device: torch.device, condition: str | None = None) -> torch.nn.Module:
    """The energy net of ``spec`` for data shaped like ``info`` (with label inputs when ``condition`` is set)."""
    kwargs = net_kwargs(spec, info)
    if condition is not None:
        kwargs["num_classes"] = condition_classes(condition, info)
    net = net_for(info, spec.net.name, lambda: build_net(spec.net.name, **kwargs)).to(device)
    if info.kind == "image" and min(info.shape[1:]) < 32:  # small images: does every stride still fit?
        check_input_size(net, tuple(info.shape), spec.net.name, device, conditional="num_classes" in kwargs)
    return net


def net_for(info: DataInfo, name: str, make: Callable[[], torch.nn.Module]) -> torch.nn.Module:
    """Build a net for data shaped like ``info``; a net that cannot take that shape is a one-line SpecError."""
    try:
        return make()
    except ValueError as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise SpecError(f"the {name} net does not fit {info.name} at {'x'.join(map(str, info.shape))} ({first})",
                        "set data.image_size (e.g. 32) or change the net's settings") from None


def check_input_size(net: torch.nn.Module, shape: tuple[int, ...], name: str, device: torch.device, *,
                     conditional: bool = False) -> None:
    """Run ``net`` once, in eval mode and without gradients, on a blank batch of ``shape``: a stack of strided convs
    that shrinks the images below a kernel fails here in one line, before any run directory exists."""
    training = net.training
    net.eval()
    try:
        with torch.no_grad():
            x = torch.zeros(2, *shape, device=device)
            net(x, torch.zeros(2, dtype=torch.long, device=device)) if conditional else net(x)
    except (RuntimeError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise SpecError(f"the {name} net cannot take {'x'.join(map(str, shape))} images ({first})",
                        "raise data.image_size (e.g. to 32) or use a net with fewer strided convs") from None
    finally:
        net.train(training)


def chain_source(spec: Any, info: DataInfo, pixel_range: tuple[float, float], device: torch.device) -> ChainSource:
    """Where training chains start: the replay buffer of ``spec.buffer``, noise restarts, its augmentation."""
    shape = tuple(info.shape)
    is_image = info.kind == "image"
    value_range = spec.sampler.pixel_clamp or pixel_range
    buffer = make_buffer(spec.buffer.policy, spec.buffer.size, quantize=spec.buffer.uint8 and is_image,
                         value_range=value_range, device=device)
    transition = augmentation(spec, shape) if spec.buffer.augment and is_image else None
    init_range = value_range if is_image else (spec.sampler.pixel_clamp or (-4.0, 4.0))
    return ChainSource(shape=shape, buffer=buffer, reinit=spec.buffer.reinit, init_range=init_range,
                       transition=transition)


def sampler_params(spec: Any, net: torch.nn.Module) -> LangevinParams:
    """The run's Langevin parameters, with ``layout=auto`` decided by the net."""
    fields = spec.sampler.model_dump()
    layout = fields.pop("layout")
    channels_last = layout == "channels_last" or (layout == "auto" and getattr(net, "channels_last_chains", False))
    return LangevinParams(**fields, channels_last=channels_last)


def fast_layout(net: torch.nn.Module, sampler: LangevinParams) -> torch.nn.Module:
    """``net`` with its conv weights in NHWC when the chains are: their kernels prefer it."""
    return net.to(memory_format=torch.channels_last) if sampler.channels_last else net


def optim_kwargs(spec: Any) -> dict[str, Any]:
    """The optimiser settings of ``spec.train``."""
    tr = spec.train
    return {"lr": tr.lr, "betas": tr.betas, "grad_clip": tr.grad_clip, "grad_clip_mode": tr.grad_clip_mode,
            "optimizer": tr.optimizer, "momentum": tr.momentum, "weight_decay": tr.weight_decay}


def trained_model(spec: Any, net: torch.nn.Module) -> EnergyModel:
    """``net`` with the optimiser and EMA of ``spec.train``."""
    return EnergyModel(net, ema=spec.train.ema, **optim_kwargs(spec))


def augmentation(spec: Any, shape: tuple[int, ...]) -> Transition:
    a = spec.augment
    return AUGMENTATIONS[a.backend](
        size=shape[-1], channels=shape[0], crop_scale=a.crop_scale, flip=a.flip, jitter=a.jitter,
        jitter_p=a.jitter_p, gray_p=a.gray_p, blur_p=a.blur_p,
    )


def check_square(method: str, info: DataInfo, sizes: tuple[int, ...]) -> int:
    """The side of square images of one of ``sizes`` px, else a one-line error."""
    size = info.shape[-1]
    if info.kind != "image" or size not in sizes or info.shape[-2] != size:
        raise SpecError(f"{method} models square images of {', '.join(map(str, sizes))} px; {info.name} is "
                        f"{'x'.join(map(str, info.shape))}", f"set data.image_size to {', '.join(map(str, sizes[:-1]))} or {sizes[-1]}")
    return size


def build_generator(arch: GeneratorSpec, image_size: int, channels: int) -> torch.nn.Module:
    """The generator ``arch`` describes, for images of ``channels`` x ``image_size``^2."""
    if arch.kind == "sngan":
        return SnganGenerator(image_size, nz=arch.nz, ngf=arch.ngf, out_channels=channels, out_scale=arch.out_scale)
    if image_size % 2:
        raise SpecError(f"an image-shaped latent needs an even image side, not {image_size}", "set data.image_size")
    latent = (arch.latent_channels, image_size // 2, image_size // 2)
    return ImageLatentGenerator(latent, ngf=arch.ngf or 256, out_channels=channels, out_scale=arch.out_scale)


def build_chain_ebm(spec: Any, info: DataInfo, device: torch.device, method: type[Any],
                    condition: str | None = None) -> Any:
    """A persistent-chain EBM on an energy net: the net, its chains, its sampler, and ``method`` with the loss
    terms of ``spec.method``."""
    net = energy_net(spec, info, device, condition)
    chains = chain_source(spec, info, method.pixel_range, device)
    sampler = sampler_params(spec, net)
    model = trained_model(spec, fast_layout(net, sampler))
    return method(model, sampler=sampler, chains=chains, device=device,
                  **spec.method.model_dump(exclude={"name", "condition"}))


def encoder_model(spec: Any, info: DataInfo, device: torch.device) -> EnergyModel:
    """The ResNet encoder of ``spec.net`` on images shaped like ``info``, with the optimiser of ``spec.train``."""
    net_spec = spec.net
    if info.kind != "image":
        raise SpecError(f"{spec.method.name} learns representations of images; {info.name} holds 2D points",
                        "train it on an image dataset")
    shape = tuple(info.shape)
    net = net_for(info, net_spec.name, lambda: ENCODERS[net_spec.name](
        in_channels=shape[0], image_size=shape[-1], width=net_spec.width, out_dim=net_spec.out_dim,
        hidden=net_spec.hidden, mean=net_spec.mean, std=net_spec.std, batch_norm=net_spec.batch_norm,
        activation=net_spec.activation, head_bn=net_spec.head_bn, normalize=net_spec.normalize,
    )).to(device)
    return trained_model(spec, net)


class ChainEbmRecipe(Recipe):
    """The recipe of a persistent-chain EBM on any energy net (:func:`build_chain_ebm`), conditional on a label
    when its spec section has ``condition``."""

    conditional: ClassVar[bool] = False  # its [method] section has a ``condition`` field

    def condition(self, spec: Any) -> str | None:
        return spec.method.condition if self.conditional else None

    def build(self, spec: Any, info: DataInfo, device: torch.device) -> Any:
        return build_chain_ebm(spec, info, device, self.method, self.condition(spec))
