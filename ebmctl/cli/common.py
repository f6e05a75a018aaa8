"""What every command shares: global options, the reporter, rendering results."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from ebmctl.console import RichReporter, stdout
from ebmctl.errors import SpecError, UsageError
from ebmctl.runs import RunRef, check_outputs, output_base, outputs_root, resolve_run, runs_root

SEED_MAX = 2**31 - 1  # the largest seed a spec takes (seed of a run)


@dataclass
class GlobalOptions:
    device: str = "auto"
    threads: int | None = None
    runs_dir: str | None = None
    outputs_dir: str | None = None
    data_root: str | None = None
    json: bool = False
    quiet: bool = False
    debug: bool = False
    progress_every: float | None = None

    @property
    def runs(self):
        return runs_root(self.runs_dir)

    @property
    def outputs(self) -> Path | None:
        return outputs_root(self.outputs_dir)

    def reporter(self) -> RichReporter:
        return RichReporter(quiet=self.quiet, every=self.progress_every)


def options(ctx: typer.Context) -> GlobalOptions:
    root = ctx.find_root()
    if not isinstance(root.obj, GlobalOptions):
        root.obj = GlobalOptions()
    return root.obj


def run_for_outputs(opts: GlobalOptions, run: str, command: str, out: str | None, option: str = "--out") -> RunRef:
    """The run ``--run`` names, once its outputs are known to be writable where they go (before any work)."""
    ref = resolve_run(run, opts.runs, opts.outputs)
    check_outputs(output_base(ref), command, out, option)
    return ref


def emit(opts: GlobalOptions, doc: dict[str, Any], table: Table | Group | str | None = None) -> None:
    """Print the result: JSON with --json, else the table (or text) on stdout."""
    if opts.json:
        stdout.print_json(json.dumps(doc, default=str))
    elif table is not None:
        stdout.print(table)


def check_number(option: str, value: float | None, *, minimum: float | None = None, positive: bool = False) -> None:
    """Refuse NaN, infinities, and values below ``minimum`` (or not above 0 with ``positive``) of a float option."""
    if value is None:
        return
    low_ok = (value > 0 if positive else True) and (minimum is None or value >= minimum)
    if math.isfinite(value) and low_ok:
        return
    bound = " above 0" if positive else (f" of at least {minimum:g}" if minimum is not None else "")
    raise UsageError(f"{option} must be a finite number{bound}, got {value:g}",
                     f"leave {option} out for the run's own value" if option != "--alpha" else "e.g. --alpha 0.5")


def check_datasets(option: str, names: list[str], split: str | None = None) -> None:
    """Refuse an unknown dataset name (with a suggestion) or a split that one of ``names`` lacks."""
    from ebmctl.data.registry import dataset_entry

    for name in names:
        try:
            splits = dataset_entry(name).splits
        except SpecError as exc:
            raise UsageError(f"{option}: {exc.message}", exc.hint) from None
        if split is not None and split not in splits:
            raise UsageError(f"--split {split!r}: {name} has no such split", f"use one of: {', '.join(splits)}")


def split_list(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def examples(*lines: str) -> str:
    """An epilog of examples for --help (Rich markup; blank lines keep one command per line)."""
    return "[bold]Examples[/bold]\n\n" + "\n\n".join(f"  [cyan]{line}[/cyan]" for line in lines)


def wrap_at_breaks(text: str, width: int) -> list[str]:
    """``text`` in lines of at most ``width`` characters, broken only after a '/' or at a space, so that file
    and directory names stay whole (a name longer than ``width`` alone is folded)."""
    lines, line = [], ""
    for token in re.split(r"(?<=[/ ])", text):
        if line and len(line) + len(token.rstrip()) > width:
            lines.append(line.rstrip())
            line = ""
        while len(token.rstrip()) > width:
            lines.append(token[:width])
            token = token[width:]
        line += token
    if line.strip() or not lines:
        lines.append(line.rstrip())
    return lines


class Breakable:
    """Text (a path, a command) that wraps only after '/' or at spaces, in a table cell or on its own."""

    def __init__(self, text: str, style: str = "") -> None:
        self.text, self.style = str(text), style

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        longest = max((len(t.rstrip()) for t in re.split(r"(?<=[/ ])", self.text)), default=0)
        return Measurement(min(longest, options.max_width), min(len(self.text), options.max_width))

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        for line in wrap_at_breaks(self.text, options.max_width):
            yield Text(line, style=self.style, no_wrap=True, overflow="fold")


def with_notes(table: Table, *notes: str) -> Group:
    """The table followed by lines of notes (paths and all) that wrap at '/' and spaces only."""
    return Group(table, *(Breakable(note) for note in notes if note))


def kv_table(title: str, rows: list[tuple[str, str]]) -> Table:
    """A two-column key/value table whose values wrap after '/' and at spaces, never inside a name."""
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("key", style="bold", no_wrap=True)
    table.add_column("value")
    for key, value in rows:
        table.add_row(key, Breakable(value))
    return table
