"""Contrastive encoders: the CIFAR variant of ResNet-18 with a SimCLR projection head.

CLEL trains such an encoder h_phi with a SimCLR loss next to the energy net; the SimCLR baseline uses it
alone; EBCLR uses it without BatchNorm and with LeakyReLU, since its Langevin chains differentiate through
it. ``backbone`` gives the pooled representation a linear probe reads, ``forward`` the unnormalised
projection the contrastive loss consumes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

CIFAR10_MEAN: tuple[float, float, float] = (0.4914, 0.4822, 0.4465)
CIFAR10_STD: tuple[float, float, float] = (0.2470, 0.2435, 0.2616)


def channel_stats(
    in_channels: int, mean: Sequence[float] | None, std: Sequence[float] | None
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel input statistics; None means the CIFAR-10 ones (their average for 1-channel inputs)."""
    if mean is None:
        mean = _default_stat(CIFAR10_MEAN, in_channels, "mean")
    if std is None:
        std = _default_stat(CIFAR10_STD, in_channels, "std")
    mean, std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
    if len(mean) != in_channels or len(std) != in_channels:
        raise ValueError(
            f"mean and std need {in_channels} values (one per input channel), got {len(mean)} and {len(std)}"
        )
    if min(std) <= 0:
        raise ValueError(f"std must be positive, got {std}")
    return mean, std


def _default_stat(values: tuple[float, ...], in_channels: int, name: str) -> tuple[float, ...]:
    if in_channels == 3:
        return values
    if in_channels == 1:
        return (sum(values) / 3,)
    raise ValueError(f"pass {name} explicitly for {in_channels}-channel inputs (defaults cover 1 or 3 channels)")


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel; mean and std are buffers, so the module has no parameters."""

    mean: Tensor
    std: Tensor

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        return f"mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()}"


ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": F.relu,
    "leaky_relu": lambda x: F.leaky_relu(x, 0.2),
}


def _norm(channels: int, batch_norm: bool) -> nn.Module:
    return nn.BatchNorm2d(channels) if batch_norm else nn.Identity()


class BasicBlock(nn.Module):
    """ResNet basic block: conv3x3-BN-act-conv3x3-BN plus a (1x1 conv + BN when the shape changes) shortcut.

    Without BatchNorm the convs carry biases (EBCLR's variant)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, batch_norm: bool = True,
                 activation: str = "relu") -> None:
        super().__init__()
        bias = not batch_norm
        self.act = ACTIVATIONS[activation]
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=bias)
        self.bn1 = _norm(out_channels, batch_norm)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=bias)
        self.bn2 = _norm(out_channels, batch_norm)
        self.downsample: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=bias), _norm(out_channels, batch_norm)
            )

    def forward(self, x: Tensor) -> Tensor:
        h = self.act(self.bn1(self.conv1(x)))
        return self.act(self.bn2(self.conv2(h)) + self.downsample(x))


class ResNetEncoder(nn.Module):
    """ResNet-18 encoder (two basic blocks per stage at width, 2w, 4w, 8w channels) with an MLP head.

    Inputs of at most 32 px get a 3x3 stride-1 stem conv, larger ones the 7x7 stride-2 conv; the max-pool
    is dropped in both cases and the input is normalised first. The head is Linear(8w, hidden, no bias),
    BatchNorm1d, ReLU, Linear(hidden, out_dim). Init follows torchvision with ``zero_init_residual=True``
    (the last BN of every block starts at gain 0). With width 64 and 32 px inputs this is the released
    CLEL encoder: 12,483,776 parameters.

    ``batch_norm=False`` drops every BatchNorm (convs get biases, PyTorch's default init), ``activation``
    picks ReLU or LeakyReLU(0.2), ``head_bn=False`` makes the head Linear(8w, hidden)-act-Linear(hidden,
    out_dim), and ``normalize=False`` feeds the input as it is: with width 64, hidden 512 and LeakyReLU
    this is EBCLR's encoder and projection (11,492,352 parameters on 3-channel 32 px images).
    """

    def __init__(
        self,
        in_channels: int = 3,
        image_size: int = 32,
        width: int = 64,
        out_dim: int = 128,
        hidden: int = 2048,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        batch_norm: bool = True,
        activation: str = "relu",
        head_bn: bool = True,
        normalize: bool = True,
    ) -> None:
        super().__init__()
        if min(in_channels, image_size, width, out_dim, hidden) < 1:
            raise ValueError("in_channels, image_size, width, out_dim and hidden must be positive")
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose one of {', '.join(ACTIVATIONS)}")
        self.normalize: nn.Module = Normalize(*channel_stats(in_channels, mean, std)) if normalize else nn.Identity()
        self.act = ACTIVATIONS[activation]
        bias = not batch_norm
        if image_size <= 32:
            self.conv1 = nn.Conv2d(in_channels, width, 3, stride=1, padding=1, bias=bias)
        else:
            self.conv1 = nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=bias)
        self.bn1 = _norm(width, batch_norm)
        widths = [width, 2 * width, 4 * width, 8 * width]
        block = {"batch_norm": batch_norm, "activation": activation}
        self.layer1 = self._stage(width, widths[0], 1, block)
        self.layer2 = self._stage(widths[0], widths[1], 2, block)
        self.layer3 = self._stage(widths[1], widths[2], 2, block)
        self.layer4 = self._stage(widths[2], widths[3], 2, block)
        self.feature_dim = widths[3]
        self.out_dim = out_dim
        if head_bn:
            head: list[nn.Module] = [nn.Linear(self.feature_dim, hidden, bias=False), nn.BatchNorm1d(hidden)]
        else:
            head = [nn.Linear(self.feature_dim, hidden)]
        act: nn.Module = nn.ReLU() if activation == "relu" else nn.LeakyReLU(0.2)
        self.head = nn.Sequential(*head, act, nn.Linear(hidden, out_dim))
        if batch_norm:
            self._init_backbone()

    @staticmethod
    def _stage(in_channels: int, out_channels: int, stride: int, block: dict) -> nn.Sequential:
        return nn.Sequential(BasicBlock(in_channels, out_channels, stride, **block),
                             BasicBlock(out_channels, out_channels, **block))

    def _init_backbone(self) -> None:
        for name, m in self.named_modules():
            if name.startswith("head"):
                continue
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for m in self.modules():
            if isinstance(m, BasicBlock):
                nn.init.zeros_(m.bn2.weight)

    def backbone(self, x: Tensor) -> Tensor:
        """Globally pooled representation, (B, 8 * width)."""
        h = self.act(self.bn1(self.conv1(self.normalize(x))))
        h = self.layer4(self.layer3(self.layer2(self.layer1(h))))
        return h.mean(dim=(2, 3))

    def project(self, h: Tensor) -> Tensor:
        """MLP projection of backbone features, (B, out_dim)."""
        return self.head(h)

    def forward(self, x: Tensor) -> Tensor:
        """Unnormalised projection ``project(backbone(x))``, (B, out_dim)."""
        return self.project(self.backbone(x))


ENCODERS: dict[str, Callable[..., nn.Module]] = {"resnet18": ResNetEncoder}
