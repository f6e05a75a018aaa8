"""Resizing and channel conversion of uint8 images, so that every dataset can feed every model."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from PIL import Image

# ITU-R 601-2 luma, the weights PIL uses for mode "L".
LUMA = (0.299, 0.587, 0.114)


def convert_images(
    images: torch.Tensor, size: int | None = None, channels: int | None = None, chunk: int = 2048
) -> torch.Tensor:
    """Resize uint8 (N, C, H, W) images to (size, size) and convert them to ``channels`` (1 or 3).

    Resizing is bilinear with antialiasing (an area average when shrinking); gray becomes RGB by repetition and
    RGB becomes gray by luminance. Returns the input itself when nothing changes. Works in chunks so a large
    dataset is never held as floats all at once.
    """
    n, c, h, w = images.shape
    size_out = (size, size) if size is not None else (h, w)
    c_out = channels if channels is not None else c
    if size_out == (h, w) and c_out == c:
        return images
    out = torch.empty((n, c_out, *size_out), dtype=torch.uint8)
    for start in range(0, n, chunk):
        out[start : start + chunk] = _convert_chunk(images[start : start + chunk], size_out, c_out)
    return out


def _convert_chunk(x: torch.Tensor, size: tuple[int, int], channels: int) -> torch.Tensor:
    if x.shape[1] == 3 and channels == 1:
        x = _luma(x.float())
    x = x.float()
    if tuple(x.shape[-2:]) != size:
        x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
    x = x.round_().clamp_(0, 255).to(torch.uint8)
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 and channels == 3 else x


def _luma(x: torch.Tensor) -> torch.Tensor:
    r, g, b = LUMA
    return (r * x[:, 0:1] + g * x[:, 1:2] + b * x[:, 2:3]).round_()


def center_square(img: Image.Image, side: int | None = None) -> Image.Image:
    """Crop the centred ``side`` x ``side`` square (the largest centred square when ``side`` is None)."""
    w, h = img.size
    side = min(w, h) if side is None else min(side, w, h)
    left, top = (w - side) // 2, (h - side) // 2
    return img.crop((left, top, left + side, top + side))


def top_left_square(img: Image.Image, side: int) -> Image.Image:
    """Crop the ``side`` x ``side`` square at the top-left corner (smaller when the image is)."""
    side = min(side, *img.size)
    return img.crop((0, 0, side, side))


def pil_to_tensor(img: Image.Image, size: int, channels: int) -> torch.Tensor:
    """A PIL image resized (antialiased bilinear) to (size, size) as uint8 (channels, size, size)."""
    img = img.convert("L" if channels == 1 else "RGB")
    if img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.BILINEAR)
    arr = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8)
    return arr.view(size, size, channels).permute(2, 0, 1).contiguous()
