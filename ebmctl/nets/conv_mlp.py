"""A conv stack and an MLP to a scalar energy: the IGEBM baseline of the CEBM paper (001, appendix C, Table 4)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from ebmctl.nets.cebm import _activation, conv_stack
from ebmctl.nets.layers import check_labels

ACTIVATIONS = ("silu", "leaky_relu")


class ConvMlpEnergy(nn.Module):
    """Convs (with biases, each followed by the activation), flatten, FC layers of ``hidden`` widths (each
    followed by the activation), then a linear layer to the energy (B, 1).

    ``features`` is the output of the last FC layer: the net without the layer that outputs the energy, as
    paper 001 probes IGEBM. The defaults are its CIFAR-10/SVHN encoder; MNIST's is ``channels=(64, 64, 32, 32)``.
    """

    def __init__(
        self,
        in_channels: int = 3,
        image_size: int = 32,
        channels: Sequence[int] = (64, 128, 256, 512),
        kernels: Sequence[int] = (3, 4, 4, 4),
        strides: Sequence[int] = (1, 2, 2, 2),
        paddings: Sequence[int] = (1, 1, 1, 1),
        hidden: Sequence[int] = (128, 128),
        activation: str = "silu",
        num_classes: int = 0,
    ) -> None:
        super().__init__()
        if num_classes:
            raise ValueError("conv_mlp is an unconditional net (method.condition must be none)")
        if min(in_channels, image_size) < 1:
            raise ValueError("in_channels and image_size must be positive")
        if not hidden or min(hidden) < 1:
            raise ValueError("hidden needs at least one positive width")
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose one of {', '.join(ACTIVATIONS)}")
        self.num_classes = 0
        self.num_scales = 1
        self.in_channels = in_channels
        self.image_size = image_size
        layers, features = conv_stack(in_channels, image_size, channels, kernels, strides, paddings, activation)
        for units in hidden:
            layers += [nn.Linear(features, units), _activation(activation)]
            features = units
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(features, 1)

    def _check_input(self, x: Tensor, y: Tensor | None) -> None:
        check_labels(y, self.num_classes, x.shape[0])
        expected = (self.in_channels, self.image_size, self.image_size)
        if x.dim() != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"ConvMlpEnergy expects inputs of shape (B, {', '.join(map(str, expected))}), "
                             f"got {tuple(x.shape)}")

    def features(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Output of the last FC layer, (B, hidden[-1])."""
        self._check_input(x, y)
        return self.body(x)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return self.head(self.features(x, y))
