"""ebmctl: train, sample, compose and evaluate image energy-based models."""

__version__ = "0.1.0"
