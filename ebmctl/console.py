"""The stderr console: progress and messages. Results go to stdout, everything else here.

On a terminal progress is a live bar fitted to the terminal's width; anywhere else (a log file, a batch job,
``nohup``) it is a plain line every few seconds that is never cut.
"""

from __future__ import annotations

import os
import time
from typing import Any

from rich.console import Console
from rich.progress import Progress, ProgressColumn, Task
from rich.text import Text

stderr = Console(stderr=True, highlight=False, emoji=False)
stdout = Console(highlight=False, soft_wrap=True, emoji=False)

DEFAULT_LINE_SECONDS = 30.0  # seconds between progress lines when stderr is not a terminal
LIVE_LABEL_WIDTH = 16  # longer labels get a line of their own above the live bar
MIN_BAR_WIDTH = 6
MAX_BAR_WIDTH = 40


def line_seconds() -> float:
    """Seconds between progress lines off a terminal: ``$EBMCTL_PROGRESS_EVERY`` or the default."""
    try:
        value = float(os.environ.get("EBMCTL_PROGRESS_EVERY", DEFAULT_LINE_SECONDS))
    except ValueError:
        return DEFAULT_LINE_SECONDS
    return value if value > 0 else DEFAULT_LINE_SECONDS


def fmt_value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1e3 else f"{value:.0f}"
    return str(value)


