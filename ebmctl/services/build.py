"""Turning a spec into building blocks: device, dataset, net, sampler, buffer, method."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ebmctl.data import DataInfo, EbmDataset, load_dataset
from ebmctl.data.views import AttributeLabels, find_attribute
from ebmctl.errors import CheckpointError, DeviceError, SpecError
from ebmctl.methods import METHODS, PersistentChainEbm
from ebmctl.methods.ae import Autoencoder
from ebmctl.methods.base import ChainSource
from ebmctl.methods.clel import Clel
from ebmctl.methods.ebclr import Ebclr
from ebmctl.methods.hat import Hat
from ebmctl.methods.parts import EnergyModel
from ebmctl.methods.simclr import Simclr
from ebmctl.methods.sngan import Sngan
from ebmctl.nets import build_net
from ebmctl.nets.encoders import ENCODERS
from ebmctl.nets.sngan import (
    IMAGE_SIZES,
    ImageLatentGenerator,
    SnganDiscriminator,
    SnganGenerator,
    SphereEncoder,
)
from ebmctl.runs import user_path
from ebmctl.samplers.buffers import SlotBuffer, make_buffer
from ebmctl.samplers.hat import HatLangevinParams
from ebmctl.samplers.langevin import LangevinParams
from ebmctl.samplers.transitions import AUGMENTATIONS, Transition
from ebmctl.services.generators import generator_arch
from ebmctl.specs import (
    AeMethodSpec,
    AutoencoderSpec,
    ClelMethodSpec,
    ClelResNetSpec,
    DataSpec,
    EbclrMethodSpec,
    GeneratorSpec,
    HatMethodSpec,
    HatNetSpec,
    ResNetEncoderSpec,
    RunSpec,
    SimclrMethodSpec,
    SnganMethodSpec,
    SnganSpec,
)


def resolve_device(name: str) -> torch.device:
    """auto | cpu | cuda | cuda:N; a CUDA device that is not there is an error, never a silent fallback."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise SpecError(f"unknown device {name!r}", "use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError("CUDA is not available on this machine", "use --device cpu (or auto)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceError(f"there is no {name} (found {torch.cuda.device_count()} CUDA devices)",
                              "pick an index below the device count")
    elif device.type != "cpu":
        raise SpecError(f"unsupported device {name!r}", "use auto, cpu, cuda or cuda:N")
    return device


def data_root(spec_root: str | None, cli_root: str | None = None) -> Path | None:
    """data.root, else --data-root, else $EBMCTL_DATA."""
    root = spec_root or cli_root or os.environ.get("EBMCTL_DATA")
    return user_path(root) if root else None


def dataset_from(data: DataSpec, *, split: str | None = None, root: Path | None = None, image_size: int | None = None,
                 channels: int | None = None) -> EbmDataset:
    return load_dataset(
        data.name,
        root=root,
        split=split or data.split,
        image_size=image_size if image_size is not None else data.image_size,
        channels=channels if channels is not None else data.channels,
        verify_checksums=data.verify_checksums,
        download=data.download,
        classes=data.classes,
    )


def every_class(data: DataSpec) -> DataSpec:
    """``data`` with all of its classes: what the cached judges of a dataset are trained and tested on."""
    return data if data.classes is None else data.model_copy(update={"classes": None})


def net_kwargs(spec: RunSpec, info: DataInfo) -> dict[str, Any]:
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


def condition_of(spec: RunSpec) -> str | None:
    """The label a conditional run is trained on: 'class', an attribute name, or None."""
    return getattr(spec.method, "condition", None)


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


def conditioned_dataset(dataset: EbmDataset, condition: str | None) -> EbmDataset:
    """The dataset whose labels a conditional run trains on."""
    if condition is None or condition == "class":
        return dataset
    index = find_attribute(dataset.info, condition)
    assert index is not None
    return AttributeLabels(dataset, index)


