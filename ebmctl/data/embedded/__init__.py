"""Datasets that need no download: generated, or built from data shipped inside installed packages."""
