"""SmallConvEnergy and MlpEnergy follow the energy-net contract."""

from __future__ import annotations

import pytest
import torch

from ebmctl.nets import MlpEnergy, SmallConvEnergy


@pytest.mark.parametrize(("channels", "size"), [(3, 32), (1, 32), (3, 16), (1, 64)])
@pytest.mark.parametrize("multiscale", [False, True])
def test_small_conv_shapes(channels, size, multiscale):
    net = SmallConvEnergy(in_channels=channels, width=4, multiscale=multiscale)
    x = torch.rand(2, channels, size, size)
    assert net(x).shape == (2, 3 if multiscale else 1) == (2, net.num_scales)
    assert net.features(x).shape == (2, 16)


def test_small_conv_multiscale_columns_see_downsampled_inputs():
    torch.manual_seed(0)
    net = SmallConvEnergy(width=4, multiscale=True)
    x = torch.rand(2, 3, 32, 32)
    assert torch.allclose(net(x)[:, :1], net.stacks[0](x))
    x_far = x.clone()
    x_far[:, :, 0, 0] += 1.0  # a single pixel changes every scale's energy
    assert (net(x) != net(x_far)).all()


def test_mlp_shapes_and_input_gradient():
    torch.manual_seed(0)
    net = MlpEnergy(hidden=16, depth=3).requires_grad_(False)
    assert len(net.layers) == 3
    x = torch.randn(5, 2, requires_grad=True)
    assert net(x).shape == (5, 1) and net.num_scales == 1
    assert net.features(x).shape == (5, 16)
    (grad,) = torch.autograd.grad(net(x).sum(), x)
    assert grad.shape == (5, 2) and grad.abs().sum() > 0


@pytest.mark.parametrize(
    ("net", "x"),
    [
        (SmallConvEnergy(width=4, num_classes=3), torch.rand(2, 3, 16, 16)),
        (MlpEnergy(hidden=8, num_classes=3), torch.randn(2, 2)),
    ],
)
def test_conditioning(net, x):
    y0, y1 = torch.tensor([0, 0]), torch.tensor([1, 1])
    assert torch.allclose(net(x, y0), net(x, y1))  # per-class FiLM starts as the identity
    with torch.no_grad():
        for film in net.modules():
            if hasattr(film, "gain"):
                film.gain[1].mul_(3.0)
    assert not torch.allclose(net(x, y0), net(x, y1))
    with pytest.raises(ValueError, match="conditional"):
        net(x)


def test_unconditional_small_nets_reject_labels_and_have_input_gradients():
    conv = SmallConvEnergy(width=4).requires_grad_(False)
    x = torch.rand(2, 3, 16, 16, requires_grad=True)
    with pytest.raises(ValueError, match="unconditional"):
        conv(x, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="unconditional"):
        MlpEnergy()(torch.randn(2, 2), torch.tensor([0, 1]))
    (grad,) = torch.autograd.grad(conv(x).sum(), x)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