def augmentation(spec: RunSpec, shape: tuple[int, ...]) -> Transition:
    a = spec.augment
    return AUGMENTATIONS[a.backend](
        size=shape[-1], channels=shape[0], crop_scale=a.crop_scale, flip=a.flip, jitter=a.jitter,
        jitter_p=a.jitter_p, gray_p=a.gray_p, blur_p=a.blur_p,
    )


ENCODER_METHODS = ("ebclr", "simclr")
SLOT_METHODS = ("clel", "cebm", "ebclr")
# The net each method needs (igebm and icd take any energy net).
METHOD_NET = {"clel": "clel_resnet", "cebm": "cebm_conv", "sngan": "sngan", "ebclr": "resnet18", "simclr": "resnet18",
              "hat": "hat", "ae": "autoencoder"}
# Nets that are not plain energy nets, and why no other method can use them.
RESERVED_NETS = {"resnet18": "is an encoder", "sngan": "is a generator and a discriminator",
                 "cebm_conv": "carries CEBM's conjugate bias", "hat": "stands on a generator",
                 "autoencoder": "is an encoder and a decoder"}


def build_method(spec: RunSpec, info: DataInfo, device: torch.device) -> Any:
    """The method of ``spec`` for data shaped like ``info``, on ``device``."""
    _check_net(spec)
    _check_slots(spec)
    if spec.method.name != "hat" and spec.hat.generator is not None:
        raise SpecError("hat.generator is for hat runs", f"drop --set hat.generator for a {spec.method.name} run")
    if spec.method.name in ENCODER_METHODS:
        return _build_encoder_method(spec, info, device)
    if spec.method.name == "sngan":
        return _build_sngan(spec, info, device)
    if spec.method.name == "hat":
        return _build_hat(spec, info, device)
    if spec.method.name == "ae":
        return _build_ae(spec, info, device)
    kwargs = net_kwargs(spec, info)
    condition = condition_of(spec)
    if condition is not None:
        kwargs["num_classes"] = condition_classes(condition, info)
    net = _net_for(info, spec.net.name, lambda: build_net(spec.net.name, **kwargs)).to(device)
    if info.kind == "image" and min(info.shape[1:]) < 32:  # small images: does every stride still fit?
        _check_input_size(net, tuple(info.shape), spec.net.name, device, conditional="num_classes" in kwargs)
    shape = tuple(info.shape)
    is_image = info.kind == "image"
    pixel_range = spec.sampler.pixel_clamp or METHODS[spec.method.name].pixel_range
    buffer = make_buffer(
        spec.buffer.policy,
        spec.buffer.size,
        quantize=spec.buffer.uint8 and is_image,
        value_range=pixel_range,
        device=device,
    )
    transition = augmentation(spec, shape) if spec.buffer.augment and is_image else None
    init_range = pixel_range if is_image else _points_range(spec)
    chains = ChainSource(shape=shape, buffer=buffer, reinit=spec.buffer.reinit, init_range=init_range,
                         transition=transition)
    sampler = sampler_params(spec, net)
    if sampler.channels_last:
        net = net.to(memory_format=torch.channels_last)  # conv weights in NHWC too: the chains' kernels prefer it
    if isinstance(spec.method, ClelMethodSpec):
        return _build_clel(spec, info, net, sampler, chains, device)
    tr = spec.train
    model = EnergyModel(net, lr=tr.lr, betas=tr.betas, grad_clip=tr.grad_clip, grad_clip_mode=tr.grad_clip_mode,
                        ema=tr.ema, optimizer=tr.optimizer, momentum=tr.momentum, weight_decay=tr.weight_decay)
    method_kwargs = spec.method.model_dump(exclude={"name", "condition"})
    return METHODS[spec.method.name](model, sampler=sampler, chains=chains, device=device, **method_kwargs)


def _net_for(info: DataInfo, name: str, make: Callable[[], torch.nn.Module]) -> torch.nn.Module:
    """Build a net for data shaped like ``info``; a net that cannot take that shape is a one-line SpecError."""
    try:
        return make()
    except ValueError as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise SpecError(f"the {name} net does not fit {info.name} at {'x'.join(map(str, info.shape))} ({first})",
                        "set data.image_size (e.g. 32) or change the net's settings") from None


