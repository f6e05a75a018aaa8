"""CLEL's energy net and contrastive ResNet encoder: released parameter counts, shapes, latent geometry."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torch.nn.utils import parametrize

from ebmctl.nets import (
    CLEL_SIZES,
    ENCODERS,
    NETS,
    ClelEnergyNet,
    ResNetEncoder,
    build_net,
    clel_energy_net,
    count_parameters,
)
from ebmctl.nets.clel import NORM_EPS
from ebmctl.nets.encoders import CIFAR10_MEAN, CIFAR10_STD, BasicBlock

TINY = {"channels": (8, 8, 16, 16), "blocks": (1, 1, 1, 1), "hidden": 32, "latent_dim": 16}


def tiny(**overrides: object) -> ClelEnergyNet:
    torch.manual_seed(0)
    return ClelEnergyNet(**{**TINY, **overrides})


def test_parameter_counts_match_the_released_models():
    assert count_parameters(clel_energy_net("small")) == 1_725_056
    assert count_parameters(clel_energy_net("base")) == 6_955_648
    assert count_parameters(ClelEnergyNet()) == 6_955_648
    assert count_parameters(clel_energy_net("large")) == 30_706_816
    assert count_parameters(clel_energy_net("small", spectral_norm=False)) == 1_725_056


def test_sizes_follow_the_paper_layout():
    assert set(CLEL_SIZES) == {"small", "base", "large"}
    large = clel_energy_net("large", channels=(8, 8, 8, 8), hidden=32)
    assert len(large.trunks) == 3 and large.head[0].in_features == 24
    assert large.head[0].out_features == 32 and large.projection[0].in_features == 128
    small = clel_energy_net("small", hidden=32)
    assert len(small.trunks) == 1 and small.feature_dim == 128
    assert [len(stage) for stage in small.trunks[0].stages] == [1, 2, 2, 2]  # avg-pool, then the blocks
    assert isinstance(small.trunks[0].stages[1][0], nn.AvgPool2d)
    with pytest.raises(ValueError, match="unknown CLEL size"):
        clel_energy_net("huge")


@pytest.mark.parametrize(
    ("channels", "size", "scales"), [(1, 32, 1), (3, 32, 1), (3, 64, 1), (1, 64, 3), (3, 32, 3)]
)
def test_output_shapes(channels, size, scales):
    net = tiny(in_channels=channels, scales=scales)
    x = torch.rand(2, channels, size, size)
    energy = net(x)
    assert energy.shape == (2, 1) and net.num_scales == 1 and torch.isfinite(energy).all()
    f, z = net.f_and_latent(x)
    assert f.shape == (2, 16) and z.shape == (2, 16)
    assert net.features(x).shape == (2, 16 * scales)


def test_energy_is_half_squared_norm_of_f():
    net = tiny().eval()  # no spectral-norm power iteration between the calls
    x = torch.rand(3, 3, 32, 32)
    f = net.f(x)
    assert torch.allclose(net(x), 0.5 * f.pow(2).sum(dim=1, keepdim=True))
    assert torch.allclose(f, net.head(net.features(x)))


def test_latent_is_unit_normalised_projection_of_the_direction_of_f():
    net = tiny()
    f, z = net.f_and_latent(torch.rand(3, 3, 32, 32))
    assert torch.allclose(z.norm(dim=1), torch.ones(3), atol=1e-5)
    direction = f / f.norm(dim=1, keepdim=True)
    assert torch.allclose(z, F.normalize(net.projection(direction), dim=1, eps=NORM_EPS), atol=1e-6)


def test_projection_is_bias_free_and_positively_homogeneous():
    net = tiny()
    assert all(m.bias is None for m in net.projection if isinstance(m, nn.Linear))
    assert all(m.bias is not None for m in net.head if isinstance(m, nn.Linear))
    f = torch.randn(4, 16)
    base = F.normalize(net.projection(f), dim=1)
    for c in (0.01, 3.0, 100.0):
        assert torch.allclose(F.normalize(net.projection(c * f), dim=1), base, atol=1e-5)
        assert torch.allclose(net.latent(c * f), net.latent(f), atol=1e-5)


def test_large_features_are_full_half_quarter_trunks_on_the_normalised_image():
    net = tiny(scales=3).eval()
    x = torch.rand(2, 3, 32, 32)
    xn = (x - torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1)) / torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)
    expected = torch.cat(
        [net.trunks[0](xn), net.trunks[1](F.avg_pool2d(xn, 2)), net.trunks[2](F.avg_pool2d(xn, 4))], dim=1
    )
    assert torch.allclose(net.features(x), expected, atol=1e-6)


def test_spectral_norm_on_every_conv_when_on_and_nowhere_when_off():
    on = tiny(channels=(8, 16, 16, 32))
    convs = [m for m in on.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 1 + 2 * 4 + 2  # stem, two per block, two widening shortcuts
    assert all(parametrize.is_parametrized(m, "weight") for m in convs)
    assert not any(parametrize.is_parametrized(m) for m in on.modules() if isinstance(m, nn.Linear))
    off = tiny(spectral_norm=False)
    assert not any(parametrize.is_parametrized(m) for m in off.modules())


def test_initialisation_follows_the_released_code():
    net = tiny(spectral_norm=False, hidden=512)
    for m in net.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)) and m.bias is not None:
            assert torch.count_nonzero(m.bias) == 0
    assert abs(net.head[0].weight.std().item() - 0.01) < 1e-3
    stem = net.trunks[0].stem.weight
    assert abs(stem.std().item() - 1 / 27**0.5) < 0.06
    assert len(list(net.normalize.parameters())) == 0


def test_default_stats_for_one_channel_and_explicit_stats():
    gray = tiny(in_channels=1)
    assert gray.normalize.mean.flatten().tolist() == pytest.approx([sum(CIFAR10_MEAN) / 3])
    assert gray.normalize.std.flatten().tolist() == pytest.approx([sum(CIFAR10_STD) / 3])
    custom = tiny(in_channels=2, mean=(0.5, 0.5), std=(0.25, 0.25))
    assert custom(torch.rand(2, 2, 16, 16)).shape == (2, 1)
    with pytest.raises(ValueError, match="explicitly"):
        tiny(in_channels=2)
    with pytest.raises(ValueError, match="one per input channel"):
        tiny(mean=(0.5,))


def test_invalid_arguments_and_inputs_are_rejected():
    with pytest.raises(ValueError, match="scales"):
        tiny(scales=2)
    with pytest.raises(ValueError, match="same non-zero length"):
        tiny(blocks=(1, 1))
    with pytest.raises(ValueError, match="positive"):
        tiny(blocks=(1, 0, 1, 1))
    with pytest.raises(ValueError, match="num_classes"):
        tiny(num_classes=10)
    with pytest.raises(ValueError, match="32x32"):
        tiny(scales=3)(torch.rand(2, 3, 16, 16))


def test_labels_are_rejected():
    net = tiny()
    x = torch.rand(2, 3, 16, 16)
    with pytest.raises(ValueError, match="unconditional"):
        net(x, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="unconditional"):
        net.features(x, torch.tensor([0, 1]))


def test_registered_and_differentiable_in_the_input():
    net = build_net("clel_resnet", **TINY)
    assert isinstance(net, NETS["clel_resnet"])
    net.requires_grad_(False)
    x = torch.rand(2, 3, 16, 16, requires_grad=True)
    (grad,) = torch.autograd.grad(net(x).sum(), x)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def _torchvision_encoder(image_size: int) -> nn.Module:
    model = torchvision.models.resnet18(zero_init_residual=True)
    if image_size <= 32:
        model.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    model.fc = nn.Sequential(
        nn.Linear(512, 2048, bias=False), nn.BatchNorm1d(2048), nn.ReLU(), nn.Linear(2048, 128)
    )
    return model


def test_encoder_matches_torchvision_resnet18():
    torch.manual_seed(0)
    reference = _torchvision_encoder(32)
    encoder = ResNetEncoder()
    assert count_parameters(encoder) == count_parameters(reference) == 12_483_776
    for m in reference.modules():  # non-trivial BN so every branch matters
        if isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight)
            nn.init.normal_(m.bias)
    state = {k.replace("fc.", "head."): v for k, v in reference.state_dict().items()}
    missing, unexpected = encoder.load_state_dict(state, strict=False)
    assert set(missing) == {"normalize.mean", "normalize.std"} and not unexpected
    encoder.eval()
    reference.eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(encoder(x), reference(encoder.normalize(x)), atol=1e-5)
    assert count_parameters(ResNetEncoder(image_size=64)) == count_parameters(_torchvision_encoder(64))


@pytest.mark.parametrize(("channels", "size"), [(3, 32), (1, 32), (3, 64), (1, 16)])
def test_encoder_shapes(channels, size):
    torch.manual_seed(0)
    encoder = ResNetEncoder(in_channels=channels, image_size=size, width=8, out_dim=16, hidden=32)
    x = torch.rand(3, channels, size, size)
    assert encoder.backbone(x).shape == (3, 64) and encoder.feature_dim == 64
    assert encoder(x).shape == (3, 16)
    assert torch.allclose(encoder(x), encoder.project(encoder.backbone(x)))
    assert encoder.conv1.kernel_size == ((3, 3) if size <= 32 else (7, 7))


def test_encoder_head_and_zero_init_residual():
    encoder = ENCODERS["resnet18"](width=8, hidden=32, out_dim=16)
    assert isinstance(encoder, ResNetEncoder)
    head = encoder.head
    assert isinstance(head[0], nn.Linear) and head[0].bias is None
    assert isinstance(head[1], nn.BatchNorm1d) and head[1].num_features == 32
    assert isinstance(head[2], nn.ReLU) and head[3].bias is not None
    blocks = [m for m in encoder.modules() if isinstance(m, BasicBlock)]
    assert len(blocks) == 8 and all(torch.count_nonzero(b.bn2.weight) == 0 for b in blocks)
    with pytest.raises(ValueError, match="positive"):
        ResNetEncoder(width=0)


# ---------------------------------------------------------------- Table 5: the projection g


def test_identity_projection_makes_the_latent_the_direction_of_f_by_hand():
    net = tiny(projection="identity")
    assert isinstance(net.projection, nn.Identity) and not list(net.projection.parameters())
    f = torch.tensor([[3.0, 4.0] + [0.0] * 14])  # |f| = 5
    expected = torch.tensor([[0.6, 0.8] + [0.0] * 14])
    assert torch.allclose(net.latent(f), expected)
    assert torch.allclose(net.latent(7.0 * f), expected)
    x = torch.rand(2, 3, 32, 32)
    f_x, z = net.eval().f_and_latent(x)
    assert z.shape == f_x.shape == (2, 16)  # the latent has f's dimension, net.latent_dim
    assert torch.allclose(z, f_x / f_x.norm(dim=1, keepdim=True), atol=1e-6)


def test_linear_projection_is_one_bias_free_layer_by_hand():
    net = tiny(projection="linear")
    assert isinstance(net.projection, nn.Linear) and net.projection.bias is None
    assert net.projection.weight.shape == (16, 16)
    with torch.no_grad():
        net.projection.weight.zero_()
        net.projection.weight[0, 0] = 2.0  # g(u) = (2 u_0, u_0 + u_1, 0, ...)
        net.projection.weight[1, 0] = 1.0
        net.projection.weight[1, 1] = 1.0
    f = torch.tensor([[3.0, 4.0] + [0.0] * 14])  # f/|f| = (0.6, 0.8); g = (1.2, 1.4); |g| = sqrt(3.4)
    expected = torch.tensor([[1.2, 1.4] + [0.0] * 14]) / 3.4**0.5
    assert torch.allclose(net.latent(f), expected, atol=1e-6)


def test_projection_choices_change_only_g():
    mlp, linear, none = (count_parameters(tiny(projection=p)) for p in ("mlp", "linear", "identity"))
    assert mlp - none == 16 * 32 + 32 * 16  # the MLP g: 16 -> 32 -> 16 without biases
    assert linear - none == 16 * 16
    assert count_parameters(clel_energy_net("small", projection="identity")) == 1_725_056 - 2 * 128 * 2048
    with pytest.raises(ValueError, match="projection"):
        tiny(projection="deep")
