"""Augmentation transitions of Langevin chains, drawn per image.

A torchvision.transforms.v2 pipeline called on a batch tensor draws one set of random parameters for the
whole batch, so identical images would stay identical; these transitions call the pipeline image by image so
every chain gets its own crop, flip and colour change (the randomness comes from torch's global generator).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torchvision.transforms import v2

Transition = Callable[[Tensor], Tensor]


def chain_augmentation(
    *,
    size: int,
    channels: int = 3,
    crop_scale: tuple[float, float] = (0.08, 1.0),
    flip: bool = True,
    jitter: tuple[float, float, float, float] = (0.8, 0.8, 0.8, 0.4),
    jitter_p: float = 0.8,
    gray_p: float = 0.2,
    blur_p: float = 0.0,
) -> Transition:
    """The SimCLR-style move ICD applies to every buffer draw: random resized crop, horizontal flip,
    colour jitter (with probability ``jitter_p``), grayscale (``gray_p``) and optionally Gaussian blur.
    Images are floats in [0, 1]; for one-channel images only brightness and contrast are jittered.
    """
    steps: list[v2.Transform] = [v2.RandomResizedCrop(size, scale=crop_scale, antialias=True)]
    if flip:
        steps.append(v2.RandomHorizontalFlip())
    brightness, contrast, saturation, hue = jitter
    if channels == 1:
        saturation, hue = 0.0, 0.0
    if jitter_p > 0 and any((brightness, contrast, saturation, hue)):
        steps.append(v2.RandomApply([v2.ColorJitter(brightness, contrast, saturation, hue)], p=jitter_p))
    if gray_p > 0 and channels == 3:
        steps.append(v2.RandomGrayscale(p=gray_p))
    if blur_p > 0:
        kernel = max(3, (size // 10) | 1)
        steps.append(v2.RandomApply([v2.GaussianBlur(kernel, sigma=(0.1, 2.0))], p=blur_p))
    pipeline = v2.Compose(steps)

    def apply(x: Tensor) -> Tensor:
        out = torch.stack([pipeline(img) for img in x])
        return out.clamp_(0.0, 1.0)

    return apply
