"""What every command shares: global options, the reporter, rendering results."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import typer
from rich.table import Table

from ebmctl.console import RichReporter, stdout
from ebmctl.runs import runs_root


@dataclass
class GlobalOptions:
    device: str = "auto"
    threads: int | None = None
    runs_dir: str | None = None
    data_root: str | None = None
    json: bool = False
    quiet: bool = False
    debug: bool = False

    @property
    def runs(self):
        return runs_root(self.runs_dir)

    def reporter(self) -> RichReporter:
        return RichReporter(quiet=self.quiet)


def options(ctx: typer.Context) -> GlobalOptions:
    root = ctx.find_root()
    if not isinstance(root.obj, GlobalOptions):
        root.obj = GlobalOptions()
    return root.obj


def emit(opts: GlobalOptions, doc: dict[str, Any], table: Table | str | None = None) -> None:
    """Print the result: JSON with --json, else the table (or text) on stdout."""
    if opts.json:
        stdout.print_json(json.dumps(doc, default=str))
    elif table is not None:
        stdout.print(table)


def split_list(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def examples(*lines: str) -> str:
    """An epilog of examples for --help (Rich markup; blank lines keep one command per line)."""
    return "[bold]Examples[/bold]\n\n" + "\n\n".join(f"  [cyan]{line}[/cyan]" for line in lines)


def kv_table(title: str, rows: list[tuple[str, str]]) -> Table:
    """A two-column key/value table whose values wrap instead of being cut (paths stay whole)."""
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("key", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")
    for key, value in rows:
        table.add_row(key, value)
    return table
