"""SN-GAN ResNet generators and discriminators (Miyato et al. 2018) as laid out in the Mimicry library.

Image sizes 32, 64 and 128 are supported. The discriminator with ``spectral_norm=False`` is the "hat
network" of Hat EBM (Hill et al. 2022; its released variant pools by mean and drops the output bias, see
:class:`SnganDiscriminator`); ``ImageLatentGenerator`` is that paper's retrofit decoder, which
maps an image-shaped latent (B, 1, 16, 16) to a 32 px image, and ``SphereEncoder`` is the matching
inference net of its autoencoder, whose latents lie on the sphere of radius sqrt(m) (m latent entries).
Both generators take ``out_scale``, the factor on their final tanh (Hat EBM uses 2 so that a generator
can reach beyond [-1, 1]).

Initialisation follows Mimicry: Xavier-uniform weights with gain sqrt(2) for the two 3x3 convs of every
residual branch and gain 1 for the shortcut convs, the generator's input linear and output conv and the
discriminator's output linear; biases keep PyTorch's default initialisation. Spectral norm, when used, is
added after initialisation and adds buffers only, no parameters.
"""

from __future__ import annotations

import math
from itertools import pairwise
from typing import Literal, Self

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ebmctl.nets.layers import check_labels
from ebmctl.nets.layers import spectral_norm as add_spectral_norm

IMAGE_SIZES = (32, 64, 128)
POOLINGS = ("sum", "mean")
_RESIDUAL_GAIN = math.sqrt(2.0)


def _check_image_size(image_size: int) -> None:
    if image_size not in IMAGE_SIZES:
        raise ValueError(f"image_size must be one of {IMAGE_SIZES}, got {image_size!r}")


def _init(module: nn.Conv2d | nn.Linear, gain: float, spectral_norm: bool = False) -> nn.Module:
    """Xavier-uniform init of ``module.weight``, then optional spectral normalisation."""
    nn.init.xavier_uniform_(module.weight, gain)
    return add_spectral_norm(module) if spectral_norm else module


def _upsample(x: Tensor) -> Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


class GenBlock(nn.Module):
    """Generator residual block: ``BN-ReLU-(up)-conv3x3-BN-ReLU-conv3x3`` plus a (up-)conv1x1 shortcut.

    The shortcut is a 1x1 conv when the width changes or the block upsamples, the identity otherwise.
    ``hidden_ch`` defaults to ``out_ch``; upsampling is bilinear x2.
    """

    def __init__(self, in_ch: int, out_ch: int, hidden_ch: int | None = None, upsample: bool = False) -> None:
        super().__init__()
        hidden_ch = out_ch if hidden_ch is None else hidden_ch
        self.upsample = upsample
        self.bn1 = nn.BatchNorm2d(in_ch)
        self.conv1 = _init(nn.Conv2d(in_ch, hidden_ch, 3, padding=1), _RESIDUAL_GAIN)
        self.bn2 = nn.BatchNorm2d(hidden_ch)
        self.conv2 = _init(nn.Conv2d(hidden_ch, out_ch, 3, padding=1), _RESIDUAL_GAIN)
        self.shortcut: nn.Module = (
            _init(nn.Conv2d(in_ch, out_ch, 1), 1.0) if in_ch != out_ch or upsample else nn.Identity()
        )

    def forward(self, x: Tensor) -> Tensor:
        h = F.relu(self.bn1(x))
        if self.upsample:
            h = _upsample(h)
            x = _upsample(x)
        h = self.conv2(F.relu(self.bn2(self.conv1(h))))
        return h + self.shortcut(x)