def _check_input_size(net: torch.nn.Module, shape: tuple[int, ...], name: str, device: torch.device, *,
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


def sampler_params(spec: RunSpec, net: torch.nn.Module) -> LangevinParams:
    """The run's Langevin parameters, with ``layout=auto`` decided by the net."""
    fields = spec.sampler.model_dump()
    layout = fields.pop("layout")
    channels_last = layout == "channels_last" or (layout == "auto" and getattr(net, "channels_last_chains", False))
    return LangevinParams(**fields, channels_last=channels_last)


def _build_clel(spec: RunSpec, info: DataInfo, net: torch.nn.Module, sampler: LangevinParams, chains: ChainSource,
                device: torch.device) -> PersistentChainEbm:
    m, tr = spec.method, spec.train
    assert isinstance(m, ClelMethodSpec)
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
    enc = _net_for(info, f"{m.encoder.name} encoder", lambda: ENCODERS[m.encoder.name](
        in_channels=info.shape[0], image_size=info.shape[-1], width=m.encoder.width, out_dim=m.encoder.out_dim,
        hidden=m.encoder.hidden, mean=spec.net.mean, std=spec.net.std,
    )).to(device)
    encoder = EnergyModel(enc, lr=m.encoder_lr, optimizer="sgd", momentum=m.encoder_momentum,
                          weight_decay=m.encoder_weight_decay, cosine_steps=tr.steps, ema=decay, ema_start=ema_start)
    return Clel(model, encoder, sampler=sampler, chains=chains, augment=augmentation(spec, tuple(info.shape)),
                alpha=m.alpha, beta=m.beta, temperature=m.temperature, extra_negatives=m.extra_negatives,
                ebm_batch_size=ebm_batch, encoder_batch_size=encoder_batch, ood_beta=m.ood_beta,
                guidance=m.guidance, latent_examples=m.latent_examples, device=device)


def _check_net(spec: RunSpec) -> None:
    """A method gets a net it can use; the nets of METHOD_NET that are not energy nets serve their method only."""
    method, net = spec.method.name, spec.net.name
    wanted = METHOD_NET.get(method)
    if wanted is not None and net != wanted:
        raise SpecError(f"{method} needs the {wanted} net, not {net!r}", f"set net.name={wanted}")
    if wanted is None and net in RESERVED_NETS:
        raise SpecError(f"the {net} net {RESERVED_NETS[net]}; {method} needs an energy net",
                        "pick an energy net, e.g. small_conv")


def _check_slots(spec: RunSpec) -> None:
    """Methods that draw chains from fixed slots need that policy and at least a batch of slots."""
    if spec.method.name not in SLOT_METHODS:
        return
    if spec.buffer.policy != "slots":
        raise SpecError(f"{spec.method.name} keeps its chains in fixed slots", "set buffer.policy=slots")
    if spec.buffer.size < spec.train.batch_size:
        raise SpecError(f"buffer.size {spec.buffer.size} is smaller than the batch {spec.train.batch_size}",
                        "raise buffer.size or lower train.batch_size")


def _build_encoder_method(spec: RunSpec, info: DataInfo, device: torch.device) -> Any:
    """SimCLR or EBCLR: a ResNet encoder trained on augmented views of the data."""
    net_spec, tr, m = spec.net, spec.train, spec.method
    assert isinstance(net_spec, ResNetEncoderSpec)
    if info.kind != "image":
        raise SpecError(f"{m.name} learns representations of images; {info.name} holds 2D points",
                        "train it on an image dataset")
    shape = tuple(info.shape)
    net = _net_for(info, net_spec.name, lambda: ENCODERS[net_spec.name](
        in_channels=shape[0], image_size=shape[-1], width=net_spec.width, out_dim=net_spec.out_dim,
        hidden=net_spec.hidden, mean=net_spec.mean, std=net_spec.std, batch_norm=net_spec.batch_norm,
        activation=net_spec.activation, head_bn=net_spec.head_bn, normalize=net_spec.normalize,
    )).to(device)
    model = EnergyModel(net, lr=tr.lr, betas=tr.betas, grad_clip=tr.grad_clip, grad_clip_mode=tr.grad_clip_mode,
                        ema=tr.ema, optimizer=tr.optimizer, momentum=tr.momentum, weight_decay=tr.weight_decay)
    augment = augmentation(spec, shape)
    if isinstance(m, SimclrMethodSpec):
        return Simclr(model, augment=augment, temperature=m.temperature, device=device)
    assert isinstance(m, EbclrMethodSpec)
    buffer = make_buffer("slots", spec.buffer.size, quantize=False, value_range=Ebclr.pixel_range, device=device)
    assert isinstance(buffer, SlotBuffer)
    return Ebclr(model, augment=augment, sampler=sampler_params(spec, model.net), buffer=buffer,
                 shape=shape, rho=spec.buffer.reinit, device=device, **m.model_dump(exclude={"name"}))


def _build_sngan(spec: RunSpec, info: DataInfo, device: torch.device) -> Any:
    """SN-GAN: the ResNet generator and the spectrally normalised discriminator at the data's size."""
    net_spec, tr, m = spec.net, spec.train, spec.method
    assert isinstance(net_spec, SnganSpec) and isinstance(m, SnganMethodSpec)
    size = _check_square("sngan", info, IMAGE_SIZES)
    gen = build_generator(generator_arch(spec), size, info.shape[0]).to(device)
    disc = SnganDiscriminator(size, ndf=net_spec.ndf, in_channels=info.shape[0]).to(device)
    kwargs = _optim_kwargs(spec)
    return Sngan(EnergyModel(gen, ema=tr.ema, **kwargs), EnergyModel(disc, **kwargs), n_dis=m.n_dis, device=device)


def _check_square(method: str, info: DataInfo, sizes: tuple[int, ...]) -> int:
    """The side of square images of one of ``sizes`` px, else a one-line error."""
    size = info.shape[-1]
    if info.kind != "image" or size not in sizes or info.shape[-2] != size:
        raise SpecError(f"{method} models square images of {', '.join(map(str, sizes))} px; {info.name} is "
                        f"{'x'.join(map(str, info.shape))}", f"set data.image_size to {', '.join(map(str, sizes[:-1]))} or {sizes[-1]}")
    return size


def _optim_kwargs(spec: RunSpec) -> dict[str, Any]:
    tr = spec.train
    return {"lr": tr.lr, "betas": tr.betas, "grad_clip": tr.grad_clip, "grad_clip_mode": tr.grad_clip_mode,
            "optimizer": tr.optimizer, "momentum": tr.momentum, "weight_decay": tr.weight_decay}


def build_generator(arch: GeneratorSpec, image_size: int, channels: int) -> torch.nn.Module:
    """The generator ``arch`` describes, for images of ``channels`` x ``image_size``^2."""
    if arch.kind == "sngan":
        return SnganGenerator(image_size, nz=arch.nz, ngf=arch.ngf, out_channels=channels, out_scale=arch.out_scale)
    if image_size % 2:
        raise SpecError(f"an image-shaped latent needs an even image side, not {image_size}", "set data.image_size")
    latent = (arch.latent_channels, image_size // 2, image_size // 2)
    return ImageLatentGenerator(latent, ngf=arch.ngf or 256, out_channels=channels, out_scale=arch.out_scale)


def _build_hat(spec: RunSpec, info: DataInfo, device: torch.device) -> Hat:
    """Hat EBM: the hat network (SN-GAN discriminator without spectral norm) on a generator."""
    net_spec, m, tr = spec.net, spec.method, spec.train
    assert isinstance(net_spec, HatNetSpec) and isinstance(m, HatMethodSpec)
    size = _check_square("hat", info, IMAGE_SIZES)
    if spec.sampler.precision != "fp32" or spec.sampler.cuda_graph:
        raise SpecError("sampler.precision and sampler.cuda_graph apply to the SGLD samplers; Hat EBM's joint "
                        "sampler runs in fp32 (method.epsilon, method.epsilon_latent)",
                        "drop --set sampler.precision / sampler.cuda_graph for hat runs")
    if m.mode == "synthesis" and spec.hat.generator is not None:
        raise SpecError("a synthesis Hat EBM trains its own generator from scratch",
                        "drop hat.generator, or use method.mode=refine or retrofit to build on a trained one")
    if tr.ema is not None:
        raise SpecError("hat runs evaluate the trained hat network itself", "leave train.ema unset (none)")
    hat_net = SnganDiscriminator(size, ndf=net_spec.ndf, in_channels=info.shape[0], spectral_norm=False,
                                 bias=net_spec.bias, pooling=net_spec.pooling,
                                 block_hidden=net_spec.block_hidden).to(device)
    gen = build_generator(spec.hat.generator_net, size, info.shape[0]).to(device)
    model = EnergyModel(hat_net, **_optim_kwargs(spec))
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
    )
    return Hat(model, gen, mode=m.mode, sampler=sampler, data_noise=m.data_noise, latent_scale=m.latent_scale,
               generator_model=generator_model, generator_loss_factor=m.generator_loss_factor,
               bank_size=m.bank_size, device=device)


def _build_ae(spec: RunSpec, info: DataInfo, device: torch.device) -> Autoencoder:
    """The autoencoder with spherical image-shaped latents whose decoder a retrofit Hat EBM uses."""
    net_spec, m = spec.net, spec.method
    assert isinstance(net_spec, AutoencoderSpec) and isinstance(m, AeMethodSpec)
    size = info.shape[-1]
    if info.kind != "image" or size % 2 or size < 8 or info.shape[-2] != size:
        raise SpecError(f"ae models square images with an even side of at least 8 px; {info.name} is "
                        f"{'x'.join(map(str, info.shape))}", "set data.image_size, e.g. 32")
    enc = SphereEncoder(size, nef=net_spec.nef, in_channels=info.shape[0],
                        latent_channels=net_spec.latent_channels).to(device)
    gen = build_generator(generator_arch(spec), size, info.shape[0]).to(device)
    kwargs = _optim_kwargs(spec)
    return Autoencoder(EnergyModel(enc, **kwargs), EnergyModel(gen, ema=spec.train.ema, **kwargs),
                       loss_factor=m.loss_factor, latent_noise=m.latent_noise, device=device)


def _points_range(spec: RunSpec) -> tuple[float, float]:
    return spec.sampler.pixel_clamp or (-4.0, 4.0)


def load_method_weights(method: PersistentChainEbm, tensors: dict[str, torch.Tensor], source: Path) -> None:
    """Load weights, turning a key, shape or dtype mismatch, or non-finite weights, into a one-line error."""
    hint = "the checkpoint belongs to another net or method, or is damaged; pass the run it came from"
    expected = method.weight_tensors()  # the freshly built method's own tensors: the keys and dtypes it saves
    problems = [f"no tensor {k}" for k in sorted(set(expected) - set(tensors))]
    problems += [f"unexpected tensor {k}" for k in sorted(set(tensors) - set(expected))]
    problems += [f"{k} is {v.dtype}, not {expected[k].dtype}" for k, v in tensors.items()
                 if k in expected and v.dtype != expected[k].dtype]
    if problems:
        first, more = problems[0], len(problems) - 1
        raise CheckpointError(f"{source} does not match the model its spec describes ({first}"
                              + (f", and {more} more" if more else "") + ")", hint)
    bad = next((k for k, v in tensors.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())), None)
    if bad is not None:
        raise CheckpointError(f"{source} holds non-finite weights ({bad})", "the checkpoint is damaged; use an earlier "
                              "checkpoint or retrain")
    try:
        method.load_weights(tensors)
    except (RuntimeError, KeyError, ValueError, TypeError, IndexError) as exc:
        # torch's report opens with "Error(s) in loading state_dict for Net:"; the first mismatch is on the next line
        lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()] or [type(exc).__name__]
        first = next((line for line in lines if not line.endswith(":")), lines[0])[:160]
        raise CheckpointError(f"{source} does not match the model its spec describes ({first})", hint) from None
