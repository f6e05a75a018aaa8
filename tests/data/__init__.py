"""Tests of ebmctl.data; fixtures.py writes tiny real datasets for any test to load."""
