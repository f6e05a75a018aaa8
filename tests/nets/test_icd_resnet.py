"""ICD's multi-scale ResNet energy: released parameter count, shapes, scale order, conditioning."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ebmctl.nets import IcdResNet, count_parameters
from ebmctl.nets.layers import SelfAttention, WSConv2d


def test_parameter_count_matches_released_model():
    assert count_parameters(IcdResNet()) == 6_643_044
    assert count_parameters(IcdResNet(label_maps=0)) == 6_564_196
    assert count_parameters(IcdResNet(multiscale=False)) == 4_904_290
    assert count_parameters(IcdResNet(num_classes=10)) == 6_643_044


def test_norms_attention_and_label_maps_follow_the_released_layout():
    net = IcdResNet()
    blocks = net.branch_full.blocks
    assert isinstance(blocks[5].norm1, torch.nn.InstanceNorm2d)  # 128 channels
    assert isinstance(blocks[6].norm1, torch.nn.GroupNorm) and blocks[6].norm1.num_groups == 32  # 256
    assert isinstance(net.branch_full.attn, SelfAttention)
    assert net.branch_full.attn_index == 3 and net.branch_full.attn.value.in_channels == 128
    assert net.branch_full.head.in_features == 512
    assert net.branch_half.head.in_features == 256 and net.branch_quarter.head.in_features == 128
    assert blocks[0].film1.in_features == 10
    assert IcdResNet(width=8, num_classes=3).branch_full.blocks[0].film1.in_features == 3
    assert IcdResNet(width=8, label_maps=0).branch_full.blocks[0].film1 is None


@pytest.mark.parametrize(("channels", "size"), [(3, 32), (1, 32), (3, 16), (1, 64)])
def test_output_and_feature_shapes(channels, size):
    torch.manual_seed(0)
    net = IcdResNet(in_channels=channels, width=8)
    x = torch.rand(2, channels, size, size)
    out = net(x)
    assert out.shape == (2, 3) and net.num_scales == 3
    assert torch.isfinite(out).all()
    assert net.features(x).shape == (2, 64)
    single = IcdResNet(in_channels=channels, width=8, multiscale=False, self_attn=False)
    assert single(x).shape == (2, 1) and single.num_scales == 1


def test_scales_are_ordered_full_half_quarter():
    torch.manual_seed(0)
    net = IcdResNet(width=8)
    x = torch.rand(3, 3, 32, 32)
    half = F.avg_pool2d(x, 3, stride=2, padding=1)
    quarter = F.avg_pool2d(half, 3, stride=2, padding=1)
    expected = torch.cat([net.branch_full(x), net.branch_half(half), net.branch_quarter(quarter)], dim=1)
    assert torch.allclose(net(x), expected)


def test_too_small_input_is_rejected():
    with pytest.raises(ValueError, match="16x16"):
        IcdResNet(width=8)(torch.rand(2, 3, 8, 8))


def test_conditional_net_responds_to_labels_and_unconditional_rejects_them():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 16, 16)
    cond = IcdResNet(width=8, num_classes=4)
    e0 = cond(x, torch.tensor([0, 0]))
    e1 = cond(x, torch.tensor([3, 3]))
    assert not torch.allclose(e0, e1)
    with pytest.raises(ValueError, match="conditional"):
        cond(x)
    with pytest.raises(ValueError, match="unconditional"):
        IcdResNet(width=8)(x, torch.tensor([0, 1]))


def test_input_gradient_exists_and_is_finite():
    torch.manual_seed(0)
    net = IcdResNet(width=8).requires_grad_(False)
    x = torch.rand(2, 3, 16, 16, requires_grad=True)
    (grad,) = torch.autograd.grad(net(x).sum(), x)
    assert grad.shape == x.shape and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_spectral_norm_variant_replaces_weight_standardised_convs():
    torch.manual_seed(0)
    net = IcdResNet(width=8, spectral_norm=True)
    assert not any(isinstance(m, WSConv2d) for m in net.modules())
    assert hasattr(net.branch_full.blocks[0].conv1, "parametrizations")
    x = torch.rand(2, 3, 16, 16, requires_grad=True)
    (grad,) = torch.autograd.grad(net(x).sum(), x, create_graph=True)
    grad.pow(2).sum().backward()  # second-order path used by ICD's KL term
    assert net.branch_full.blocks[0].conv1.parametrizations.weight.original.grad is not None
