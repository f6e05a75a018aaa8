"""CLEL energy net (Lee et al., ICLR 2023): a spectrally normalised pre-activation ResNet with two MLPs.

The head f maps an image to f(x); the energy is ``0.5 * ||f(x)||^2``. The bias-free projection g maps the
direction f / ||f|| to a unit latent that CLEL aligns with a contrastive encoder's representation. The paper's
g is a two-layer MLP; its Table 5 ablates it to one linear layer and to the identity (no g).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ebmctl.nets.encoders import Normalize, channel_stats
from ebmctl.nets.layers import check_labels
from ebmctl.nets.layers import spectral_norm as add_spectral_norm

NORM_EPS = 1e-8
_SLOPE = 0.2
PROJECTIONS = ("mlp", "linear", "identity")


def _act(x: Tensor) -> Tensor:
    return F.leaky_relu(x, _SLOPE)


class PreActBlock(nn.Module):
    """``conv2(act(conv1(act(x)))) + shortcut(x)``: 3x3 convs with bias, 1x1 bias-free shortcut if widening."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.shortcut: nn.Module = (
            nn.Conv2d(in_channels, out_channels, 1, bias=False) if in_channels != out_channels else nn.Identity()
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.conv2(_act(self.conv1(_act(x)))) + self.shortcut(x)


class ClelTrunk(nn.Module):
    """Stem conv, stages (avg-pool 2 before every stage but the first), final act and global average pool."""

    def __init__(self, in_channels: int, channels: Sequence[int], blocks: Sequence[int]) -> None:
        super().__init__()
        self.stem = nn.Conv2d(in_channels, channels[0], 3, padding=1)
        stages = []
        width = channels[0]
        for i, (out_channels, num_blocks) in enumerate(zip(channels, blocks, strict=True)):
            layers: list[nn.Module] = [nn.AvgPool2d(2)] if i > 0 else []
            for _ in range(num_blocks):
                layers.append(PreActBlock(width, out_channels))
                width = out_channels
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)
        self.out_channels = width

    def forward(self, x: Tensor) -> Tensor:
        return _act(self.stages(self.stem(x))).mean(dim=(2, 3))


def _mlp(dims: tuple[int, int, int], bias: bool) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(dims[0], dims[1], bias=bias), nn.LeakyReLU(_SLOPE), nn.Linear(dims[1], dims[2], bias=bias)
    )


def _projection(kind: str, latent_dim: int, hidden: int) -> nn.Module:
    """g: the bias-free MLP ``latent-hidden-latent`` (mlp), one bias-free linear layer (linear) or the identity."""
    if kind == "mlp":
        return _mlp((latent_dim, hidden, latent_dim), bias=False)
    if kind == "linear":
        return nn.Linear(latent_dim, latent_dim, bias=False)
    return nn.Identity()