class DBlock(nn.Module):
    """Discriminator residual block: ``ReLU-conv3x3-ReLU-conv3x3-(avgpool)`` plus a conv1x1-(avgpool) shortcut.

    The shortcut is a 1x1 conv when the width changes or the block downsamples, the identity otherwise.
    ``hidden_ch`` defaults to ``in_ch``. Every conv is spectrally normalised when ``spectral_norm``.
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        hidden_ch: int | None = None,
        downsample: bool = False,
        spectral_norm: bool = True,
    ) -> None:
        super().__init__()
        hidden_ch = in_ch if hidden_ch is None else hidden_ch
        self.downsample = downsample
        self.conv1 = _init(nn.Conv2d(in_ch, hidden_ch, 3, padding=1), _RESIDUAL_GAIN, spectral_norm)
        self.conv2 = _init(nn.Conv2d(hidden_ch, out_ch, 3, padding=1), _RESIDUAL_GAIN, spectral_norm)
        self.shortcut: nn.Module = (
            _init(nn.Conv2d(in_ch, out_ch, 1), 1.0, spectral_norm)
            if in_ch != out_ch or downsample
            else nn.Identity()
        )

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv2(F.relu(self.conv1(F.relu(x))))
        s = self.shortcut(x)
        if self.downsample:
            h = F.avg_pool2d(h, 2)
            s = F.avg_pool2d(s, 2)
        return h + s


class DBlockOptimized(nn.Module):
    """First discriminator block (no leading ReLU): ``conv3x3-ReLU-conv3x3-avgpool`` plus ``avgpool-conv1x1``.

    With ``downsample=False`` both average pools are left out (the stem of :class:`SphereEncoder`).
    """

    def __init__(self, in_ch: int, out_ch: int, spectral_norm: bool = True, downsample: bool = True) -> None:
        super().__init__()
        self.downsample = downsample
        self.conv1 = _init(nn.Conv2d(in_ch, out_ch, 3, padding=1), _RESIDUAL_GAIN, spectral_norm)
        self.conv2 = _init(nn.Conv2d(out_ch, out_ch, 3, padding=1), _RESIDUAL_GAIN, spectral_norm)
        self.shortcut = _init(nn.Conv2d(in_ch, out_ch, 1), 1.0, spectral_norm)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv2(F.relu(self.conv1(x)))
        if not self.downsample:
            return h + self.shortcut(x)
        return F.avg_pool2d(h, 2) + self.shortcut(F.avg_pool2d(x, 2))


class _FreezableBatchNorm(nn.Module):
    """Mixin: ``freeze_batchnorm`` pins every BatchNorm layer in eval mode across later ``train()`` calls."""

    batchnorm_frozen: bool = False

    def freeze_batchnorm(self, frozen: bool = True) -> None:
        """Use the running BN statistics from now on, in train mode too (``frozen=False`` undoes it).

        Hat EBM trains its energy on top of a pretrained generator whose BN statistics must stay fixed:
        frozen layers normalise with their running mean and variance and no longer update them. Their
        affine weights remain parameters; exclude them from the optimiser to keep them fixed as well.
        """
        self.batchnorm_frozen = frozen
        self.train(self.training)

    def train(self, mode: bool = True) -> Self:
        super().train(mode)
        if self.batchnorm_frozen:
            for module in self.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return self


class SnganGenerator(_FreezableBatchNorm):
    """SN-GAN ResNet generator: z (B, nz) -> image (B, out_channels, S, S) in [-out_scale, out_scale].

    ``Linear(nz, bottom_width^2 * c0)`` -> upsampling GenBlocks -> BN -> ReLU -> conv3x3 -> out_scale * tanh.
    At 32 px there are three ngf->ngf blocks (ngf 256 by default); at 64 and 128 px the width halves per
    block from ngf (default 1024) down to ngf/16, with an extra ngf->ngf block first at 128 px.
    """

    def __init__(
        self,
        image_size: int,
        nz: int = 128,
        ngf: int | None = None,
        out_channels: int = 3,
        bottom_width: int = 4,
        out_scale: float = 1.0,
    ) -> None:
        super().__init__()
        _check_image_size(image_size)
        self.image_size = image_size
        self.nz = nz
        self.out_scale = float(out_scale)
        self.bottom_width = bottom_width
        if image_size == 32:
            self.ngf = 256 if ngf is None else ngf
            widths = [self.ngf] * 4
        else:
            self.ngf = 1024 if ngf is None else ngf
            widths = [self.ngf >> i for i in range(5)]
            if image_size == 128:
                widths = [self.ngf, *widths]
        self.base_channels = widths[0]
        self.linear = _init(nn.Linear(nz, bottom_width**2 * widths[0]), 1.0)
        self.blocks = nn.Sequential(
            *(GenBlock(c_in, c_out, upsample=True) for c_in, c_out in pairwise(widths))
        )
        self.bn = nn.BatchNorm2d(widths[-1])
        self.conv_out = _init(nn.Conv2d(widths[-1], out_channels, 3, padding=1), 1.0)

    def sample_latent(
        self, n: int, generator: torch.Generator | None = None, device: torch.device | str | None = None
    ) -> Tensor:
        """``n`` standard-normal latents of shape (n, nz)."""
        return torch.randn(n, self.nz, generator=generator, device=device)

    def forward(self, z: Tensor) -> Tensor:
        h = self.linear(z).view(z.shape[0], self.base_channels, self.bottom_width, self.bottom_width)
        h = F.relu(self.bn(self.blocks(h)))
        return self.out_scale * torch.tanh(self.conv_out(h))


class ImageLatentGenerator(_FreezableBatchNorm):
    """Hat EBM's retrofit decoder: an image-shaped latent (B, *latent_shape) -> image at twice its side.

    The 32 px SN-GAN generator with the input linear replaced by a conv3x3 (latent channels -> ngf) at the
    latent's resolution: two GenBlocks without upsampling, one upsampling GenBlock, then BN, ReLU,
    conv3x3 and ``out_scale * tanh``. The default (1, 16, 16) latent gives 32 px images.
    """

    def __init__(
        self,
        latent_shape: tuple[int, int, int] = (1, 16, 16),
        ngf: int = 256,
        out_channels: int = 3,
        out_scale: float = 1.0,
    ) -> None:
        super().__init__()
        self.latent_shape = tuple(latent_shape)
        self.out_scale = float(out_scale)
        self.image_size = 2 * latent_shape[-1]
        self.conv_in = _init(nn.Conv2d(latent_shape[0], ngf, 3, padding=1), 1.0)
        self.blocks = nn.Sequential(GenBlock(ngf, ngf), GenBlock(ngf, ngf), GenBlock(ngf, ngf, upsample=True))
        self.bn = nn.BatchNorm2d(ngf)
        self.conv_out = _init(nn.Conv2d(ngf, out_channels, 3, padding=1), 1.0)

    def sample_latent(
        self, n: int, generator: torch.Generator | None = None, device: torch.device | str | None = None
    ) -> Tensor:
        """``n`` standard-normal latents of shape (n, *latent_shape)."""
        return torch.randn(n, *self.latent_shape, generator=generator, device=device)

    def forward(self, z: Tensor) -> Tensor:
        if tuple(z.shape[1:]) != self.latent_shape:
            expected = ", ".join(map(str, self.latent_shape))
            raise ValueError(f"z must have shape (B, {expected}), got {tuple(z.shape)}")
        h = F.relu(self.bn(self.blocks(self.conv_in(z))))
        return self.out_scale * torch.tanh(self.conv_out(h))


class SphereEncoder(nn.Module):
    """Hat EBM's autoencoder inference net: image (B, C, S, S) -> latent (B, latent_channels, S/2, S/2).

    A non-downsampling stem block (``conv3x3-ReLU-conv3x3`` plus a conv1x1 shortcut), one downsampling and
    two plain DBlocks at width ``nef``, all without spectral norm, then ReLU and conv3x3 to
    ``latent_channels``. The output is projected per sample onto the sphere of radius sqrt(m), m the
    number of latent entries. ``image_size`` must be even and at least 8.
    """

    def __init__(self, image_size: int, nef: int = 256, in_channels: int = 3, latent_channels: int = 1) -> None:
        super().__init__()
        if image_size < 8 or image_size % 2:
            raise ValueError(f"image_size must be even and at least 8, got {image_size!r}")
        self.image_size = image_size
        self.nef = nef
        side = image_size // 2
        self.latent_shape = (latent_channels, side, side)
        self.blocks = nn.Sequential(
            DBlockOptimized(in_channels, nef, spectral_norm=False, downsample=False),
            DBlock(nef, nef, downsample=True, spectral_norm=False),
            DBlock(nef, nef, spectral_norm=False),
            DBlock(nef, nef, spectral_norm=False),
        )
        self.conv_out = _init(nn.Conv2d(nef, latent_channels, 3, padding=1), 1.0)

    @staticmethod
    def project(x: Tensor, eps: float = 1e-6) -> Tensor:
        """Scale each sample to L2 norm sqrt(m) over its m entries: ``x * sqrt(m) / (||x|| + eps)``."""
        flat = x.flatten(1)
        scale = math.sqrt(flat.shape[1]) / (flat.norm(dim=1) + eps)
        return x * scale.view(-1, *([1] * (x.dim() - 1)))

    def forward(self, x: Tensor) -> Tensor:
        return self.project(self.conv_out(F.relu(self.blocks(x))))


class SnganDiscriminator(nn.Module):
    """SN-GAN ResNet discriminator: image (B, in_channels, S, S) -> score (B, 1).

    An optimized first block, then DBlocks: at 32 px widths stay at ndf (default 128) with one more
    downsampling; at 64 and 128 px they double from ndf/16 to ndf (default 1024) with a downsampling per
    block, plus a final non-downsampling ndf->ndf block at 128 px. The head is ``Linear(pool(ReLU(h)))``.

    The defaults are Mimicry's layout: a spatial ``pooling="sum"``, a biased output and ``block_hidden="in"``
    (a DBlock's first conv keeps its input width). Hat EBM's released hat network (``EBMSNGAN32/64/128``) is
    this net with ``spectral_norm=False``, ``pooling="mean"`` (global average pooling), ``bias=False`` and
    ``block_hidden="out"`` (the first conv widens at once, which matters at 64 and 128 px only), at width 256
    at 32 px. ``forward(x, y=None)`` follows the energy-net convention and rejects labels.
    """

    def __init__(
        self,
        image_size: int,
        ndf: int | None = None,
        in_channels: int = 3,
        spectral_norm: bool = True,
        bias: bool = True,
        pooling: Literal["sum", "mean"] = "sum",
        block_hidden: Literal["in", "out"] = "in",
    ) -> None:
        super().__init__()
        _check_image_size(image_size)
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        if block_hidden not in ("in", "out"):
            raise ValueError(f"block_hidden must be 'in' or 'out', got {block_hidden!r}")
        self.image_size = image_size
        self.num_classes = 0
        self.pooling = pooling
        blocks: list[nn.Module]
        if image_size == 32:
            self.ndf = 128 if ndf is None else ndf
            blocks = [
                DBlockOptimized(in_channels, self.ndf, spectral_norm),
                DBlock(self.ndf, self.ndf, downsample=True, spectral_norm=spectral_norm),
                DBlock(self.ndf, self.ndf, spectral_norm=spectral_norm),
                DBlock(self.ndf, self.ndf, spectral_norm=spectral_norm),
            ]
        else:
            self.ndf = 1024 if ndf is None else ndf
            widths = [self.ndf >> i for i in range(4, -1, -1)]
            blocks = [DBlockOptimized(in_channels, widths[0], spectral_norm)]
            blocks += [
                DBlock(c_in, c_out, c_out if block_hidden == "out" else None, downsample=True,
                       spectral_norm=spectral_norm)
                for c_in, c_out in pairwise(widths)
            ]
            if image_size == 128:
                blocks.append(DBlock(self.ndf, self.ndf, spectral_norm=spectral_norm))
        self.blocks = nn.Sequential(*blocks)
        self.feature_dim = self.ndf
        self.linear = _init(nn.Linear(self.ndf, 1, bias=bias), 1.0, spectral_norm)

    def features(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """ReLU features of the last block, summed or averaged over H and W, (B, ndf)."""
        check_labels(y, self.num_classes, x.shape[0])
        h = F.relu(self.blocks(x))
        return h.mean(dim=(2, 3)) if self.pooling == "mean" else h.sum(dim=(2, 3))

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return self.linear(self.features(x, y))


__all__ = [
    "IMAGE_SIZES",
    "DBlock",
    "DBlockOptimized",
    "GenBlock",
    "ImageLatentGenerator",
    "SnganDiscriminator",
    "SnganGenerator",
    "SphereEncoder",
]
