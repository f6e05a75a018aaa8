"""IGEBM's ResNet32Large port: shapes, zero-initialised residual branches, conditioning, spectral norm."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ebmctl.nets import IgebmResNet, count_parameters
from ebmctl.nets.igebm_resnet import IgebmResBlock
from ebmctl.nets.layers import SelfAttention


def test_parameter_count_at_width_128():
    assert count_parameters(IgebmResNet()) == 18_591_105


@pytest.mark.parametrize(("channels", "size"), [(3, 32), (1, 32), (3, 16), (1, 64)])
def test_output_and_feature_shapes(channels, size):
    torch.manual_seed(0)
    net = IgebmResNet(in_channels=channels, width=8)
    x = torch.rand(2, channels, size, size)
    assert net(x).shape == (2, 1) and net.num_scales == 1
    assert net.features(x).shape == (2, 32)


def test_side_not_multiple_of_8_is_rejected():
    with pytest.raises(ValueError, match="multiples of 8"):
        IgebmResNet(width=8)(torch.rand(2, 3, 20, 20))


@pytest.mark.parametrize(("cin", "cout", "down"), [(8, 8, False), (8, 16, True)])
def test_blocks_start_as_their_shortcut(cin, cout, down):
    torch.manual_seed(0)
    block = IgebmResBlock(cin, cout, downsample=down).eval()  # eval: no power-iteration update between calls
    assert torch.equal(block.conv2.parametrizations.weight.original, torch.zeros(cout, cout, 3, 3))
    x = torch.randn(2, cin, 8, 8)
    expected = block.shortcut(x)
    if down:
        expected = F.avg_pool2d(expected, 2)
    assert torch.allclose(block(x), F.leaky_relu(expected, 0.2))


def test_every_second_conv_is_zero_and_others_spectrally_normalised():
    torch.manual_seed(0)
    net = IgebmResNet(width=8)
    blocks = [m for m in net.layers if isinstance(m, IgebmResBlock)]
    assert len(blocks) == 9
    assert all(b.conv2.weight.abs().max() == 0 for b in blocks)
    for _ in range(20):  # let the power iterations converge
        net.stem.weight  # noqa: B018
    assert torch.linalg.matrix_norm(net.stem.weight.detach().flatten(1), 2).item() == pytest.approx(
        1.0, rel=1e-2
    )
    assert sum(isinstance(b.shortcut, torch.nn.Conv2d) for b in blocks) == 2


def test_conditional_tables_are_indexed_by_label():
    torch.manual_seed(0)
    net = IgebmResNet(width=8, num_classes=3).eval()
    x = torch.rand(2, 3, 16, 16)
    y0, y2 = torch.tensor([0, 0]), torch.tensor([2, 2])
    assert torch.allclose(net(x, y0), net(x, y2))  # all classes share the initial tables
    with torch.no_grad():  # the residual branch is zero at init: open it, then change class 2's bias
        net.layers[0].conv2.parametrizations.weight.original.normal_()
        assert torch.allclose(net(x, y0), net(x, y2))
        net.layers[0].bias1[2].normal_()
    assert not torch.allclose(net(x, y0), net(x, y2))
    assert net.layers[0].bias1.shape == (3, 8) and net.layers[0].scale_offset.shape == (8,)
    with pytest.raises(ValueError, match="conditional"):
        net(x)
    with pytest.raises(ValueError, match="unconditional"):
        IgebmResNet(width=8)(x, y0)


def test_self_attention_replaces_res_4():
    net = IgebmResNet(width=8, self_attn=True)
    assert isinstance(net.layers[4], SelfAttention) and net.layers[4].query.out_channels == 8
    assert net(torch.rand(2, 3, 32, 32)).shape == (2, 1)


def test_dropout_only_in_train_mode_and_input_gradient():
    torch.manual_seed(0)
    net = IgebmResNet(width=8, dropout=0.5).requires_grad_(False)
    x = torch.rand(2, 3, 16, 16, requires_grad=True)
    net.eval()
    assert torch.equal(net(x), net(x))
    (grad,) = torch.autograd.grad(net(x).sum(), x)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    net.train()
    assert not torch.equal(net.layers[0].dropout(torch.ones(64)), torch.ones(64))
