"""Datasets read from a data root: torchvision's classes and an ImageNet 32x32 reader."""
