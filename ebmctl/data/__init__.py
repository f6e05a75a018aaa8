"""Datasets: embedded ones that need no download, real ones read from a data root, and batch streams.

``load_dataset(name, ...)`` returns an ``EbmDataset`` whose items are uint8 (C, H, W) images (or float32 2D
points) and int labels; ``BatchStream`` turns it into a resumable stream of batches; ``to_float`` makes
model inputs of the uint8 images.
"""

from ebmctl.data.base import DataInfo, EbmDataset
from ebmctl.data.embedded.toy2d import mode_centers
from ebmctl.data.load import load_dataset
from ebmctl.data.registry import DatasetEntry, dataset_entry, dataset_names
from ebmctl.data.stream import BatchStream, to_float

__all__ = [
    "BatchStream",
    "DataInfo",
    "DatasetEntry",
    "EbmDataset",
    "dataset_entry",
    "dataset_names",
    "load_dataset",
    "mode_centers",
    "to_float",
]
