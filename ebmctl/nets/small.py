"""Small energy nets for CPU presets: a strided conv stack for images and an MLP for 2D toy data."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ebmctl.nets.layers import ClassFiLM, check_labels, swish


class ConvStack(nn.Module):
    """conv3x3(width) then stride-2 convs at width, 2w, 4w, each followed by [class FiLM] and swish.

    ``down_kernel`` 4 (even overlap) keeps the input gradient free of the checkerboard that 3x3 stride-2
    convs leave in Langevin samples; 3 is cheaper.
    """

    def __init__(self, in_channels: int, width: int, num_classes: int = 0, down_kernel: int = 3) -> None:
        super().__init__()
        if down_kernel not in (3, 4):
            raise ValueError("down_kernel must be 3 or 4")
        channels = [in_channels, width, width, 2 * width, 4 * width]
        self.convs = nn.ModuleList(
            [nn.Conv2d(channels[0], channels[1], 3, padding=1)]
            + [nn.Conv2d(channels[i], channels[i + 1], down_kernel, stride=2, padding=1) for i in range(1, 4)]
        )
        self.films = (
            nn.ModuleList([ClassFiLM(num_classes, c) for c in channels[1:]]) if num_classes > 0 else None
        )
        self.out_channels = channels[-1]
        self.head = nn.Linear(self.out_channels, 1)

    def features(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        h = x
        for i, conv in enumerate(self.convs):
            h = conv(h)
            if self.films is not None and y is not None:
                h = self.films[i](h, y)
            h = swish(h)
        return h.mean(dim=(2, 3))

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return self.head(self.features(x, y))


def _half(x: Tensor) -> Tensor:
    return F.avg_pool2d(x, 3, stride=2, padding=1)


class SmallConvEnergy(nn.Module):
    """Fast image energy for CPU presets; (B, 1), or (B, 3) ordered [full, half, quarter] when multiscale.

    Each scale is an independent :class:`ConvStack` on the input avg-pooled 0, 1 or 2 times (as ICD's
    branches). With ``num_classes > 0`` every conv is followed by a per-class gain and bias selected by y.
    """

    def __init__(
        self, in_channels: int = 3, width: int = 32, multiscale: bool = False, num_classes: int = 0,
        down_kernel: int = 3,
    ) -> None:
        super().__init__()
        if width < 1 or in_channels < 1 or num_classes < 0:
            raise ValueError("width and in_channels must be positive, num_classes >= 0")
        self.num_classes = num_classes
        self.num_scales = 3 if multiscale else 1
        self.stacks = nn.ModuleList(
            ConvStack(in_channels, width, num_classes, down_kernel) for _ in range(self.num_scales)
        )

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        y = check_labels(y, self.num_classes, x.shape[0])
        energies = []
        for i, stack in enumerate(self.stacks):
            energies.append(stack(x, y))
            if i + 1 < len(self.stacks):
                x = _half(x)
        return torch.cat(energies, dim=1)

    def features(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Pooled features of the full-resolution stack, (B, 4 * width)."""
        return self.stacks[0].features(x, check_labels(y, self.num_classes, x.shape[0]))


class MlpEnergy(nn.Module):
    """MLP energy for low-dimensional data: ``depth`` hidden swish layers of ``hidden`` units, then 1 output."""

    def __init__(self, in_dim: int = 2, hidden: int = 128, depth: int = 3, num_classes: int = 0) -> None:
        super().__init__()
        if in_dim < 1 or hidden < 1 or depth < 1 or num_classes < 0:
            raise ValueError("in_dim, hidden and depth must be positive, num_classes >= 0")
        self.num_classes = num_classes
        self.num_scales = 1
        self.layers = nn.ModuleList(nn.Linear(in_dim if i == 0 else hidden, hidden) for i in range(depth))
        self.films = (
            nn.ModuleList(ClassFiLM(num_classes, hidden) for _ in range(depth)) if num_classes > 0 else None
        )
        self.head = nn.Linear(hidden, 1)

    def features(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Last hidden layer, (B, hidden)."""
        y = check_labels(y, self.num_classes, x.shape[0])
        h = x
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if self.films is not None and y is not None:
                h = self.films[i](h, y)
            h = swish(h)
        return h

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return self.head(self.features(x, y))
