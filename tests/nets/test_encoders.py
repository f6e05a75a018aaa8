"""ResNet encoder variants: CLEL's (BatchNorm, BN head, input standardisation) and EBCLR's (no BatchNorm,
LeakyReLU, plain MLP head, raw inputs)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ebmctl.nets import count_parameters
from ebmctl.nets.encoders import ResNetEncoder


def ebclr_encoder(in_channels: int = 3) -> ResNetEncoder:
    return ResNetEncoder(in_channels=in_channels, batch_norm=False, activation="leaky_relu", head_bn=False,
                         hidden=512, normalize=False)


def test_ebclr_encoder_has_the_released_parameter_count() -> None:
    # ResNet-18 (3x3 stem, convs with biases, no BN) + Linear(512, 512) + Linear(512, 128), built from the
    # released classes: 11,492,352 on RGB and 11,491,200 on grayscale (the stem loses 2 * 64 * 9 weights).
    assert count_parameters(ebclr_encoder(3)) == 11_492_352
    assert count_parameters(ebclr_encoder(1)) == 11_492_352 - 2 * 64 * 9


def test_ebclr_encoder_has_no_batchnorm_and_leaks() -> None:
    enc = ebclr_encoder()
    assert not any(isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) for m in enc.modules())
    assert all(m.bias is not None for m in enc.modules() if isinstance(m, nn.Conv2d))
    assert isinstance(enc.normalize, nn.Identity)
    assert enc.act(torch.tensor([-1.0])).item() == pytest.approx(-0.2)
    x = torch.randn(2, 3, 32, 32)
    assert enc.backbone(x).shape == (2, 512) and enc(x).shape == (2, 128)
    # without BN, the output of one image does not depend on the rest of the batch, in train mode too
    enc.train()
    assert torch.allclose(enc(x)[:1], enc(x[:1]), atol=1e-5)


def test_clel_encoder_is_unchanged_by_the_new_options() -> None:
    enc = ResNetEncoder()
    assert count_parameters(enc) == 12_483_776
    assert isinstance(enc.head[1], nn.BatchNorm1d)
    assert enc.act(torch.tensor([-1.0])).item() == 0.0
