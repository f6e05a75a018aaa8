"""The conv + MLP energy of paper 001's IGEBM baseline (appendix C, Table 4)."""

from __future__ import annotations

import pytest
import torch

from ebmctl.nets import build_net, count_parameters
from ebmctl.nets.conv_mlp import ConvMlpEnergy


def test_mnist_layout_and_parameter_count():
    net = ConvMlpEnergy(in_channels=1, image_size=28, channels=(64, 64, 32, 32))
    convs = [m for m in net.body if isinstance(m, torch.nn.Conv2d)]
    linears = [m for m in net.body if isinstance(m, torch.nn.Linear)]
    assert [c.out_channels for c in convs] == [64, 64, 32, 32]
    assert [(lin.in_features, lin.out_features) for lin in linears] == [(32 * 3 * 3, 128), (128, 128)]
    expected = (1 * 64 * 9 + 64) + (64 * 64 * 16 + 64) + (64 * 32 * 16 + 32) + (32 * 32 * 16 + 32)
    expected += (288 * 128 + 128) + (128 * 128 + 128) + (128 + 1)
    assert count_parameters(net) == expected


def test_features_are_the_net_without_its_energy_layer():
    torch.manual_seed(0)
    net = build_net("conv_mlp", in_channels=3, image_size=16, channels=(4, 4, 4, 4), hidden=(8, 5))
    x = torch.rand(3, 3, 16, 16)
    h = net.features(x)
    assert h.shape == (3, 5)
    assert torch.allclose(net(x), net.head(h))
    assert net(x).shape == (3, 1)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"hidden": ()}, "hidden"), ({"activation": "tanh"}, "activation"), ({"num_classes": 10}, "unconditional"),
    ({"image_size": 4, "channels": (4, 4, 4, 4)}, "below 1x1"), ({"kernels": (3, 4)}, "same non-zero length"),
])
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ConvMlpEnergy(**kwargs)
