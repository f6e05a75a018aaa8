"""Pictures as PNG bytes: sample grids, chain strips, training curves, 2D point clouds."""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torchvision.utils import make_grid


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def image_grid_png(x: Tensor, nrow: int | None = None, upscale: int = 2, value_range: tuple[float, float] = (0, 1)) -> bytes:
    """A grid of images (B, C, H, W) as PNG, each image magnified ``upscale`` times."""
    lo, hi = value_range
    x = ((x.detach().float().cpu() - lo) / (hi - lo)).clamp(0, 1)
    if x.shape[1] == 1:
        x = x.repeat(1, 3, 1, 1)
    nrow = nrow or max(1, math.ceil(math.sqrt(len(x))))
    grid = make_grid(x, nrow=nrow, padding=2, pad_value=1.0)
    array = (grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    if upscale > 1:
        array = array.repeat(upscale, axis=0).repeat(upscale, axis=1)
    return _png(array)


def chain_strip_png(snapshots: list[Tensor], chains: int = 8, upscale: int = 2) -> bytes:
    """Rows = chains, columns = successive snapshots of the same chains."""
    frames = torch.stack([s[:chains].detach().float().cpu() for s in snapshots], dim=1)  # (chains, T, C, H, W)
    return image_grid_png(frames.flatten(0, 1), nrow=len(snapshots), upscale=upscale)


def hat_chains_png(frames: list[tuple[Tensor, Tensor]], to_images: Any, magnify: float = 5.0,
                   upscale: int = 2) -> bytes:
    """Hat EBM chains as the paper's Figure 3: per chain three rows, x = G(z) + y, G(z), and y magnified
    ``magnify`` times around grey; columns = successive snapshots. Frames hold (G(z), y) in the model's range."""
    rows = []
    for g, y in frames:
        residual = (0.5 + magnify * (to_images(y) - to_images(torch.zeros_like(y)))).clamp(0, 1)
        rows.append(torch.stack([to_images(g + y), to_images(g), residual], dim=1))  # (chains, 3, C, H, W)
    grid = torch.stack(rows, dim=2)  # (chains, 3, T, C, H, W)
    return image_grid_png(grid.flatten(0, 2), nrow=len(frames), upscale=upscale)


def _figure_png(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def training_curves_png(records: list[dict[str, Any]], title: str) -> bytes:
    """Loss and energy gap (E+ - E-) against the step, with E+ and E- beside them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in records]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    axes[0].plot(steps, [r.get("loss", np.nan) for r in records], lw=1.2)
    axes[0].set_title("loss")
    axes[1].plot(steps, [r.get("gap", np.nan) for r in records], lw=1.2, label="gap E+ - E-")
    axes[1].plot(steps, [r.get("e_pos", np.nan) for r in records], lw=0.8, alpha=0.7, label="E+")
    axes[1].plot(steps, [r.get("e_neg", np.nan) for r in records], lw=0.8, alpha=0.7, label="E-")
    axes[1].axhline(0.0, color="k", lw=0.5)
    axes[1].set_title("energies")
    axes[1].legend(fontsize=8)
    for ax in axes:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    return _figure_png(fig)


def points_png(samples: Tensor, reference: Tensor | None, title: str, lim: float = 4.5) -> bytes:
    """2D samples (orange) over reference data (grey)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.2, 4.2))
    if reference is not None:
        ref = reference.detach().cpu().numpy()
        ax.scatter(ref[:, 0], ref[:, 1], s=1, c="0.6", alpha=0.4, label="data")
    pts = samples.detach().cpu().numpy()
    ax.scatter(pts[:, 0], pts[:, 1], s=2, c="tab:orange", alpha=0.7, label="samples")
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.legend(fontsize=8, loc="upper right")
    ax.set_title(title, fontsize=10)
    return _figure_png(fig)


def samples_png(x: Tensor, reference: Tensor | None = None, title: str = "samples") -> bytes:
    """Images as a grid, 2D points as a scatter plot."""
    if x.dim() == 2:
        return points_png(x, reference, title)
    return image_grid_png(x)
