"""CLEL's released code (hankook/CLEL): every ``val_freq`` iterations it writes ``last.ckpt``, ``best.ckpt`` and
``<iteration>.ckpt``, ``{'model', 'optimizers', 'schedulers', 'engine'}``. ``'model'`` is the joint model's
state_dict: the EBM (``ebm.*``), its EMA (``ema_ebm.*``), the contrastive encoder (``encoder.*``), its EMA
(``ema_encoder.*``) and the replay buffer (``sampler.memory``, images in [0, 1]). The EBM is a pre-activation ResNet with spectral
norm (``stem``/``stages``, or ``stem1-3``/``stages1-3`` for the three-scale large model), an MLP ``head`` f and a
bias-free ``projection`` g; the encoder a torchvision ResNet-18 with a CIFAR stem and a BN MLP head ``fc``.
No config is saved: the architecture is read from the shapes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from ebmctl.errors import CheckpointError
from ebmctl.released.base import Imported, as_list, renamed, shape_of
from ebmctl.released.reader import state_dict

WHAT = "a checkpoint of hankook/CLEL's training ({'model': JointModel.state_dict(), ...})"
PARTS = (("ebm.", "model."), ("ema_ebm.", "ema."), ("encoder.", "encoder.model."), ("ema_encoder.", "encoder.ema."))


def convert(doc: Any, source: Path, preset: str | None) -> Imported:
    model = state_dict(doc, "model", source, WHAT)
    part = {frm: {k[len(frm):]: v for k, v in model.items() if k.startswith(frm)} for frm, _ in PARTS}
    ebm, encoder = part["ebm."], part["encoder."]
    if not ebm or not encoder:
        raise CheckpointError(f"{source} has no ebm.* or encoder.* weights: it is not {WHAT}",
                              "pass the .ckpt file CLEL's training wrote")
    scales = 3 if "stem1.1.bias" in ebm else 1
    stages = "stages1" if scales == 3 else "stages"
    channels, blocks = [], []
    for i in range(16):
        convs = sorted({int(m[1]) for k in ebm if (m := re.match(rf"{stages}\.{i}\.(\d+)\.conv1\.", k))})
        if not convs:
            break
        channels.append(ebm[f"{stages}.{i}.{convs[0]}.conv1.bias"].shape[0])
        blocks.append(len(convs))
    hidden, latent = shape_of(ebm, "head.0.weight", str(source))[0], shape_of(ebm, "head.2.weight", str(source))[0]
    projection = "mlp" if "projection.2.weight" in ebm else "linear" if "projection.0.weight" in ebm else "identity"
    means = [ebm[k] for k in ebm if re.fullmatch(r"stem\d?\.0\.mean", k)] + [encoder["conv1.0.mean"]]
    stds = [ebm[k] for k in ebm if re.fullmatch(r"stem\d?\.0\.std", k)] + [encoder["conv1.0.std"]]
    if not all(torch.equal(m, means[0]) for m in means) or not all(torch.equal(s, stds[0]) for s in stds):
        raise CheckpointError(f"{source} normalises its inputs with different statistics in its EBM and encoder",
                              "ebmctl's CLEL shares one mean and std between them")
    enc_width = shape_of(encoder, "conv1.1.weight", str(source))[0]
    enc_hidden, enc_out = shape_of(encoder, "fc.0.weight", str(source))[0], shape_of(encoder, "fc.3.weight", str(source))[0]
    overrides = [f"net.channels={as_list(channels)}", f"net.blocks={as_list(blocks)}", f"net.scales={scales}",
                 f"net.hidden={hidden}", f"net.latent_dim={latent}", f"net.projection={projection}",
                 "net.spectral_norm=true", f"net.mean={as_list(means[0].tolist())}",
                 f"net.std={as_list(stds[0].tolist())}", f"method.encoder.width={enc_width}",
                 f"method.encoder.hidden={enc_hidden}", f"method.encoder.out_dim={enc_out}"]
    weights: dict[str, torch.Tensor] = {}
    for frm, to in PARTS:  # an EMA the file lacks is filled from the weights by the import service
        tensors = part[frm]
        mapped = _ebm_keys(tensors, scales, projection) if "ebm" in frm else _encoder_keys(tensors)
        weights |= renamed(mapped, [("", to)], str(source))
    iteration = doc.get("engine", {}).get("iteration", 0) if isinstance(doc.get("engine"), dict) else 0
    memory = model.get("sampler.memory")
    chains = memory.float() if isinstance(memory, torch.Tensor) and memory.dim() == 4 else None
    if chains is not None:
        overrides.append(f"buffer.size={len(chains)}")
    return Imported(
        preset or "clel-base", overrides, weights, step=iteration if isinstance(iteration, int) else 0,
        used=[f"the EBM and its EMA ({len(ebm)} tensors each: {scales} scale(s), stages {as_list(channels)} x "
              f"{as_list(blocks)}, head {hidden}-{latent}, {projection} projection)",
              f"the encoder and its EMA ({len(encoder)} tensors each: ResNet-18 width {enc_width}, head "
              f"{enc_hidden}-{enc_out})"]
        + ([f"sampler.memory, the replay buffer of {memory.shape[0]} chains (`sample --init buffer` continues "
            "them)"] if chains is not None else []),
        dropped=[f"{k} ({why})" for k, why in (("optimizers", "Adam's and SGD's state: an imported run is used, "
                                                "not resumed"), ("schedulers", "the learning-rate schedules"))
                 if k in doc],
        chains=chains,
    )


def _ebm_keys(tensors: dict[str, torch.Tensor], scales: int, projection: str) -> dict[str, torch.Tensor]:
    """The EBM's keys as ebmctl's ``clel_resnet`` names them: one ``normalize``, trunks per scale."""
    out = {}
    for key, value in tensors.items():
        if m := re.fullmatch(r"stem(\d?)\.0\.(mean|std)", key):
            out[f"normalize.{m[2]}"] = value.view(1, -1, 1, 1)
        elif m := re.fullmatch(r"(stem|stages)(\d?)\.(.*)", key):
            trunk = int(m[2]) - 1 if m[2] else 0
            rest = m[3][2:] if m[1] == "stem" and m[3].startswith("1.") else m[3]
            out[f"trunks.{trunk}.{m[1]}.{rest}"] = value
        elif projection == "linear" and key.startswith("projection.0."):
            out["projection." + key[len("projection.0."):]] = value
        else:
            out[key] = value
    return out


def _encoder_keys(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The encoder's keys as ebmctl's ResNet encoder names them: ``normalize``, ``conv1``, ``head``."""
    out = {}
    for key, value in tensors.items():
        if key in ("conv1.0.mean", "conv1.0.std"):
            out["normalize." + key.rsplit(".", 1)[1]] = value.view(1, -1, 1, 1)
        elif key.startswith("conv1.1."):
            out["conv1." + key[len("conv1.1."):]] = value
        elif key.startswith("fc."):
            out["head." + key[len("fc."):]] = value
        else:
            out[key] = value
    return out
