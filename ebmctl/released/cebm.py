"""CEBM's released code (hao-w/cebm): ``save_models`` writes ``torch.save({'ebm': ebm.state_dict()}, path)`` to
``weights/<exp_name>`` after every epoch. The file holds the conv stack (``conv_net.0/2/4/6``), the FC layer of
the camera-ready scripts (``mlp_net.0``, absent on master), the two heads (``nss1_net``, ``nss2_net``) and, for a
mixture trained with ``--optimize_ib``, its means and log-stds (``ib_means``, ``ib_log_stds``). No optimiser, no
EMA, no config: the architecture is read from the shapes. The Gaussian prior is N(0, I) and never saved. After the
last epoch the trainer also writes its replay buffer apart, ``buffer-<exp_name>`` in the working directory: a bare
float tensor of chains in [-1, 1] (5,000 of them)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from ebmctl.errors import CheckpointError
from ebmctl.released.base import Imported, as_list, renamed, shape_of
from ebmctl.released.reader import read_release, state_dict

WHAT = "a checkpoint of hao-w/cebm's save_models ({'ebm': state_dict})"
STRIDES, PADDINGS = (1, 2, 2, 2), (1, 1, 1, 1)  # every released script's; not in the file


def convert(doc: Any, source: Path, preset: str | None, buffer: Path | None = None) -> Imported:
    sd = state_dict(doc, "ebm", source, WHAT)
    convs = sorted(int(m[1]) for k in sd if (m := re.fullmatch(r"conv_net\.(\d+)\.weight", k)))
    if len(convs) != len(STRIDES) or any(f"mlp_net.{i}.weight" in sd for i in range(1, 8)):
        raise CheckpointError(f"{source} has {len(convs)} convs and more than one FC layer or other than four convs",
                              "ebmctl's cebm_conv net takes the released '4cnn' layout: four convs, at most one FC")
    weights = [sd[f"conv_net.{i}.weight"] for i in convs]
    channels, kernels = [w.shape[0] for w in weights], [w.shape[-1] for w in weights]
    in_channels = weights[0].shape[1]
    hidden = shape_of(sd, "mlp_net.0.weight", source)[0] if "mlp_net.0.weight" in sd else 0
    latent, into_heads = shape_of(sd, "nss1_net.weight", source)
    flat = sd["mlp_net.0.weight"].shape[1] if hidden else into_heads
    mixture = "ib_means" in sd
    if not mixture and "GMM" in source.name:
        raise CheckpointError(f"{source} is a mixture CEBM whose means were never saved (trained without "
                              "--optimize_ib, they were a random draw kept outside the state_dict)",
                              "retrain it with --optimize_ib, or import a Gaussian CEBM")
    name = preset or ("cebmm" if mixture else "cebm") + ("-mnist" if in_channels == 1 else "-cifar10")
    overrides = [f"net.channels={as_list(channels)}", f"net.kernels={as_list(kernels)}",
                 f"net.strides={as_list(STRIDES)}", f"net.paddings={as_list(PADDINGS)}", f"net.hidden={hidden}",
                 f"net.latent_dim={latent}", "net.activation=silu", f"net.bias={'mixture' if mixture else 'gaussian'}"]
    tensors = dict(sd)
    if mixture:
        overrides += [f"net.components={sd['ib_means'].shape[0]}", "net.learn_bias=true"]
    else:
        tensors |= {"ib_means": torch.zeros(latent), "ib_log_stds": torch.zeros(latent)}
    chains = None
    if buffer is not None:
        chains = read_release(buffer)
        if not isinstance(chains, torch.Tensor) or chains.dim() != 4 or chains.shape[1] != in_channels:
            raise CheckpointError(f"{buffer} is not a replay buffer of {in_channels}-channel images (a tensor N x "
                                  f"{in_channels} x H x W)", "pass the buffer-<exp_name> file the same training wrote")
        overrides.append(f"buffer.size={len(chains)}")
    fc = 2 * len(convs) + 1  # ebmctl's encoder: [conv, act] x 4, flatten, then the FC layer
    out = renamed(tensors, [("conv_net.", "model.encoder."), ("mlp_net.0.", f"model.encoder.{fc}."),
                            ("nss1_net.", "model.head1."), ("nss2_net.", "model.head2."),
                            ("ib_means", "model.bias_mean"), ("ib_log_stds", "model.bias_log_std")], str(source))
    return Imported(name, overrides, out, used=[
        f"the EBM ({len(sd)} tensors: {len(convs)} convs {as_list(channels)}, FC {hidden or 'none'}, latent "
        f"{latent}, {'a learnt mixture of ' + str(sd['ib_means'].shape[0]) if mixture else 'the N(0, I) prior'})",
        f"input of {in_channels} channel(s); the convs end at {round((flat // channels[-1]) ** 0.5)} px",
    ] + ([f"{buffer.name}, the replay buffer of {len(chains)} chains"] if buffer is not None and chains is not None
         else []),
        dropped=[f"{k} (no counterpart in ebmctl's CEBM)" for k in doc if k != "ebm"],
        chains=None if chains is None else chains.float(), companions=[buffer] if buffer is not None else [])
