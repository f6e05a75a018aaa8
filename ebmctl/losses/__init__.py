"""Losses shared by several methods."""
