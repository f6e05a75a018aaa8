"""Conjugate energy-based model (Wu et al. 2021): conv sufficient statistics conjugate to a Gaussian.

The joint is ``p(x, z) ∝ p(z) exp(t(x)·[z, z²])`` with a per-dimension Gaussian (or uniform Gaussian mixture)
bias ``p(z)`` in natural parameters ``lam``; integrating z out gives the marginal energy
``E(x) = sum_d [A(lam_d) - A(lam_d + t_d(x))]`` in closed form, and the posterior ``p(z | x)`` is the Gaussian
with natural parameters ``lam + t(x)``. ``A`` is the Gaussian log-normaliser without its constant
``log sqrt(2π)``, which cancels in every difference.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor, nn

from ebmctl.nets.layers import check_labels

ACTIVATIONS = ("silu", "swish", "leaky_relu")
BIASES = ("gaussian", "mixture")


def log_normalizer(eta1: Tensor, eta2: Tensor) -> Tensor:
    """Gaussian log-normaliser ``A = -eta1² / (4 eta2) - log(-2 eta2) / 2``, elementwise (eta2 < 0)."""
    return -eta1.pow(2) / (4 * eta2) - 0.5 * torch.log(-2 * eta2)


def natural_params(mean: Tensor, std: Tensor) -> tuple[Tensor, Tensor]:
    """``(mean / std², -1 / (2 std²))``."""
    var = std.pow(2)
    return mean / var, -0.5 / var


def moment_params(eta1: Tensor, eta2: Tensor) -> tuple[Tensor, Tensor]:
    """``(mean, std) = (-eta1 / (2 eta2), sqrt(-1 / (2 eta2)))``."""
    return -eta1 / (2 * eta2), torch.sqrt(-0.5 / eta2)


def gaussian_energy(t1: Tensor, t2: Tensor, lam1: Tensor, lam2: Tensor) -> Tensor:
    """Marginal energy ``sum_d [A(lam) - A(lam + t)]`` of statistics (B, D) for a Gaussian bias (D,); (B,)."""
    return (log_normalizer(lam1, lam2) - log_normalizer(lam1 + t1, lam2 + t2)).sum(dim=-1)


def mixture_log_joint(t1: Tensor, t2: Tensor, lam1: Tensor, lam2: Tensor) -> Tensor:
    """Scores ``s_k = sum_d [A(lam_k + t) - A(lam_k)]`` of statistics (B, D) for components (K, D); (B, K)."""
    tilted = log_normalizer(lam1 + t1.unsqueeze(1), lam2 + t2.unsqueeze(1)).sum(dim=-1)
    return tilted - log_normalizer(lam1, lam2).sum(dim=-1)


def mixture_energy(t1: Tensor, t2: Tensor, lam1: Tensor, lam2: Tensor) -> Tensor:
    """Marginal energy ``log K - logsumexp_k s_k`` under a uniform mixture of K Gaussians (K, D); (B,)."""
    scores = mixture_log_joint(t1, t2, lam1, lam2)
    return math.log(scores.shape[-1]) - torch.logsumexp(scores, dim=-1)


class CebmPosterior(NamedTuple):
    """Posterior ``p(z | x)``: mean and std (B, D), of the most responsible component for a mixture bias,
    whose responsibilities (B, K) are given (None for a Gaussian bias)."""

    mean: Tensor
    std: Tensor
    responsibilities: Tensor | None


def posterior(t1: Tensor, t2: Tensor, lam1: Tensor, lam2: Tensor) -> CebmPosterior:
    """Posterior of z given statistics (B, D) under a Gaussian (D,) or uniform-mixture (K, D) bias."""
    if lam1.dim() == 1:
        mean, std = moment_params(lam1 + t1, lam2 + t2)
        return CebmPosterior(mean, std, None)
    scores = mixture_log_joint(t1, t2, lam1, lam2)
    best = scores.argmax(dim=-1)
    mean, std = moment_params(lam1[best] + t1, lam2[best] + t2)
    return CebmPosterior(mean, std, torch.softmax(scores, dim=-1))


def _activation(name: str) -> nn.Module:
    return nn.LeakyReLU(0.2) if name == "leaky_relu" else nn.SiLU()


def conv_stack(in_channels: int, image_size: int, channels: Sequence[int], kernels: Sequence[int],
               strides: Sequence[int], paddings: Sequence[int], activation: str) -> tuple[list[nn.Module], int]:
    """CEBM's encoder convs (each followed by the activation) and a flatten; returns the layers and the number
    of flat features they output for a square ``image_size`` input."""
    channels, kernels, strides, paddings = tuple(channels), tuple(kernels), tuple(strides), tuple(paddings)
    if not channels or not len(channels) == len(kernels) == len(strides) == len(paddings):
        raise ValueError(
            f"channels, kernels, strides and paddings need the same non-zero length, got {channels}, "
            f"{kernels}, {strides} and {paddings}"
        )
    if min(channels + kernels + strides) < 1 or min(paddings) < 0:
        raise ValueError("channels, kernels and strides must be positive and paddings non-negative")
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; choose one of {', '.join(ACTIVATIONS)}")
    layers: list[nn.Module] = []
    size, width = image_size, in_channels
    for out_channels, k, s, p in zip(channels, kernels, strides, paddings, strict=True):
        size = (size + 2 * p - k) // s + 1
        if size < 1:
            raise ValueError(f"the conv stack shrinks a {image_size}x{image_size} input below 1x1")
        layers += [nn.Conv2d(width, out_channels, k, stride=s, padding=p), _activation(activation)]
        width = out_channels
    layers.append(nn.Flatten())
    return layers, width * size * size


class CebmNet(nn.Module):
    """CEBM energy net: ``forward`` gives the marginal energy (B, 1), ``features`` the posterior mean.

    Encoder: convs with bias, each followed by the activation, flatten, then (if ``hidden > 0``) a linear
    layer to ``hidden`` and the activation; ``hidden=0`` puts the heads on the flattened convs, as the
    released code does. Heads give ``t1 = W1 h`` and ``t2 = -(W2 h)²``. The defaults are the paper's
    CIFAR-10/SVHN encoder (3,836,928 parameters); its MNIST encoder is ``channels=(64, 64, 32, 32)`` at 28x28.

    ``bias="gaussian"`` is a standard normal per latent dimension; ``"mixture"`` a uniform mixture of
    ``components`` Gaussians with N(0, 1) means and unit stds. ``bias_mean`` and ``bias_log_std`` are
    parameters when ``learn_bias`` and buffers otherwise; either way they are saved in ``state_dict``, so
    the random mixture means survive a checkpoint.
    """

    channels_last_chains = True  # measured faster in NHWC on CPU (docs/performance.md)

    bias_mean: Tensor
    bias_log_std: Tensor

    def __init__(
        self,
        in_channels: int = 3,
        image_size: int = 32,
        channels: Sequence[int] = (64, 128, 256, 512),
        kernels: Sequence[int] = (3, 4, 4, 4),
        strides: Sequence[int] = (1, 2, 2, 2),
        paddings: Sequence[int] = (1, 1, 1, 1),
        hidden: int = 128,
        latent_dim: int = 128,
        activation: str = "silu",
        bias: str = "gaussian",
        components: int = 50,
        learn_bias: bool = False,
    ) -> None:
        super().__init__()
        if min(in_channels, image_size, latent_dim) < 1 or hidden < 0:
            raise ValueError("in_channels, image_size and latent_dim must be positive, hidden >= 0")
        if bias not in BIASES:
            raise ValueError(f"unknown bias {bias!r}; choose one of {', '.join(BIASES)}")
        if components < 1:
            raise ValueError(f"components must be >= 1, got {components}")
        self.num_classes = 0
        self.num_scales = 1
        self.in_channels = in_channels
        self.image_size = image_size

        layers, flat = conv_stack(in_channels, image_size, channels, kernels, strides, paddings, activation)
        if hidden > 0:
            layers += [nn.Linear(flat, hidden), _activation(activation)]
        self.encoder = nn.Sequential(*layers)
        self.head1 = nn.Linear(hidden or flat, latent_dim)
        self.head2 = nn.Linear(hidden or flat, latent_dim)

        shape = (components, latent_dim) if bias == "mixture" else (latent_dim,)
        mean = torch.randn(shape) if bias == "mixture" else torch.zeros(shape)
        log_std = torch.zeros(shape)
        if learn_bias:
            self.bias_mean = nn.Parameter(mean)
            self.bias_log_std = nn.Parameter(log_std)
        else:
            self.register_buffer("bias_mean", mean)
            self.register_buffer("bias_log_std", log_std)

    def _check_input(self, x: Tensor, y: Tensor | None) -> None:
        check_labels(y, self.num_classes, x.shape[0])
        expected = (self.in_channels, self.image_size, self.image_size)
        if x.dim() != 4 or tuple(x.shape[1:]) != expected:
            shape = ", ".join(map(str, expected))
            raise ValueError(f"CebmNet expects inputs of shape (B, {shape}), got {tuple(x.shape)}")

    def natural_bias(self) -> tuple[Tensor, Tensor]:
        """Natural parameters ``(lam1, lam2)`` of the bias, (D,) or (K, D)."""
        return natural_params(self.bias_mean, self.bias_log_std.exp())

    def statistics(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Sufficient statistics ``(t1, t2)``, each (B, latent_dim), with ``t2 <= 0``."""
        self._check_input(x, None)
        h = self.encoder(x)
        return self.head1(h), -self.head2(h).pow(2)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Marginal energy ``-log ∫ p(z) exp(t(x)·[z, z²]) dz``, (B, 1)."""
        self._check_input(x, y)
        lam1, lam2 = self.natural_bias()
        energy = gaussian_energy if lam1.dim() == 1 else mixture_energy
        return energy(*self.statistics(x), lam1, lam2).unsqueeze(1)

    def posterior(self, x: Tensor) -> CebmPosterior:
        """Posterior ``p(z | x)``; see :func:`posterior`."""
        return posterior(*self.statistics(x), *self.natural_bias())

    def features(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Posterior mean (of the most responsible component for a mixture bias), (B, latent_dim)."""
        self._check_input(x, y)
        return self.posterior(x).mean
