"""The stderr console: Rich progress bars and messages. Results go to stdout, everything else here."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

stderr = Console(stderr=True, highlight=False, emoji=False)
stdout = Console(highlight=False, soft_wrap=True, emoji=False)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1e3 else f"{value:.0f}"
    return str(value)


class FieldsColumn(ProgressColumn):
    """The task's named figures (loss, E+, E-, gap, img/s ...) as ``name value`` pairs."""

    def __init__(self, names: tuple[str, ...]) -> None:
        super().__init__()
        self.names = names

    def render(self, task: Task) -> Text:
        parts = [f"{n} {_fmt(task.fields.get(n))}" for n in self.names if n in task.fields]
        return Text(" ".join(parts), style="cyan", no_wrap=True, overflow="ellipsis")


class _RichProgress:
    def __init__(self, label: str, total: int, unit: str, fields: tuple[str, ...], console: Console) -> None:
        columns = [
            TextColumn("[bold]{task.description}"),
            BarColumn(bar_width=20),
            MofNCompleteColumn(),
            TextColumn(unit + "s"),
            FieldsColumn(fields),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
        ]
        if fields:  # leave room for the figures
            columns[1] = BarColumn(bar_width=12)
        self.progress = Progress(*columns, console=console, transient=False, refresh_per_second=4)
        self.task = self.progress.add_task(label, total=total)

    def update(self, completed: int, **fields: Any) -> None:
        self.progress.update(self.task, completed=completed, **{k: v for k, v in fields.items() if v is not None})

    def __enter__(self) -> _RichProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()


class _QuietProgress:
    def update(self, completed: int, **fields: Any) -> None:
        return None

    def __enter__(self) -> _QuietProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class RichReporter:
    """Progress bars and messages on stderr; silent with ``quiet``."""

    def __init__(self, quiet: bool = False, console: Console | None = None) -> None:
        self.quiet = quiet
        self.console = console or stderr
        self.started = time.perf_counter()

    def info(self, message: str) -> None:
        if not self.quiet:
            self.console.print(f"[dim]·[/dim] {message}", markup=True, highlight=False)

    def warn(self, message: str) -> None:
        self.console.print(f"[yellow]warning:[/yellow] {message}")

    def progress(self, label: str, total: int, *, unit: str = "step", fields: tuple[str, ...] = ()) -> Any:
        if self.quiet:
            return _QuietProgress()
        return _RichProgress(label, total, unit, fields, self.console)