def fmt_duration(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "-:--:--"
    seconds = round(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Rate:
    """Units per second since the first update (units done before it, e.g. by a resumed run, do not count)."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.first: int | None = None

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def mark(self, completed: int) -> None:
        """Note an update: the first one starts the clock."""
        if self.first is None:
            self.first = completed
            self.started = time.perf_counter()

    def per_second(self, completed: int) -> float | None:
        if self.first is None:
            return None
        done, seconds = completed - self.first, self.elapsed()
        return done / seconds if done > 0 and seconds > 0 else None

    def eta(self, completed: int, total: int) -> float | None:
        rate = self.per_second(completed)
        return (total - completed) / rate if rate else None


def status_parts(completed: int, total: int, unit: str, fields: dict[str, Any], rate: float | None,
                 elapsed: float, eta: float | None) -> list[tuple[int, str]]:
    """The pieces of a progress report with their priority (0: always shown; higher: dropped first)."""
    parts = [(0, f"{completed}/{total} {unit}s")]
    for i, (name, value) in enumerate(fields.items()):
        if value is not None:
            parts.append((1 if i < 2 else 3, f"{name} {fmt_value(value)}"))
    if rate is not None:
        name = "it" if unit == "step" else unit + "s"
        shown = f"{rate:.3g} {name}/s" if rate >= 1 else f"{1 / rate:.3g} s/{'it' if unit == 'step' else unit}"
        parts.append((2, shown))
    parts.append((4, f"elapsed {fmt_duration(elapsed)}"))
    parts.append((0, f"eta {fmt_duration(eta)}"))
    return parts


def fit(parts: list[tuple[int, str]], width: int) -> str:
    """The pieces in order, dropping the least important ones until the line fits ``width``."""
    kept = list(parts)
    while len("  ".join(p for _, p in kept)) > width and any(level > 0 for level, _ in kept):
        worst = max(level for level, _ in kept)
        drop = max(i for i, (level, _) in enumerate(kept) if level == worst)
        kept.pop(drop)
    return "  ".join(p for _, p in kept)


class _BarLine(ProgressColumn):
    """The whole live line: label, a bar, step/total, the task's figures, the rate and the ETA, fitted to the
    terminal's width (the bar shrinks first, then the least important figures go)."""

    def __init__(self, handle: _LiveProgress) -> None:
        super().__init__()
        self.handle = handle

    def render(self, task: Task) -> Text:
        h = self.handle
        completed = int(task.completed)
        width = h.console.width - 1
        room = width - len(h.description) - MIN_BAR_WIDTH - 2
        parts = status_parts(completed, h.total, h.unit, h.fields, h.rate.per_second(completed), h.rate.elapsed(),
                             h.rate.eta(completed, h.total))
        status = fit(parts, room)
        bar_width = max(MIN_BAR_WIDTH, min(MAX_BAR_WIDTH, width - len(h.description) - len(status) - 2))
        filled = round(bar_width * completed / h.total) if h.total else bar_width
        line = Text(no_wrap=True, overflow="ellipsis")
        line.append(h.description + " ", style="bold")
        line.append("━" * filled, style="magenta")
        line.append("━" * (bar_width - filled), style="grey23")
        line.append(" " + status, style="cyan")
        return line


class _LiveProgress:
    """A Rich bar on one line; a long label goes on its own line above it."""

    def __init__(self, label: str, total: int, unit: str, fields: tuple[str, ...], console: Console) -> None:
        self.console, self.total, self.unit = console, total, unit
        self.fields: dict[str, Any] = dict.fromkeys(fields)
        self.rate = Rate()
        self.label = label
        self.description = label if len(label) <= LIVE_LABEL_WIDTH else label.split()[0][:LIVE_LABEL_WIDTH]
        self.progress = Progress(_BarLine(self), console=console, transient=False, refresh_per_second=4)
        self.task = self.progress.add_task(self.description, total=total)

    def update(self, completed: int, **fields: Any) -> None:
        self.fields.update({k: v for k, v in fields.items() if v is not None})
        self.rate.mark(completed)
        self.progress.update(self.task, completed=completed)

    def __enter__(self) -> _LiveProgress:
        if self.description != self.label:
            self.console.print(Text(self.label, style="bold"), soft_wrap=True)
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()


class _LineProgress:
    """Plain lines for logs: one at the start, one every ``every`` seconds, one at the end; never cut."""

    def __init__(self, label: str, total: int, unit: str, fields: tuple[str, ...], console: Console,
                 every: float) -> None:
        self.label, self.total, self.unit, self.console, self.every = label, total, unit, console, every
        self.fields: dict[str, Any] = dict.fromkeys(fields)
        self.rate = Rate()
        self.completed = 0
        self.last_line = float("-inf")
        self.last_written: int | None = None

    def _write(self) -> None:
        completed = self.completed
        parts = status_parts(completed, self.total, self.unit, self.fields, self.rate.per_second(completed),
                             self.rate.elapsed(), self.rate.eta(completed, self.total))
        percent = f" ({100 * completed / self.total:.0f}%)" if self.total else ""
        parts[0] = (0, parts[0][1] + percent)
        self.console.file.write(f"{self.label}: {'  '.join(p for _, p in parts)}\n")
        self.console.file.flush()
        self.last_line, self.last_written = time.perf_counter(), completed

    def update(self, completed: int, **fields: Any) -> None:
        self.fields.update({k: v for k, v in fields.items() if v is not None})
        self.completed = completed
        self.rate.mark(completed)
        if time.perf_counter() - self.last_line >= self.every:
            self._write()

    def __enter__(self) -> _LineProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.last_written != self.completed:
            self._write()


class _QuietProgress:
    def update(self, completed: int, **fields: Any) -> None:
        return None

    def __enter__(self) -> _QuietProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class RichReporter:
    """Progress and messages on stderr; silent with ``quiet``. ``every``: seconds between progress lines when
    stderr is not a terminal (default :func:`line_seconds`)."""

    def __init__(self, quiet: bool = False, console: Console | None = None, every: float | None = None) -> None:
        self.quiet = quiet
        self.console = console or stderr
        self.every = every if every is not None else line_seconds()
        self.started = time.perf_counter()

    def info(self, message: str) -> None:
        if not self.quiet:
            self.console.print(f"[dim]·[/dim] {message}", markup=True, highlight=False, soft_wrap=True)

    def warn(self, message: str) -> None:
        self.console.print(f"[yellow]warning:[/yellow] {message}", soft_wrap=True)

    def progress(self, label: str, total: int, *, unit: str = "step", fields: tuple[str, ...] = ()) -> Any:
        if self.quiet:
            return _QuietProgress()
        if self.console.is_terminal:
            return _LiveProgress(label, total, unit, fields, self.console)
        return _LineProgress(label, total, unit, fields, self.console, self.every)
