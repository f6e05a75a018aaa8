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


def grid_columns(n: int) -> tuple[int, int]:
    """(columns, images shown) of a grid of ``n`` images with no blank cells: a divisor of ``n`` near its square
    root when there is one (32 -> 8 x 4), else the fullest rows of ceil(sqrt(n)) (the rest is left out)."""
    if n <= 8:
        return max(n, 1), n
    root = math.ceil(math.sqrt(n))
    for cols in range(root, 2 * root + 1):
        if n % cols == 0:
            return cols, n
    for cols in range(root - 1, max(1, root // 2) - 1, -1):
        if n % cols == 0 and n // cols <= 2 * cols:
            return cols, n
    return root, (n // root) * root


def _to_rgb(x: Tensor, value_range: tuple[float, float]) -> Tensor:
    lo, hi = value_range
    x = ((x.detach().float().cpu() - lo) / (hi - lo)).clamp(0, 1)
    return x.repeat(1, 3, 1, 1) if x.shape[1] == 1 else x


def _grid_array(x: Tensor, nrow: int, upscale: int) -> np.ndarray:
    grid = make_grid(x, nrow=nrow, padding=2, pad_value=1.0)
    array = (grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    if upscale > 1:
        array = array.repeat(upscale, axis=0).repeat(upscale, axis=1)
    return array


def image_grid_png(x: Tensor, nrow: int | None = None, upscale: int = 2, value_range: tuple[float, float] = (0, 1)) -> bytes:
    """A grid of images (B, C, H, W) as PNG, each image magnified ``upscale`` times. Without ``nrow`` the grid
    has no blank cells (:func:`grid_columns`)."""
    x = _to_rgb(x, value_range)
    if nrow is None:
        nrow, shown = grid_columns(len(x))
        x = x[:shown]
    return _png(_grid_array(x, nrow, upscale))


def labelled_grid_png(tiles: Tensor, row_labels: list[str], col_labels: list[str], upscale: int = 2,
                      value_range: tuple[float, float] = (0, 1)) -> bytes:
    """Images (R, C, ch, H, W) as a grid with a label left of every row and above every column."""
    from PIL import ImageDraw, ImageFont

    rows, cols = tiles.shape[:2]
    array = _grid_array(_to_rgb(tiles.flatten(0, 1), value_range), cols, upscale)
    font = ImageFont.load_default(size=11)
    left = 6 + max((int(font.getlength(label)) for label in row_labels), default=0)
    top = 18
    canvas = Image.new("RGB", (left + array.shape[1], top + array.shape[0]), "white")
    canvas.paste(Image.fromarray(array), (left, top))
    draw = ImageDraw.Draw(canvas)
    pad = 2 * upscale
    cell_h = (array.shape[0] - pad) / rows
    cell_w = (array.shape[1] - pad) / cols
    for r, label in enumerate(row_labels):
        draw.text((left - 4, top + pad + (r + 0.5) * cell_h), label, fill="black", font=font, anchor="rm")
    for c, label in enumerate(col_labels):
        draw.text((left + pad + (c + 0.5) * cell_w, top - 3), label, fill="black", font=font, anchor="md")
    return _png(np.asarray(canvas))


def chain_strip_png(snapshots: list[Tensor], steps: list[int], chains: int = 8, upscale: int = 2,
                    unit: str = "step") -> bytes:
    """Rows = chains, columns = successive snapshots of the same chains, labelled with their ``steps``."""
    frames = torch.stack([s[:chains].detach().float().cpu() for s in snapshots], dim=1)  # (chains, T, C, H, W)
    labels = [f"{unit} {k}" for k in steps]
    return labelled_grid_png(frames, [f"chain {i + 1}" for i in range(len(frames))], labels, upscale)


def residual_scale(ys: Tensor) -> float:
    """The magnification that maps the largest |y| of a chain's frames to half the grey range (at least 1)."""
    peak = float(ys.abs().max()) if ys.numel() else 0.0
    return max(1.0, 0.5 / peak) if peak > 0 else 1.0


def hat_chains_png(frames: list[tuple[Tensor, Tensor]], to_images: Any, steps: list[int], upscale: int = 2) -> bytes:
    """Hat EBM chains as the paper's Figure 3: per chain three rows, x = G(z) + y, G(z), and y around grey,
    magnified so that its largest value over the frames reaches black or white (the factor is in the row's
    label); columns = successive snapshots, labelled with their step. Frames hold (G(z), y) in the model's range."""
    rows, labels = [], []
    chains = len(frames[0][0])
    residuals = torch.stack([to_images(y) - to_images(torch.zeros_like(y)) for _, y in frames], dim=1)  # (N, T, ...)
    for i in range(chains):
        scale = residual_scale(residuals[i])
        x = torch.stack([to_images(g[i] + y[i]) for g, y in frames])
        g = torch.stack([to_images(g[i]) for g, _ in frames])
        y = (0.5 + scale * residuals[i]).clamp(0, 1)
        rows += [x, g, y]
        labels += ["x = G(z)+y", "G(z)", f"y x{scale:.3g}"]
    return labelled_grid_png(torch.stack(rows), labels, [f"step {k}" for k in steps], upscale)


def _figure_png(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


NOT_CURVES = {"step", "images_per_s", "elapsed_s"}
LABELS = {"loss": "loss", "g_loss": "generator loss", "e_pos": "E+ (data)", "e_neg": "E- (negatives)",
          "d_real": "D(real)", "d_fake": "D(fake)", "gap": "E+ - E-"}
KEY_ORDER = {k: i for i, k in enumerate(("loss", "g_loss", "e_pos", "e_neg", "d_real", "d_fake"))}
# Panels of training.png in order: a title and which logged keys go on it (the gap always alone).
PANELS: list[tuple[str, Any]] = [
    ("loss", lambda k: k == "loss" or k.startswith("loss_") or k.endswith("_loss")),
    ("energy gap E+ - E-", lambda k: k == "gap"),
    ("energies", lambda k: k in ("e_pos", "e_neg")),
    ("discriminator", lambda k: k in ("d_real", "d_fake")),
    ("loss terms", lambda k: k in ("kl", "entropy", "contrastive", "generative", "mse")),
    ("gradient norms", lambda k: k.endswith("grad_norm")),
]


def curve_panels(records: list[dict[str, Any]]) -> list[tuple[str, list[str]]]:
    """The panels training.png draws for these metrics records: (title, keys), only keys some record logs as a
    finite number; keys no group takes get a panel each."""
    keys: list[str] = []
    for r in records:
        if "event" in r:
            continue
        for k, v in r.items():
            if k not in NOT_CURVES and k not in keys and isinstance(v, (int, float)) and math.isfinite(v):
                keys.append(k)
    panels, taken = [], set()
    for title, wants in PANELS:
        chosen = sorted((k for k in keys if wants(k)), key=lambda k: (KEY_ORDER.get(k, len(KEY_ORDER)), k))
        if chosen:
            panels.append((title, chosen))
            taken.update(chosen)
    panels += [(k, [k]) for k in keys if k not in taken]
    return panels


def training_curves_png(records: list[dict[str, Any]], title: str) -> bytes:
    """What the method logs against the step, a panel per kind of figure (:func:`curve_panels`); rollbacks of
    the divergence guard are dotted red lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [r for r in records if "event" not in r]
    rollbacks = [r.get("detected_at", r["step"]) for r in records if r.get("event") == "rollback"]
    panels = curve_panels(points) or [("loss", [])]
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False,
                             layout="constrained")
    names = {**LABELS, "loss": "discriminator loss"} if any("d_real" in r for r in points) else LABELS
    for ax, (name, keys) in zip(axes.flat, panels, strict=False):
        for key in keys:
            xy = [(r["step"], r[key]) for r in points if isinstance(r.get(key), (int, float))]
            ax.plot([p[0] for p in xy], [p[1] for p in xy], lw=1.2 if len(keys) == 1 else 1.0,
                    label=names.get(key, key))
        if keys == ["gap"]:
            ax.axhline(0.0, color="k", lw=0.5)
        for step in rollbacks:
            ax.axvline(step, color="tab:red", lw=0.8, ls=":")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if len(keys) > 1:
            ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
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
