"""Metrics and judges: FID/KID with an in-domain judge or local Inception weights, OOD, MMD."""
