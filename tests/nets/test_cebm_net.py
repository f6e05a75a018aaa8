"""CEBM: closed-form energies and posteriors against numerical integrals, and the CebmNet contract."""

from __future__ import annotations

import math

import pytest
import torch

from ebmctl.nets import count_parameters
from ebmctl.nets.cebm import (
    CebmNet,
    gaussian_energy,
    log_normalizer,
    mixture_energy,
    mixture_log_joint,
    moment_params,
    natural_params,
    posterior,
)

Z = torch.linspace(-12.0, 12.0, 48001, dtype=torch.float64)


def _normal_pdf(z: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    return torch.exp(-0.5 * ((z - mean) / std) ** 2) / (std * math.sqrt(2 * math.pi))


def _tilted(t1: float, t2: float, mean: float, std: float) -> torch.Tensor:
    """exp(t1 z + t2 z²) N(z; mean, std²) on the grid Z."""
    return torch.exp(t1 * Z + t2 * Z**2) * _normal_pdf(Z, mean, std)


def _random_statistics(batch: int, dim: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    t1 = 2 * torch.rand(batch, dim, generator=g, dtype=torch.float64) - 1
    t2 = -torch.rand(batch, dim, generator=g, dtype=torch.float64)
    return t1, t2


BIASES = [((0.0, 0.0), (1.0, 1.0)), ((0.7, -1.2), (1.3, 0.6))]


def test_log_normalizer_hand_values_and_parameter_round_trip():
    eta1 = torch.tensor([1.0, 2.0], dtype=torch.float64)
    eta2 = torch.tensor([-0.5, -1.0], dtype=torch.float64)
    expected = torch.tensor([0.5, 1.0 - 0.5 * math.log(2.0)], dtype=torch.float64)
    torch.testing.assert_close(log_normalizer(eta1, eta2), expected)

    mean = torch.tensor([0.0, 1.5, -2.0], dtype=torch.float64)
    std = torch.tensor([1.0, 0.3, 2.5], dtype=torch.float64)
    lam1, lam2 = natural_params(mean, std)
    torch.testing.assert_close(lam1, mean / std**2)
    torch.testing.assert_close(lam2, -1 / (2 * std**2))
    back_mean, back_std = moment_params(lam1, lam2)
    torch.testing.assert_close(back_mean, mean)
    torch.testing.assert_close(back_std, std)


@pytest.mark.parametrize(("bias_mean", "bias_std"), BIASES)
def test_gaussian_energy_matches_numerical_integral(bias_mean, bias_std):
    t1, t2 = _random_statistics(batch=4, dim=2, seed=0)
    lam1, lam2 = natural_params(*torch.tensor([bias_mean, bias_std], dtype=torch.float64))
    energy = gaussian_energy(t1, t2, lam1, lam2)
    assert energy.shape == (4,)
    for b in range(4):
        integral = math.prod(
            float(torch.trapezoid(_tilted(float(t1[b, d]), float(t2[b, d]), bias_mean[d], bias_std[d]), Z))
            for d in range(2)
        )
        assert math.exp(-float(energy[b])) == pytest.approx(integral, rel=1e-6)


@pytest.mark.parametrize(("bias_mean", "bias_std"), BIASES)
def test_gaussian_posterior_matches_completed_square_and_numerical_moments(bias_mean, bias_std):
    t1, t2 = _random_statistics(batch=3, dim=2, seed=1)
    mu0 = torch.tensor(bias_mean, dtype=torch.float64)
    s0 = torch.tensor(bias_std, dtype=torch.float64)
    post = posterior(t1, t2, *natural_params(mu0, s0))
    assert post.responsibilities is None and post.mean.shape == post.std.shape == (3, 2)

    # N(z; mu0, s0²) exp(t1 z + t2 z²) ∝ exp(-(1/s0² - 2 t2) z²/2 + (mu0/s0² + t1) z).
    precision = 1 / s0**2 - 2 * t2
    torch.testing.assert_close(post.mean, (mu0 / s0**2 + t1) / precision)
    torch.testing.assert_close(post.std, precision.rsqrt())

    for b in range(3):
        for d in range(2):
            density = _tilted(float(t1[b, d]), float(t2[b, d]), bias_mean[d], bias_std[d])
            mass = torch.trapezoid(density, Z)
            first = torch.trapezoid(Z * density, Z) / mass
            second = torch.trapezoid(Z**2 * density, Z) / mass
            assert float(post.mean[b, d]) == pytest.approx(float(first), rel=1e-6, abs=1e-9)
            assert float(post.std[b, d]) == pytest.approx(math.sqrt(float(second - first**2)), rel=1e-6)


def _mixture_bias(components: int, dim: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    mean = torch.randn(components, dim, generator=g, dtype=torch.float64)
    std = torch.exp(0.3 * torch.randn(components, dim, generator=g, dtype=torch.float64))
    return natural_params(mean, std)


def test_mixture_of_identical_components_is_the_single_gaussian():
    t1, t2 = _random_statistics(batch=5, dim=3, seed=2)
    lam1, lam2 = _mixture_bias(components=1, dim=3, seed=3)
    k_lam1, k_lam2 = lam1.expand(4, 3), lam2.expand(4, 3)
    single_energy = gaussian_energy(t1, t2, lam1[0], lam2[0])
    torch.testing.assert_close(mixture_energy(t1, t2, k_lam1, k_lam2), single_energy)
    mixed, single = posterior(t1, t2, k_lam1, k_lam2), posterior(t1, t2, lam1[0], lam2[0])
    torch.testing.assert_close(mixed.mean, single.mean)
    torch.testing.assert_close(mixed.std, single.std)
    assert mixed.responsibilities is not None
    torch.testing.assert_close(mixed.responsibilities, torch.full((5, 4), 0.25, dtype=torch.float64))


def test_mixture_energy_and_posterior_from_component_energies():
    t1, t2 = _random_statistics(batch=6, dim=3, seed=4)
    lam1, lam2 = _mixture_bias(components=4, dim=3, seed=5)
    component_energies = torch.stack([gaussian_energy(t1, t2, lam1[k], lam2[k]) for k in range(4)], dim=1)
    torch.testing.assert_close(mixture_log_joint(t1, t2, lam1, lam2), -component_energies)
    expected = -torch.log(torch.exp(-component_energies).mean(dim=1))
    torch.testing.assert_close(mixture_energy(t1, t2, lam1, lam2), expected)

    post = posterior(t1, t2, lam1, lam2)
    assert post.responsibilities is not None and post.responsibilities.shape == (6, 4)
    torch.testing.assert_close(post.responsibilities.sum(dim=1), torch.ones(6, dtype=torch.float64))
    torch.testing.assert_close(post.responsibilities, torch.softmax(-component_energies, dim=1))
    best = component_energies.argmin(dim=1)
    assert best.unique().numel() > 1  # the batch exercises more than one chosen component
    assert torch.equal(post.responsibilities.argmax(dim=1), best)
    for b in range(6):
        single = posterior(t1[b : b + 1], t2[b : b + 1], lam1[best[b]], lam2[best[b]])
        torch.testing.assert_close(post.mean[b], single.mean[0])
        torch.testing.assert_close(post.std[b], single.std[0])


def _small_net(**kwargs: object) -> CebmNet:
    defaults: dict[str, object] = {"channels": (8, 8, 8, 8), "hidden": 16, "latent_dim": 6}
    return CebmNet(**{**defaults, **kwargs})


def test_default_and_mnist_shapes():
    torch.manual_seed(0)
    net = CebmNet()
    x = 2 * torch.rand(2, 3, 32, 32) - 1
    assert net(x).shape == (2, 1) == (2, net.num_scales)
    assert net.features(x).shape == (2, 128)
    t1, t2 = net.statistics(x)
    assert t1.shape == t2.shape == (2, 128) and bool((t2 <= 0).all())

    mnist = CebmNet(in_channels=1, image_size=28, channels=(64, 64, 32, 32))
    x = 2 * torch.rand(2, 1, 28, 28) - 1
    assert mnist(x).shape == (2, 1) and mnist.features(x).shape == (2, 128)
    # 28 -> 28 (3x3 s1 p1) -> 14 -> 7 -> 3 (4x4 s2 p1): the heads sit on 32 * 3 * 3 features without FC.
    assert CebmNet(in_channels=1, image_size=28, channels=(64, 64, 32, 32), hidden=0).head1.in_features == 288


@pytest.mark.parametrize(
    ("activation", "kind", "hidden"),
    [("silu", torch.nn.SiLU, 16), ("swish", torch.nn.SiLU, 0), ("leaky_relu", torch.nn.LeakyReLU, 16)],
)
def test_encoder_layout(activation, kind, hidden):
    net = _small_net(activation=activation, hidden=hidden)
    layers = list(net.encoder)
    convs = [i for i, m in enumerate(layers) if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 4 and all(isinstance(layers[i + 1], kind) for i in convs)  # after every conv
    assert all(m.bias is not None for m in layers if isinstance(m, torch.nn.Conv2d))
    fc = [m for m in layers if isinstance(m, torch.nn.Linear)]
    if hidden:
        assert [m.out_features for m in fc] == [16] and isinstance(layers[-1], kind)
    else:
        assert not fc and isinstance(layers[-1], torch.nn.Flatten)
    if kind is torch.nn.LeakyReLU:
        assert all(m.negative_slope == 0.2 for m in layers if isinstance(m, kind))


def test_default_parameter_count():
    conv1 = 3 * 64 * 3 * 3 + 64  # 1,792
    conv2 = 64 * 128 * 4 * 4 + 128  # 131,200
    conv3 = 128 * 256 * 4 * 4 + 256  # 524,544
    conv4 = 256 * 512 * 4 * 4 + 512  # 2,097,664
    fc = 512 * 4 * 4 * 128 + 128  # 32 -> 32 -> 16 -> 8 -> 4 spatial: 1,048,704
    heads = 2 * (128 * 128 + 128)  # 33,024
    expected = conv1 + conv2 + conv3 + conv4 + fc + heads
    assert expected == 3_836_928
    assert count_parameters(CebmNet()) == expected
    assert count_parameters(CebmNet(learn_bias=True)) == expected + 2 * 128
    mixture = CebmNet(bias="mixture", components=50, learn_bias=True)
    assert count_parameters(mixture) == expected + 2 * 50 * 128


def test_net_energy_and_features_are_the_closed_forms():
    torch.manual_seed(0)
    x = 2 * torch.rand(3, 3, 16, 16) - 1
    net = _small_net(image_size=16)
    t1, t2 = net.statistics(x)
    lam1, lam2 = net.natural_bias()
    torch.testing.assert_close(lam1, torch.zeros(6))
    torch.testing.assert_close(lam2, torch.full((6,), -0.5))
    torch.testing.assert_close(net(x)[:, 0], gaussian_energy(t1, t2, lam1, lam2))
    torch.testing.assert_close(net.features(x), moment_params(t1 + lam1, t2 + lam2)[0])

    mix = _small_net(image_size=16, bias="mixture", components=5)
    t1, t2 = mix.statistics(x)
    lam1, lam2 = mix.natural_bias()
    assert lam1.shape == (5, 6)
    torch.testing.assert_close(mix(x)[:, 0], mixture_energy(t1, t2, lam1, lam2))
    post = mix.posterior(x)
    assert post.responsibilities is not None and post.responsibilities.shape == (3, 5)
    torch.testing.assert_close(mix.features(x), post.mean)


def test_mixture_means_survive_a_checkpoint():
    torch.manual_seed(0)
    net = _small_net(bias="mixture", components=5)
    torch.manual_seed(1)
    fresh = _small_net(bias="mixture", components=5)
    state = net.state_dict()
    assert "bias_mean" in state and "bias_log_std" in state and state["bias_mean"].shape == (5, 6)
    assert "bias_mean" not in dict(net.named_parameters())
    assert not torch.equal(fresh.bias_mean, net.bias_mean)
    fresh.load_state_dict(state)
    x = 2 * torch.rand(4, 3, 32, 32) - 1
    assert torch.equal(fresh(x), net(x))

    torch.manual_seed(0)
    again = _small_net(bias="mixture", components=5)
    assert torch.equal(again.bias_mean, net.bias_mean)  # seeded construction is reproducible


@pytest.mark.parametrize("bias", ["gaussian", "mixture"])
def test_learned_bias_is_a_parameter_with_gradients(bias):
    torch.manual_seed(0)
    net = _small_net(bias=bias, components=3, learn_bias=True)
    params = dict(net.named_parameters())
    assert "bias_mean" in params and "bias_log_std" in params
    assert "bias_mean" in net.state_dict()
    net(2 * torch.rand(4, 3, 32, 32) - 1).sum().backward()
    for name in ("bias_mean", "bias_log_std"):
        grad = params[name].grad
        assert grad is not None and bool(torch.isfinite(grad).all()) and grad.abs().sum() > 0


@pytest.mark.parametrize(
    "kwargs", [{}, {"bias": "mixture", "components": 7}, {"activation": "leaky_relu", "hidden": 0}]
)
def test_energy_is_finite_and_differentiable_in_the_input(kwargs):
    torch.manual_seed(0)
    net = _small_net(**kwargs).requires_grad_(False)
    x = (2 * torch.rand(5, 3, 32, 32) - 1).requires_grad_(True)
    energy = net(x)
    assert energy.shape == (5, 1) and bool(torch.isfinite(energy).all())
    (grad,) = torch.autograd.grad(energy.sum(), x)
    assert grad.shape == x.shape and bool(torch.isfinite(grad).all()) and grad.abs().sum() > 0


def test_rejects_labels_and_wrong_inputs():
    net = _small_net()
    x = torch.rand(2, 3, 32, 32)
    with pytest.raises(ValueError, match="unconditional"):
        net(x, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="unconditional"):
        net.features(x, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="shape"):
        net(torch.rand(2, 3, 28, 28))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"kernels": (3, 4, 4)}, "same non-zero length"),
        ({"channels": ()}, "same non-zero length"),
        ({"channels": (8, 0, 8, 8)}, "positive"),
        ({"paddings": (1, -1, 1, 1)}, "non-negative"),
        ({"latent_dim": 0}, "positive"),
        ({"hidden": -1}, "hidden"),
        ({"activation": "relu"}, "unknown activation"),
        ({"bias": "laplace"}, "unknown bias"),
        ({"bias": "mixture", "components": 0}, "components"),
        ({"image_size": 4}, "below 1x1"),
    ],
)
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _small_net(**kwargs)
