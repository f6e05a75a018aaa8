"""EBCLR's released code (1202kbs/EBCLR): ``save_ckpt`` writes ``{'iteration', 'runtime', 'opt',
'enc_state_dict', 'proj_state_dict'}`` to ``curr.pt`` and, every 5 epochs with the replay buffer and its visit
counter added (``buffer``, ``counter``), to ``<epoch>.pt``. The encoder is a ResNet-18 without batch norm with
LeakyReLU(0.2), its shortcuts named ``shortcut``; the projection is ``fc1``, LeakyReLU, ``fc2``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ebmctl.released.base import Imported, renamed, shape_of
from ebmctl.released.reader import state_dict

WHAT = "a checkpoint of 1202kbs/EBCLR's save_ckpt ({'enc_state_dict', 'proj_state_dict', ...})"


def convert(doc: Any, source: Path, preset: str | None) -> Imported:
    enc = state_dict(doc, "enc_state_dict", source, WHAT)
    proj = state_dict(doc, "proj_state_dict", source, WHAT)
    width, in_channels = shape_of(enc, "conv1.weight", source)[:2]
    hidden = shape_of(proj, "fc1.weight", source)[0]
    out_dim = shape_of(proj, "fc2.weight", source)[0]
    tensors = {k.replace(".shortcut.", ".downsample."): v for k, v in enc.items()}
    weights = renamed(tensors, [("", "model.")], str(source))
    weights |= renamed(proj, [("fc1.", "model.head.0."), ("fc2.", "model.head.2.")], str(source))
    step = doc.get("iteration", 0)
    return Imported(
        preset or ("ebclr-mnist" if in_channels == 1 else "ebclr-cifar10"),
        [f"net.width={width}", f"net.hidden={hidden}", f"net.out_dim={out_dim}", "net.batch_norm=false",
         "net.activation=leaky_relu", "net.head_bn=false", "net.normalize=false"],
        weights,
        step=step if isinstance(step, int) and step >= 0 else 0,
        used=[f"the encoder ({len(enc)} tensors, width {width}, {in_channels} input channel(s)) and the projection "
              f"({len(proj)} tensors, {hidden}-{out_dim})"],
        dropped=[f"{k} ({why})" for k, why in (("opt", "Adam's state: an imported run is used, not resumed"),
                                               ("buffer", "the replay buffer: EBCLR runs draw no samples, and an "
                                                "imported run is not resumed"),
                                               ("counter", "the buffer's visit counts")) if k in doc],
    )
