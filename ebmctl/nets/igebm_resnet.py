"""PyTorch port of IGEBM's CIFAR-10 energy (Du & Mordatch 2019, released ``ResNet32Large``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ebmctl.nets.layers import SelfAttention, bounded_spectral_norm, check_labels, spectral_norm


def _leaky(x: Tensor) -> Tensor:
    return F.leaky_relu(x, 0.2)


def _sn_conv3x3(in_channels: int, out_channels: int) -> nn.Module:
    conv = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
    nn.init.normal_(conv.weight)  # as released; spectral norm removes the scale
    return spectral_norm(conv)


def _zero_conv3x3(channels: int) -> nn.Module:
    conv = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
    nn.init.zeros_(conv.weight)
    return bounded_spectral_norm(conv)


def _per_class(param: Tensor, y: Tensor | None) -> Tensor:
    """(C,) -> (1, C, 1, 1), or a per-class table (K, C) indexed by y -> (B, C, 1, 1)."""
    rows = param.unsqueeze(0) if y is None else param[y]
    return rows[:, :, None, None]


class IgebmResBlock(nn.Module):
    """``act(pool(shortcut(x) + scale * conv2(act(drop(conv1(x + b1))) + b2)))``.

    conv2 is zero-initialised (its spectral norm is only capped at 1), so the block starts as its
    shortcut: the identity, or a spectrally normalised 3x3 conv when the channel count changes. With
    ``num_classes > 0`` the biases and the scale are per-class tables indexed by y; the scale then also
    has the released code's shared per-channel offset.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        downsample: bool = False,
        dropout: float = 0.0,
        num_classes: int = 0,
    ) -> None:
        super().__init__()
        rows = (num_classes,) if num_classes > 0 else ()
        self.bias1 = nn.Parameter(torch.zeros(*rows, in_channels))
        self.conv1 = _sn_conv3x3(in_channels, out_channels)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.bias2 = nn.Parameter(torch.zeros(*rows, out_channels))
        self.conv2 = _zero_conv3x3(out_channels)
        self.scale = nn.Parameter(torch.ones(*rows, out_channels))
        self.scale_offset = nn.Parameter(torch.zeros(out_channels)) if num_classes > 0 else None
        self.shortcut = (
            _sn_conv3x3(in_channels, out_channels) if in_channels != out_channels else nn.Identity()
        )
        self.downsample = downsample

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        h = _leaky(self.dropout(self.conv1(x + _per_class(self.bias1, y))))
        scale = _per_class(self.scale, y)
        if self.scale_offset is not None:
            scale = scale + self.scale_offset[:, None, None]
        out = self.conv2(h + _per_class(self.bias2, y)) * scale + self.shortcut(x)
        if self.downsample:
            out = F.avg_pool2d(out, 2)
        return _leaky(out)


class IgebmResNet(nn.Module):
    """IGEBM's ResNet32Large energy: 9 residual blocks at width, 2w, 4w; output (B, 1).

    Stem SN conv3x3 + leaky ReLU(0.2); blocks res_optim(down), res_1, res_2 at ``width``; res_3 (to 2w,
    down), res_4 (or SAGAN attention with keys at C/2 when ``self_attn``), res_5; res_6 (to 4w, down),
    res_7, res_8; ReLU (leaky when conditional), sum over positions, linear 4w -> 1. Every conv is
    spectrally normalised, none has a bias. Inputs: sides a multiple of 8.
    """

    def __init__(
        self,
        in_channels: int = 3,
        width: int = 128,
        self_attn: bool = False,
        dropout: float = 0.0,
        num_classes: int = 0,
    ) -> None:
        super().__init__()
        if width < 1 or in_channels < 1 or num_classes < 0 or not 0.0 <= dropout < 1.0:
            raise ValueError("width and in_channels must be positive, num_classes >= 0, 0 <= dropout < 1")
        self.num_classes = num_classes
        self.num_scales = 1
        self.stem = _sn_conv3x3(in_channels, width)
        w = width
        plan = [
            (w, w, True),
            (w, w, False),
            (w, w, False),
            (w, 2 * w, True),
            (2 * w, 2 * w, False),
            (2 * w, 2 * w, False),
            (2 * w, 4 * w, True),
            (4 * w, 4 * w, False),
            (4 * w, 4 * w, False),
        ]
        layers: list[nn.Module] = [
            IgebmResBlock(cin, cout, downsample=down, dropout=dropout, num_classes=num_classes)
            for cin, cout, down in plan
        ]
        if self_attn:
            layers[4] = SelfAttention(
                2 * w, key_channels=w, spectral=True, value_bias=False, value_activation=_leaky
            )
        self.layers = nn.ModuleList(layers)
        self.head = nn.Linear(4 * w, 1)
        nn.init.xavier_uniform_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def features(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Activated last feature map summed over positions, (B, 4 * width)."""
        if x.shape[-1] % 8 or x.shape[-2] % 8:
            raise ValueError(
                f"IgebmResNet needs image sides that are multiples of 8, got {tuple(x.shape[-2:])}"
            )
        y = check_labels(y, self.num_classes, x.shape[0])
        h = _leaky(self.stem(x))
        for layer in self.layers:
            h = layer(h, y) if isinstance(layer, IgebmResBlock) else layer(h)
        h = _leaky(h) if self.num_classes > 0 else F.relu(h)
        return h.sum(dim=(2, 3))

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return self.head(self.features(x, y))
