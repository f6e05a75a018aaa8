"""Energy networks. Every net maps ``forward(x, y=None)`` to (B, num_scales) energies.

The scalar energy of a sample is the sum over scales. ``features(x, y=None)`` gives the pooled
penultimate features of the main branch. ``y`` holds int64 class indices (B,) and is required by nets
built with ``num_classes > 0`` and rejected (ValueError) by the others.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from ebmctl.nets.cebm import CebmNet
from ebmctl.nets.clel import CLEL_SIZES, ClelEnergyNet, clel_energy_net
from ebmctl.nets.conv_mlp import ConvMlpEnergy
from ebmctl.nets.encoders import ENCODERS, ResNetEncoder
from ebmctl.nets.icd_resnet import IcdResNet
from ebmctl.nets.igebm_resnet import IgebmResNet
from ebmctl.nets.small import MlpEnergy, SmallConvEnergy

NETS: dict[str, Callable[..., nn.Module]] = {
    "cebm_conv": CebmNet,
    "clel_resnet": ClelEnergyNet,
    "icd_resnet": IcdResNet,
    "igebm_resnet": IgebmResNet,
    "small_conv": SmallConvEnergy,
    "mlp": MlpEnergy,
    "conv_mlp": ConvMlpEnergy,
}


def build_net(name: str, **kwargs: object) -> nn.Module:
    """Build the energy net registered as ``name`` with keyword arguments."""
    if name not in NETS:
        raise ValueError(f"unknown energy net {name!r}; choose one of {', '.join(sorted(NETS))}")
    return NETS[name](**kwargs)


def count_parameters(module: nn.Module) -> int:
    """Number of parameter elements (buffers such as spectral-norm vectors are not counted)."""
    return sum(p.numel() for p in module.parameters())


__all__ = [
    "CLEL_SIZES",
    "ENCODERS",
    "NETS",
    "CebmNet",
    "ClelEnergyNet",
    "ConvMlpEnergy",
    "IcdResNet",
    "IgebmResNet",
    "MlpEnergy",
    "ResNetEncoder",
    "SmallConvEnergy",
    "build_net",
    "clel_energy_net",
    "count_parameters",
]
