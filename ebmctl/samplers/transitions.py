"""Augmentation transitions of Langevin chains, drawn per image.

A torchvision.transforms.v2 pipeline called on a batch tensor draws one set of random parameters for the
whole batch, so identical images would stay identical; these transitions call the pipeline image by image so
every chain gets its own crop, flip and colour change (the randomness comes from torch's global generator).
"""

from __future__ import annotations

import math
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


# ------------------------------------------------------------------------------------------------------------
# The same family of moves as whole-batch tensor operations with per-image parameters: no Python loop over
# images, so it is fast on a CPU and stays on the GPU. Differences from the v2 pipeline: the colour operations
# run in one random order per batch (v2 draws an order per image), and a crop that does not fit is clipped
# rather than redrawn.

_LUMA = (0.299, 0.587, 0.114)


def _gray(x: Tensor) -> Tensor:
    w = x.new_tensor(_LUMA).view(1, 3, 1, 1)
    return (x * w).sum(dim=1, keepdim=True)


def _blend(a: Tensor, b: Tensor, factor: Tensor) -> Tensor:
    """factor * a + (1 - factor) * b, clamped: torchvision's blend for brightness, contrast, saturation."""
    return (factor * a + (1 - factor) * b).clamp_(0.0, 1.0)


def _rgb_to_hsv(x: Tensor) -> Tensor:
    r, g, b = x.unbind(dim=1)
    maxc, _ = x.max(dim=1)
    minc, _ = x.min(dim=1)
    delta = maxc - minc
    s = delta / torch.where(maxc > 0, maxc, torch.ones_like(maxc))
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    rc, gc, bc = (maxc - r) / safe, (maxc - g) / safe, (maxc - b) / safe
    h = torch.where(maxc == r, bc - gc, torch.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    h = torch.where(delta > 0, (h / 6.0) % 1.0, torch.zeros_like(h))
    return torch.stack((h, s, maxc), dim=1)


def _hsv_to_rgb(x: Tensor) -> Tensor:
    h, s, v = x.unbind(dim=1)
    i = torch.floor(h * 6.0)
    f = h * 6.0 - i
    i = i.long() % 6
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    choices = torch.stack(
        [torch.stack(c, dim=1) for c in ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))], dim=0
    )  # (6, B, 3, H, W)
    index = i.unsqueeze(0).unsqueeze(2).expand(1, -1, 3, -1, -1)
    return choices.gather(0, index).squeeze(0)


def _uniform(n: int, lo: float, hi: float, like: Tensor) -> Tensor:
    return torch.rand(n, device=like.device, dtype=like.dtype) * (hi - lo) + lo


def tensor_augmentation(
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
    """:func:`chain_augmentation`'s moves, vectorised over the batch with independent parameters per image."""
    brightness, contrast, saturation, hue = jitter
    if channels == 1:
        saturation, hue = 0.0, 0.0
    log_ratio = (math.log(3 / 4), math.log(4 / 3))

    def crop_and_flip(x: Tensor) -> Tensor:
        n = x.shape[0]
        area = _uniform(n, crop_scale[0], crop_scale[1], x)
        ratio = torch.exp(_uniform(n, log_ratio[0], log_ratio[1], x))
        w = torch.sqrt(area * ratio).clamp(max=1.0)
        h = torch.sqrt(area / ratio).clamp(max=1.0)
        cx = (torch.rand(n, device=x.device, dtype=x.dtype) * 2 - 1) * (1 - w)
        cy = (torch.rand(n, device=x.device, dtype=x.dtype) * 2 - 1) * (1 - h)
        sign = torch.where(torch.rand(n, device=x.device) < 0.5, -1.0, 1.0).to(x.dtype) if flip else torch.ones_like(w)
        theta = torch.zeros(n, 2, 3, device=x.device, dtype=x.dtype)
        theta[:, 0, 0], theta[:, 0, 2] = w * sign, cx
        theta[:, 1, 1], theta[:, 1, 2] = h, cy
        grid = torch.nn.functional.affine_grid(theta, [n, x.shape[1], size, size], align_corners=False)
        return torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    def colour(x: Tensor) -> Tensor:
        n = x.shape[0]
        active = (torch.rand(n, device=x.device) < jitter_p).view(n, 1, 1, 1)
        out = x
        for op in torch.randperm(4).tolist():
            if op == 0 and brightness > 0:
                f = _uniform(n, max(0.0, 1 - brightness), 1 + brightness, x).view(n, 1, 1, 1)
                out = torch.where(active, _blend(out, torch.zeros_like(out), f), out)
            elif op == 1 and contrast > 0:
                f = _uniform(n, max(0.0, 1 - contrast), 1 + contrast, x).view(n, 1, 1, 1)
                mean = (_gray(out) if channels == 3 else out).mean(dim=(1, 2, 3), keepdim=True)
                out = torch.where(active, _blend(out, mean.expand_as(out), f), out)
            elif op == 2 and saturation > 0:
                f = _uniform(n, max(0.0, 1 - saturation), 1 + saturation, x).view(n, 1, 1, 1)
                out = torch.where(active, _blend(out, _gray(out).expand_as(out), f), out)
            elif op == 3 and hue > 0:
                shift = _uniform(n, -hue, hue, x).view(n, 1, 1)
                hsv = _rgb_to_hsv(out)
                hsv[:, 0] = (hsv[:, 0] + shift) % 1.0
                out = torch.where(active, _hsv_to_rgb(hsv), out)
        return out

    def blur(x: Tensor) -> Tensor:
        n, c = x.shape[:2]
        k = max(3, (size // 10) | 1)
        sigma = _uniform(n, 0.1, 2.0, x).view(n, 1)
        taps = torch.arange(k, device=x.device, dtype=x.dtype) - k // 2
        kernel = torch.exp(-(taps.view(1, -1) ** 2) / (2 * sigma**2))
        kernel = kernel / kernel.sum(dim=1, keepdim=True)  # (n, k)
        active = (torch.rand(n, device=x.device) < blur_p).view(n, 1)
        identity = torch.zeros_like(kernel)
        identity[:, k // 2] = 1.0
        kernel = torch.where(active, kernel, identity).repeat_interleave(c, dim=0)  # (n*c, k)
        flat = x.reshape(1, n * c, *x.shape[2:])
        pad = k // 2
        flat = torch.nn.functional.conv2d(torch.nn.functional.pad(flat, (pad, pad, 0, 0), mode="reflect"),
                                          kernel.view(n * c, 1, 1, k), groups=n * c)
        flat = torch.nn.functional.conv2d(torch.nn.functional.pad(flat, (0, 0, pad, pad), mode="reflect"),
                                          kernel.view(n * c, 1, k, 1), groups=n * c)
        return flat.view_as(x)

    def apply(x: Tensor) -> Tensor:
        out = crop_and_flip(x)
        if jitter_p > 0 and any((brightness, contrast, saturation, hue)):
            out = colour(out)
        if gray_p > 0 and channels == 3:
            gray = (torch.rand(x.shape[0], device=x.device) < gray_p).view(-1, 1, 1, 1)
            out = torch.where(gray, _gray(out).expand_as(out), out)
        if blur_p > 0:
            out = blur(out)
        return out.clamp_(0.0, 1.0)

    return apply


AUGMENTATIONS = {"v2": chain_augmentation, "tensor": tensor_augmentation}
