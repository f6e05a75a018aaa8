"""The attribute judge: a multi-label classifier that says which binary attributes an image has.

It scores compositional generation the way Du et al. (2021, "Improved Contrastive Divergence", Table 4) do:
per requested attribute, the fraction of samples the judge classifies as having it. Two bodies: the small CNN
of the in-domain class judge (shapes32 and other small images) and a ResNet-18 (CelebA, as in the paper).
It is cached as safetensors with a JSON meta document.

A judge abstains on images it does not recognise, as the class judge reports its confident share: the
penultimate features of 2,000 training images are kept with it, and an image whose features lie further from
the nearest of them (cosine distance) than the dataset's held-out images do is not judged. (Pure noise lands
far from every training image there, while its features' mean and spread look ordinary, and the judge's
sigmoids may still be sure of an attribute.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ebmctl.data.base import DataInfo
from ebmctl.errors import SpecError
from ebmctl.evaluation.judges import FEATURE_DIM, _conv

FILE_KIND = "ebmctl-attribute-judge"


ARCHITECTURES = ("cnn", "resnet18")


DEFAULT_LR = {"cnn": 3e-3, "resnet18": 1e-3}


DEFAULT_BATCH_SIZE = 64


SHIFT_PIXELS = 1  # shapes32's left/top halves are 2 px apart: a larger shift would blur those labels


REPORT_CHUNK = 256  # images per forward pass when judging or calibrating
SMALL_INPUT = 64  # ResNet-18 inputs up to this size get a 3x3 stride-1 stem and no max-pooling


RECOGNITION_BUFFERS = {"reference_features"}


CALIBRATION_IMAGES = 2000  # training images whose features the judge keeps, and held-out images that set ...


RECOGNITION_QUANTILE = 0.99  # ... the threshold: this quantile of their distances ...


RECOGNITION_MARGIN = 1.5  # ... times this margin is the largest distance the judge still recognises


def _cnn(in_channels: int, num_outputs: int) -> nn.Sequential:
    """The class judge's body (five 3x3 convs, three poolings, 96-d global average) with a linear head."""
    return nn.Sequential(
        *_conv(in_channels, 24),
        nn.MaxPool2d(2),
        *_conv(24, 48),
        nn.MaxPool2d(2),
        *_conv(48, 64),
        *_conv(64, 64),
        nn.MaxPool2d(2),
        *_conv(64, FEATURE_DIM),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(FEATURE_DIM, num_outputs),
    )


def _resnet18(in_channels: int, image_size: int, num_outputs: int) -> nn.Module:
    """torchvision's ResNet-18 (random init); small inputs get a 3x3 stride-1 stem without max-pooling."""
    from torchvision.models import resnet18

    net = resnet18(weights=None, num_classes=num_outputs)
    if image_size <= SMALL_INPUT:
        net.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
    elif in_channels != 3:
        net.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
    return net


def check_architecture(architecture: str) -> None:
    if architecture not in ARCHITECTURES:
        raise SpecError(
            f"unknown attribute judge architecture {architecture!r}",
            f"use one of: {', '.join(ARCHITECTURES)}",
        )


class AttributeJudge(nn.Module):
    """One logit per attribute (sigmoid: the probability of having it) for images of shape (C, H, W).

    Inputs are float images in [0, 1] (B, C, H, W); uint8 images are scaled by 1/255."""

    def __init__(
        self,
        shape: Sequence[int],
        attribute_names: Sequence[str],
        architecture: str = "cnn",
        meta: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        check_architecture(architecture)
        if len(shape) != 3 or not attribute_names:
            raise ValueError(f"an attribute judge needs a (C, H, W) shape and attributes, got {tuple(shape)}")
        self.shape = tuple(int(s) for s in shape)
        self.attribute_names = tuple(attribute_names)
        self.architecture = architecture
        channels, height, width = self.shape
        if architecture == "cnn":
            self.net = _cnn(channels, len(self.attribute_names))
        else:
            self.net = _resnet18(channels, max(height, width), len(self.attribute_names))
        self.meta: dict[str, Any] = dict(meta or {})
        width = FEATURE_DIM if architecture == "cnn" else self.net.fc.in_features
        self.register_buffer("reference_features", torch.zeros(0, width))  # unit-norm features of training images

    @property
    def num_attributes(self) -> int:
        return len(self.attribute_names)

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        if self.architecture == "cnn":
            return self.net[:-1](x)
        net = self.net
        x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
        x = net.layer4(net.layer3(net.layer2(net.layer1(x))))
        return torch.flatten(net.avgpool(x), 1)

    @torch.no_grad()
    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features (B, D), the input of the linear head."""
        return self._features(self._prepare(x))

    @torch.no_grad()
    def recognition_distance(self, x: torch.Tensor) -> torch.Tensor:
        """How far each image's features lie from the nearest kept training image's: the Euclidean distance of
        unit-norm features (B,)."""
        if len(self.reference_features) == 0:
            raise ValueError("this judge keeps no training features: calibrate_recognition first")
        f = F.normalize(self.features(x).float(), dim=1)
        return torch.cdist(f, self.reference_features).min(dim=1).values

    @property
    def recognition_threshold(self) -> float | None:
        value = self.meta.get("recognition_threshold")
        return float(value) if value is not None else None

    @torch.no_grad()
    def recognises(self, x: torch.Tensor) -> torch.Tensor:
        """Whether the judge recognises each image as one of its dataset's, bool (B,) (all, uncalibrated)."""
        threshold = self.recognition_threshold
        if threshold is None:
            return torch.ones(len(x), dtype=torch.bool)
        return self.recognition_distance(x).cpu() <= threshold

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.uint8:
            x = x.float() / 255.0
        if x.dim() != 4 or x.shape[1] != self.shape[0]:
            raise ValueError(
                f"attribute judge expects (B, {self.shape[0]}, H, W) images, got {tuple(x.shape)}"
            )
        device = next(self.parameters()).device
        return x.to(device=device, dtype=torch.float32)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Raw logits (B, A)."""
        return self.net(self._prepare(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(x)

    @torch.no_grad()
    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """Probability of having each attribute (B, A)."""
        return torch.sigmoid(self.logits(x))

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Whether each image has each attribute, bool (B, A): probability above 0.5."""
        return self.logits(x) > 0

    def describe(self) -> str:
        """Short label, e.g. ``attribute-judge:celeba (resnet18, 40 attributes)``."""
        name = self.meta.get("dataset", "unnamed")
        return f"attribute-judge:{name} ({self.architecture}, {self.num_attributes} attributes)"


def default_architecture(info: DataInfo) -> str:
    """ResNet-18 for CelebA (as in Du et al. 2021), the small CNN otherwise."""
    return "resnet18" if info.name == "celeba" else "cnn"


def default_steps(info: DataInfo) -> int:
    """Training steps of the default schedule for ``info``'s dataset."""
    return 4000 if default_architecture(info) == "resnet18" else 1000


ARCHITECTURE_NAMES = {"cnn": "small CNN", "resnet18": "ResNet-18"}
