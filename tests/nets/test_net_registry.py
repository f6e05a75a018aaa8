"""The NETS registry, build_net and count_parameters."""

from __future__ import annotations

import pytest
import torch

from ebmctl.nets import NETS, build_net, count_parameters


@pytest.mark.parametrize(
    ("name", "kwargs", "x"),
    [
        ("icd_resnet", {"width": 8}, torch.rand(2, 3, 16, 16)),
        ("igebm_resnet", {"width": 8}, torch.rand(2, 3, 16, 16)),
        ("small_conv", {"width": 4, "multiscale": True}, torch.rand(2, 3, 16, 16)),
        ("mlp", {"hidden": 8}, torch.randn(2, 2)),
        ("clel_resnet", {"channels": (8, 8), "blocks": (1, 1), "hidden": 16, "latent_dim": 8}, torch.rand(2, 3, 16, 16)),
        ("cebm_conv", {"image_size": 16, "channels": (4, 4, 4, 4), "hidden": 8, "latent_dim": 3},
         torch.rand(2, 3, 16, 16) * 2 - 1),
    ],
)
def test_every_registered_net_follows_the_contract(name, kwargs, x):
    net = build_net(name, **kwargs)
    assert isinstance(net, NETS[name])
    assert net(x).shape == (2, net.num_scales)
    assert net.features(x).dim() == 2 and net.features(x).shape[0] == 2


def test_registry_names_and_unknown_name():
    assert set(NETS) == {"icd_resnet", "igebm_resnet", "small_conv", "mlp", "clel_resnet", "cebm_conv", "conv_mlp"}
    with pytest.raises(ValueError, match="unknown energy net 'resnet'"):
        build_net("resnet")


def test_count_parameters_counts_elements_not_buffers():
    assert count_parameters(torch.nn.Linear(3, 2)) == 8
    assert count_parameters(torch.nn.BatchNorm2d(4)) == 8
