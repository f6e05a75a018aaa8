"""Metrics loggers beside the files a run writes: ``train.loggers = ["tensorboard"]`` logs the scalars of
metrics.jsonl and the negatives grids to TensorBoard. With no loggers nothing is imported or written."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Protocol

from torch import Tensor

from ebmctl.errors import SpecError

TENSORBOARD_DIR = "tensorboard"


class MetricsLogger(Protocol):
    def scalars(self, record: dict[str, Any]) -> None: ...

    def images(self, tag: str, step: int, x: Tensor) -> None: ...

    def event(self, record: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


def _summary_writer() -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise SpecError("train.loggers names tensorboard, which is not installed",
                        "pip install 'ebmctl[tensorboard]' (or pip install tensorboard), or drop the logger: "
                        "--set train.loggers=[]") from None
    return SummaryWriter


class TensorBoardLogger:
    """Scalars under ``train/<metric>``, negatives grids under ``samples/<tag>``, guard events as text, in
    ``<run>/tensorboard``. Every write is flushed, so a killed run loses nothing it logged; a resumed run
    drops what was logged after the step it resumes from."""

    def __init__(self, run_dir: Path, start_step: int) -> None:
        writer = _summary_writer()
        self.writer = writer(log_dir=str(run_dir / TENSORBOARD_DIR), purge_step=start_step if start_step else None)

    def scalars(self, record: dict[str, Any]) -> None:
        step = int(record["step"])
        for key, value in record.items():
            if key != "step" and isinstance(value, (int, float)) and math.isfinite(value):
                self.writer.add_scalar(f"train/{key}", value, step)
        self.writer.flush()

    def images(self, tag: str, step: int, x: Tensor) -> None:
        if x.dim() != 4:  # 2D points: no picture to log
            return
        from torchvision.utils import make_grid

        from ebmctl.services.runtime.pictures import grid_columns

        cols, shown = grid_columns(len(x))
        grid = make_grid(x[:shown].detach().float().cpu().clamp(0, 1), nrow=cols, padding=2, pad_value=1.0)
        self.writer.add_image(f"samples/{tag}", grid, step)
        self.writer.flush()

    def event(self, record: dict[str, Any]) -> None:
        self.writer.add_text(f"events/{record.get('event', 'event')}", json.dumps(record), int(record["step"]))
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class Loggers:
    """All of a run's loggers as one (none: every call does nothing)."""

    def __init__(self, loggers: list[MetricsLogger] | None = None) -> None:
        self.loggers = loggers or []

    def scalars(self, record: dict[str, Any]) -> None:
        for logger in self.loggers:
            logger.scalars(record)

    def images(self, tag: str, step: int, x: Tensor) -> None:
        for logger in self.loggers:
            logger.images(tag, step, x)

    def event(self, record: dict[str, Any]) -> None:
        for logger in self.loggers:
            logger.event(record)

    def close(self) -> None:
        for logger in self.loggers:
            logger.close()
        self.loggers = []


def check_loggers(names: list[str]) -> None:
    """Fail before any work when a named logger cannot run here."""
    if "tensorboard" in names:
        _summary_writer()


def open_loggers(names: list[str], run_dir: Path, start_step: int) -> Loggers:
    return Loggers([TensorBoardLogger(run_dir, start_step) for name in names if name == "tensorboard"])