class ClelEnergyNet(nn.Module):
    """CLEL's EBM: ``forward`` gives the energy ``0.5 * ||f(x)||^2`` as (B, 1); ``latent`` the unit g-latent.

    ``scales=3`` is the large model: independent trunks on the (normalised) image at full, half and
    quarter resolution (avg-pool 2 and 4) whose pooled features are concatenated before the head.
    ``projection`` picks g: the paper's MLP, or Table 5's ablations ``linear`` and ``identity`` (the latent is then
    f / ||f|| itself).
    Linear weights start at N(0, 0.01), conv weights at Kaiming-normal (fan-in, linear gain), biases at 0;
    every conv is then spectrally normalised when ``spectral_norm``. The paper's sizes (``CLEL_SIZES``)
    have 1,725,056 (small), 6,955,648 (base) and 30,706,816 (large) parameters, as released.
    """

    channels_last_chains = True  # measured faster in NHWC on CPU (docs/performance.md)

    def __init__(
        self,
        in_channels: int = 3,
        channels: tuple[int, ...] = (128, 128, 256, 256),
        blocks: tuple[int, ...] = (2, 2, 2, 2),
        scales: int = 1,
        hidden: int = 2048,
        latent_dim: int = 128,
        spectral_norm: bool = True,
        mean: tuple[float, ...] | None = None,
        std: tuple[float, ...] | None = None,
        num_classes: int = 0,
        projection: str = "mlp",
    ) -> None:
        super().__init__()
        channels, blocks = tuple(channels), tuple(blocks)
        if num_classes != 0:
            raise ValueError(f"ClelEnergyNet is unconditional; num_classes must be 0, got {num_classes}")
        if not channels or len(channels) != len(blocks):
            raise ValueError(f"channels and blocks need the same non-zero length, got {channels} and {blocks}")
        if min(channels) < 1 or min(blocks) < 1:
            raise ValueError(f"channels and blocks must be positive, got {channels} and {blocks}")
        if scales not in (1, 3):
            raise ValueError(f"scales must be 1 or 3, got {scales}")
        if min(in_channels, hidden, latent_dim) < 1:
            raise ValueError("in_channels, hidden and latent_dim must be positive")
        if projection not in PROJECTIONS:
            raise ValueError(f"projection must be one of {', '.join(PROJECTIONS)}, got {projection!r}")
        self.num_classes = 0
        self.num_scales = 1
        self.scales = scales
        self.min_size = 2 ** (len(channels) - 1) * (4 if scales == 3 else 1)
        self.normalize = Normalize(*channel_stats(in_channels, mean, std))
        self.trunks = nn.ModuleList(ClelTrunk(in_channels, channels, blocks) for _ in range(scales))
        self.feature_dim = scales * channels[-1]
        self.head = _mlp((self.feature_dim, hidden, latent_dim), bias=True)
        self.projection = _projection(projection, latent_dim, hidden)
        self._init_weights()
        if spectral_norm:
            for m in list(self.modules()):
                if isinstance(m, nn.Conv2d):
                    add_spectral_norm(m)

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
            elif isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="linear")
            else:
                continue
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    def _check_size(self, x: Tensor) -> None:
        if min(x.shape[-2:]) < self.min_size:
            raise ValueError(
                f"ClelEnergyNet needs inputs of at least {self.min_size}x{self.min_size}, got {tuple(x.shape[-2:])}"
            )

    def features(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Pooled trunk features before the head, (B, scales * channels[-1]), ordered full, half, quarter."""
        check_labels(y, self.num_classes, x.shape[0])
        self._check_size(x)
        x = self.normalize(x)
        pooled = [trunk(x if i == 0 else F.avg_pool2d(x, 2**i)) for i, trunk in enumerate(self.trunks)]
        return pooled[0] if len(pooled) == 1 else torch.cat(pooled, dim=1)

    def f(self, x: Tensor) -> Tensor:
        """Head output f_theta(x), (B, latent_dim)."""
        return self.head(self.features(x))

    def latent(self, f: Tensor) -> Tensor:
        """Unit latent ``normalize(g(f / ||f||))``, (B, latent_dim); ``f / ||f||`` when g is the identity."""
        return F.normalize(self.projection(F.normalize(f, dim=1, eps=NORM_EPS)), dim=1, eps=NORM_EPS)

    def f_and_latent(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(f(x), latent(f(x)))``."""
        f = self.f(x)
        return f, self.latent(f)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Energy ``0.5 * ||f(x)||^2``, (B, 1)."""
        check_labels(y, self.num_classes, x.shape[0])
        return 0.5 * self.f(x).pow(2).sum(dim=1, keepdim=True)


CLEL_SIZES: dict[str, dict[str, Any]] = {
    "small": {"channels": (64, 64, 128, 128), "blocks": (1, 1, 1, 1), "scales": 1},
    "base": {"channels": (128, 128, 256, 256), "blocks": (2, 2, 2, 2), "scales": 1},
    "large": {"channels": (256, 256, 256, 256), "blocks": (2, 2, 2, 2), "scales": 3},
}


def clel_energy_net(size: str, **overrides: Any) -> ClelEnergyNet:
    """The paper's ``size`` (small, base or large) with keyword ``overrides``."""
    if size not in CLEL_SIZES:
        raise ValueError(f"unknown CLEL size {size!r}; choose one of {', '.join(CLEL_SIZES)}")
    return ClelEnergyNet(**{**CLEL_SIZES[size], **overrides})
