"""textures and photos: random 32x32 crops of images bundled with scikit-image (no download).

Each crop takes a square window whose side is a random fraction of the source's short side, at a random
position, and shrinks it to 32x32 with antialiasing. The label is the index of the source image.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from PIL import Image

from ebmctl.data.base import DataRequest, TensorImageDataset
from ebmctl.data.convert import convert_images
from ebmctl.data.embedded.seeding import split_rng

SIZE = 32
SPLIT_SIZES = {"train": 5000, "test": 1000}
TEXTURES = ("brick", "grass", "gravel", "moon")
PHOTOS = ("astronaut", "camera", "chelsea", "coffee", "rocket", "motorcycle")
SOURCES = {"textures": TEXTURES, "photos": PHOTOS}
_SCALE = (0.12, 0.6)  # side of the crop window as a fraction of the source's short side (log-uniform)


def source_image(name: str) -> Image.Image:
    """An RGB PIL image from scikit-image's bundled data (grayscale repeated to RGB)."""
    import skimage.data

    loader: Callable[[], np.ndarray] = (
        (lambda: skimage.data.stereo_motorcycle()[0]) if name == "motorcycle" else getattr(skimage.data, name)
    )
    array = loader()
    return Image.fromarray(np.asarray(array, dtype=np.uint8)).convert("RGB")


def random_crops(
    sources: list[Image.Image], n: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` crops as uint8 (n, 32, 32, 3) and the index of each crop's source."""
    labels = rng.integers(0, len(sources), n)
    fraction = np.exp(rng.uniform(np.log(_SCALE[0]), np.log(_SCALE[1]), n))
    corner = rng.random((n, 2))
    out = np.empty((n, SIZE, SIZE, 3), dtype=np.uint8)
    for i in range(n):
        img = sources[labels[i]]
        w, h = img.size
        side = fraction[i] * min(w, h)
        left, top = corner[i, 0] * (w - side), corner[i, 1] * (h - side)
        box = (left, top, left + side, top + side)
        out[i] = np.asarray(img.resize((SIZE, SIZE), Image.Resampling.BILINEAR, box=box))
    return out, labels


def build_crops(request: DataRequest) -> TensorImageDataset:
    """A split of ``textures`` or ``photos`` drawn from the request's seed."""
    names = SOURCES[request.name]
    rng = split_rng(request.name, request.split, request.seed)
    crops, labels = random_crops([source_image(s) for s in names], SPLIT_SIZES[request.split], rng)
    images = convert_images(
        torch.from_numpy(crops).permute(0, 3, 1, 2).contiguous(), request.image_size, request.channels
    )
    return TensorImageDataset(request.info(class_names=names), images, torch.from_numpy(labels).long())
