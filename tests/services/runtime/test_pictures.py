"""The pictures explain themselves: training curves fit each method's metrics, chains are labelled, the Hat
EBM's residual is visible, grids have no blank cells."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from ebmctl.services.runtime.pictures import (
    chain_strip_png,
    curve_panels,
    grid_columns,
    hat_chains_png,
    image_grid_png,
    residual_scale,
    training_curves_png,
)


def _image(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def test_sngan_curves_plot_its_discriminator_and_generator_and_no_energy_panel():
    records = [{"step": s, "loss": 2.0 - s / 100, "d_real": 0.5, "d_fake": -0.5, "diversity": 0.8,
                "images_per_s": 100.0, "elapsed_s": float(s), **({"g_loss": 1.0} if s % 2 == 0 else {})}
               for s in range(1, 11)]
    panels = dict(curve_panels(records))
    assert panels["loss"] == ["loss", "g_loss"]
    assert panels["discriminator"] == ["d_real", "d_fake"]
    assert "energies" not in panels and "energy gap E+ - E-" not in panels
    assert not {"step", "images_per_s", "elapsed_s"} & {k for keys in panels.values() for k in keys}
    assert _image(training_curves_png(records, "sngan")).shape[1] > 0


def test_ebclr_gap_is_on_its_own_axis_and_its_loss_terms_are_plotted():
    records = [{"step": s, "loss": 4.0, "contrastive": 4.0, "generative": 0.05, "e_pos": -3.0 - s,
                "e_neg": -3.01 - s, "gap": 0.01, "grad_norm": 1.5} for s in range(1, 6)]
    panels = curve_panels(records)
    assert ("energy gap E+ - E-", ["gap"]) in panels
    assert ("energies", ["e_pos", "e_neg"]) in panels
    assert ("loss terms", ["contrastive", "generative"]) in panels
    assert ("gradient norms", ["grad_norm"]) in panels


def test_rollback_events_and_missing_values_do_not_make_panels():
    records = [{"step": 1, "loss": 1.0, "gap": float("nan")}, {"step": 1, "event": "rollback", "detected_at": 2,
                                                               "reason": "x", "lr_scale": 0.5}]
    assert curve_panels(records) == [("loss", ["loss"])]
    training_curves_png(records, "t")


@pytest.mark.parametrize(("n", "cols", "shown"), [(64, 8, 64), (32, 8, 32), (100, 10, 100), (50, 10, 50), (6, 6, 6),
                                                 (16, 4, 16), (48, 8, 48)])
def test_grids_have_no_blank_cells(n, cols, shown):
    assert grid_columns(n) == (cols, shown)
    assert (n // cols) * cols == shown


def test_a_negatives_grid_of_32_is_8_by_4_without_white_cells():
    picture = _image(image_grid_png(torch.zeros(32, 3, 8, 8), upscale=1))
    assert picture.shape[:2] == (4 * 10 + 2, 8 * 10 + 2)  # 8 x 4 cells of 8 px with 2 px padding
    assert (picture < 128).all(axis=2).sum() == 32 * 64  # every cell black: none left blank (white)


def test_chain_strip_has_step_labels_above_its_columns():
    strip = _image(chain_strip_png([torch.rand(8, 3, 8, 8) for _ in range(3)], [1, 5, 10], upscale=2))
    unlabelled = _image(image_grid_png(torch.rand(24, 3, 8, 8), nrow=3, upscale=2))
    assert strip.shape[0] > unlabelled.shape[0] and strip.shape[1] > unlabelled.shape[1]
    header = strip[: strip.shape[0] - unlabelled.shape[0]]
    assert (header < 100).any(), "label text above the columns"


def test_the_hat_residual_row_is_visible_not_flat_grey():
    torch.manual_seed(0)
    g = torch.rand(2, 3, 8, 8) * 2 - 1
    frames = [(g, torch.zeros_like(g)), (g, 0.002 * torch.randn_like(g)), (g, 0.004 * torch.randn_like(g))]

    def to_images(x):
        return ((x + 1) / 2).clamp(0, 1)

    picture = _image(hat_chains_png(frames, to_images, [0, 5, 10], upscale=1))
    rows, cols = 6, 3
    header, left = 18, picture.shape[1] - (cols * 10 + 2)
    cell = picture[header + 2 + 2 * 10: header + 2 + 2 * 10 + 8, left + 2 + 2 * 10: left + 2 + 2 * 10 + 8]  # y, step 10
    assert cell.std() > 30, "the magnified residual spans the grey range"
    assert residual_scale(to_images(frames[2][1]) - 0.5) > 5
    assert picture.shape[0] == header + rows * 10 + 2
    assert (picture[:, :left] < 100).any(), "row labels left of the grid"
