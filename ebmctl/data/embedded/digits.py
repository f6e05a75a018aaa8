"""digits: scikit-learn's 1797 handwritten 8x8 digits, upsampled to 32x32 gray, with a fixed stratified split."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ebmctl.data.base import DataRequest, TensorImageDataset
from ebmctl.data.convert import convert_images

SIZE = 32
TEST_SIZE = 297  # 1500 train / 297 test
SPLIT_SIZES = {"train": 1500, "test": TEST_SIZE}
_SPLIT_SEED = 0  # the split is part of the dataset's definition, not of the run's seed


def digits_images() -> tuple[torch.Tensor, torch.Tensor]:
    """All 1797 digits as uint8 (N, 1, 32, 32) and int64 labels."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    small = torch.from_numpy(bunch.images.astype(np.float32) * (255.0 / 16.0)).unsqueeze(1)
    big = F.interpolate(small, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
    return big.round_().clamp_(0, 255).to(torch.uint8), torch.from_numpy(bunch.target.astype(np.int64))


def split_indices(labels: np.ndarray, split: str) -> np.ndarray:
    """Indices of a split, stratified by class and the same on every machine and for every run seed."""
    from sklearn.model_selection import train_test_split

    train, test = train_test_split(
        np.arange(len(labels)), test_size=TEST_SIZE, stratify=labels, random_state=_SPLIT_SEED
    )
    return np.sort(train if split == "train" else test)


def build_digits(request: DataRequest) -> TensorImageDataset:
    """The requested split of the digits (the seed does not change a fixed dataset)."""
    images, labels = digits_images()
    index = torch.from_numpy(split_indices(labels.numpy(), request.split))
    images = convert_images(images[index], request.image_size, request.channels)
    return TensorImageDataset(
        request.info(class_names=tuple(str(d) for d in range(10))), images, labels[index]
    )
