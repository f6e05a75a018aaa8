"""Datasets read from a data root: torchvision's classes and ImageNet readers (32x32 npz batches, class folders)."""
