"""The multi-scale ResNet energy of Improved Contrastive Divergence (Du et al. 2021), CIFAR-10 32x32 model."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ebmctl.nets.layers import SelfAttention, WSConv2d, check_labels, spectral_norm, swish


def _norm(channels: int) -> nn.Module:
    # The released code switches from InstanceNorm to GroupNorm(32) above 128 channels.
    if channels <= 128:
        return nn.InstanceNorm2d(channels, affine=True)
    return nn.GroupNorm(32, channels)


def _res_conv(channels: int, use_spectral_norm: bool) -> nn.Module:
    if use_spectral_norm:
        return spectral_norm(nn.Conv2d(channels, channels, 3, padding=1))
    return WSConv2d(channels, channels, 3, padding=1)


class IcdResBlock(nn.Module):
    """Residual block ``x + swish(film(norm(conv(swish(film(norm(conv(x))))))))``.

    With ``downsample`` the sum goes through a plain 3x3 conv (to ``2 * channels`` when ``rescale``),
    AvgPool(3, stride 2, pad 1) and swish. ``label_dim > 0`` builds the two label maps
    ``Linear(label_dim, 2 * channels)`` giving the FiLM gain and bias ``h = gain * h + bias``.
    """

    def __init__(
        self,
        channels: int,
        *,
        downsample: bool = False,
        rescale: bool = True,
        norm: bool = True,
        spectral_norm: bool = False,
        label_dim: int = 0,
    ) -> None:
        super().__init__()
        self.conv1 = _res_conv(channels, spectral_norm)
        self.norm1 = _norm(channels) if norm else nn.Identity()
        self.conv2 = _res_conv(channels, spectral_norm)
        self.norm2 = _norm(channels) if norm else nn.Identity()
        self.film1 = nn.Linear(label_dim, 2 * channels) if label_dim else None
        self.film2 = nn.Linear(label_dim, 2 * channels) if label_dim else None
        self.out_channels = 2 * channels if downsample and rescale else channels
        if downsample:
            self.down_conv: nn.Module | None = nn.Conv2d(channels, self.out_channels, 3, padding=1)
            self.pool = nn.AvgPool2d(3, stride=2, padding=1)
        else:
            self.down_conv = None

    @staticmethod
    def _film(h: Tensor, film: nn.Linear | None, label: Tensor | None) -> Tensor:
        if label is None or film is None:
            return h
        gain, bias = film(label)[:, :, None, None].chunk(2, dim=1)
        return gain * h + bias

    def forward(self, x: Tensor, label: Tensor | None = None) -> Tensor:
        """``label`` is a float (B, label_dim) one-hot code, or None for no FiLM."""
        h = swish(self._film(self.norm1(self.conv1(x)), self.film1, label))
        h = swish(self._film(self.norm2(self.conv2(h)), self.film2, label))
        out = x + h
        if self.down_conv is not None:
            out = swish(self.pool(self.down_conv(out)))
        return out


class IcdBranch(nn.Module):
    """One scale of the ICD energy: stem conv, stages of two blocks, optional attention, pool, linear.

    Stage ``s`` has a plain block and a downsampling block; every stage but the first doubles the channels.
    """

    def __init__(
        self,
        in_channels: int,
        width: int,
        num_stages: int,
        *,
        attn_after_stage: int | None = None,
        norm: bool = True,
        spectral_norm: bool = False,
        label_dim: int = 0,
    ) -> None:
        super().__init__()
        self.stem = nn.Conv2d(in_channels, width, 3, padding=1)
        kw = {"norm": norm, "spectral_norm": spectral_norm, "label_dim": label_dim}
        blocks: list[IcdResBlock] = []
        channels = width
        self.attn_index: int | None = None
        self.attn: SelfAttention | None = None
        for stage in range(num_stages):
            blocks.append(IcdResBlock(channels, **kw))
            blocks.append(IcdResBlock(channels, downsample=True, rescale=stage > 0, **kw))
            channels = blocks[-1].out_channels
            if stage == attn_after_stage:
                self.attn_index = len(blocks) - 1
                self.attn = SelfAttention(channels)
        self.blocks = nn.ModuleList(blocks)
        self.out_channels = channels
        self.head = nn.Linear(channels, 1)

    def features(self, x: Tensor, label: Tensor | None = None) -> Tensor:
        h = swish(self.stem(x))
        for i, block in enumerate(self.blocks):
            h = block(h, label)
            if i == self.attn_index:
                h = self.attn(h)
        # The released code applies swish once more after the last (already activated) block.
        return swish(h).mean(dim=(2, 3))

    def forward(self, x: Tensor, label: Tensor | None = None) -> Tensor:
        return self.head(self.features(x, label))


def _half(x: Tensor) -> Tensor:
    return F.avg_pool2d(x, 3, stride=2, padding=1)


class IcdResNet(nn.Module):
    """ICD's energy ResNet (released ``ResNetModel``), 6,643,044 parameters at the defaults.

    ``forward(x, y)`` returns (B, 3) energies ordered [full, half, quarter] resolution when ``multiscale``
    (the released code concatenates them as [quarter, half, full]), else (B, 1). The full branch has four
    stages (width, width, 2w, 4w -> 8w features) with self-attention after the second; the half branch
    (input avg-pooled once) three stages (-> 4w); the quarter branch (pooled twice) two stages (-> 2w).

    ``label_maps`` reproduces the released code, which builds ``Linear(10, 2 * filters)`` FiLM maps in every
    block even for unconditional models; they are unused unless ``num_classes > 0``, in which case
    ``num_classes`` maps are built and y (class indices) selects the FiLM gain and bias. Inputs need at
    least 16 pixels a side when ``norm`` is on (instance norm needs more than one position).
    """

    def __init__(
        self,
        in_channels: int = 3,
        width: int = 64,
        multiscale: bool = True,
        self_attn: bool = True,
        norm: bool = True,
        spectral_norm: bool = False,
        num_classes: int = 0,
        label_maps: int = 10,
    ) -> None:
        super().__init__()
        if width < 1 or in_channels < 1 or num_classes < 0 or label_maps < 0:
            raise ValueError("width and in_channels must be positive, num_classes and label_maps >= 0")
        self.num_classes = num_classes
        self.num_scales = 3 if multiscale else 1
        self.norm = norm
        kw = {
            "norm": norm,
            "spectral_norm": spectral_norm,
            "label_dim": num_classes if num_classes > 0 else label_maps,
        }
        self.branch_full = IcdBranch(in_channels, width, 4, attn_after_stage=1 if self_attn else None, **kw)
        self.branch_half = IcdBranch(in_channels, width, 3, **kw) if multiscale else None
        self.branch_quarter = IcdBranch(in_channels, width, 2, **kw) if multiscale else None

    def _label(self, x: Tensor, y: Tensor | None) -> Tensor | None:
        y = check_labels(y, self.num_classes, x.shape[0])
        return None if y is None else F.one_hot(y, self.num_classes).to(x.dtype)

    def _check_size(self, x: Tensor) -> None:
        if self.norm and min(x.shape[-2:]) < 16:
            raise ValueError(f"IcdResNet with norm needs inputs of at least 16x16, got {tuple(x.shape[-2:])}")

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        self._check_size(x)
        label = self._label(x, y)
        energies = [self.branch_full(x, label)]
        if self.branch_half is not None and self.branch_quarter is not None:
            x_half = _half(x)
            energies += [self.branch_half(x_half, label), self.branch_quarter(_half(x_half), label)]
        return energies[0] if len(energies) == 1 else torch.cat(energies, dim=1)

    def features(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Globally pooled features of the full-resolution branch, (B, 8 * width); y as in forward."""
        self._check_size(x)
        return self.branch_full.features(x, self._label(x, y))
