"""Progress on a terminal (one live line fitted to its width) and off one (plain lines that are never cut)."""

from __future__ import annotations

import io
import time

from rich.console import Console

from ebmctl.console import RichReporter, fit, status_parts
from ebmctl.services.runtime.chain_progress import ChainProgress

TRAIN_FIELDS = ("loss", "gap", "E+", "E-", "img/s")


def _reporter(terminal: bool, width: int = 80, every: float = 0.0) -> tuple[RichReporter, io.StringIO]:
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=terminal, width=width, color_system=None if not terminal else "standard")
    return RichReporter(console=console, every=every), buf


def test_off_a_terminal_lines_come_while_running_and_are_never_cut():
    reporter, buf = _reporter(terminal=False, every=0.05)
    with reporter.progress("train", 2000, fields=TRAIN_FIELDS) as bar:
        bar.update(0)
        assert buf.getvalue().count("\n") == 1, "a line at the start, not only at the end"
        for step in range(1, 121):
            bar.update(step, loss=-0.01234, gap=0.0345, **{"E+": 0.1, "E-": 0.0655, "img/s": 512.0})
            time.sleep(0.002)
    lines = buf.getvalue().splitlines()
    assert len(lines) >= 3
    last = lines[-1]
    for piece in ("train: 120/2000 steps (6%)", "loss -0.0123", "gap 0.0345", "img/s 512", "it/s", "elapsed 0:00:0",
                  "eta 0:"):
        assert piece in last, (piece, last)
    assert len(last) > 80 and "…" not in buf.getvalue()


def test_off_a_terminal_the_interval_holds_lines_back():
    reporter, buf = _reporter(terminal=False, every=60.0)
    with reporter.progress("sample 10 x 100 steps", 100, fields=("mean E",)) as bar:
        for step in range(1, 101):
            bar.update(step)
    lines = buf.getvalue().splitlines()
    assert len(lines) == 2 and lines[-1].startswith("sample 10 x 100 steps: 100/100 steps (100%)")


def test_the_live_line_fits_80_columns_with_step_loss_gap_rate_and_eta():
    reporter, _ = _reporter(terminal=True, width=80)
    bar = reporter.progress("train", 1000, fields=TRAIN_FIELDS)
    bar.rate.mark(0)
    bar.rate.started -= 20.0  # 44 steps in 20 s
    bar.update(44, loss=-0.01234, gap=0.03456, **{"E+": -0.5, "E-": -0.53, "img/s": 281.6})
    column = bar.progress.columns[0]
    line = column.render(bar.progress.tasks[0]).plain
    assert len(line) <= 79 and "…" not in line, line
    for piece in ("train ", "44/1000 steps", "loss -0.0123", "gap 0.0346", "it/s", "eta 0:07:"):
        assert piece in line, (piece, line)


def test_a_long_label_gets_its_own_line_above_the_live_bar():
    reporter, buf = _reporter(terminal=True, width=80)
    label = "train runs/quickstart-20261207-163000-with-a-long-name"
    with reporter.progress(label, 10) as bar:
        assert bar.description == "train"
        bar.update(10)
    assert label in buf.getvalue()


def test_fit_drops_the_least_important_pieces_first():
    parts = status_parts(5, 10, "step", {"loss": 1.0, "gap": 2.0, "E+": 3.0}, 2.0, 5.0, 2.5)
    assert fit(parts, 1000).split("  ") == ["5/10 steps", "loss 1", "gap 2", "E+ 3", "2 it/s", "elapsed 0:00:05",
                                            "eta 0:00:02"]
    assert fit(parts, 46) == "5/10 steps  loss 1  gap 2  2 it/s  eta 0:00:02"


class _Recorder:
    def __init__(self) -> None:
        self.updates: list[tuple[int, dict]] = []

    def update(self, completed: int, **fields) -> None:
        self.updates.append((completed, fields))


def test_chain_progress_counts_every_step_of_every_batch_and_shows_the_mean_energy():
    import torch

    bar = _Recorder()
    progress = ChainProgress(bar, steps=5, energy=lambda x: x.flatten(1).sum(1), energy_every=0.0)
    for batch in range(2):
        report = progress.batch(batch)
        for k in range(5):
            report(k, torch.full((3, 1, 2, 2), float(k)))
    assert [c for c, _ in bar.updates] == list(range(1, 11))
    assert bar.updates[-1][1] == {"mean E": 16.0}
