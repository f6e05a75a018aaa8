"""`ebmctl presets list|show NAME`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich import box
from rich.syntax import Syntax
from rich.table import Table

from ebmctl.cli.common import emit, examples, options
from ebmctl.console import stdout
from ebmctl.services.presets import list_presets, show_preset

app = typer.Typer(help="List the named presets and show what one sets.", no_args_is_help=True,
                  epilog=examples("ebmctl presets list", "ebmctl presets show quickstart"))


@app.command("list", epilog=examples("ebmctl presets list", "ebmctl --json presets list"))
def list_(ctx: typer.Context) -> None:
    """List every preset with its method, dataset and what it reproduces."""
    opts = options(ctx)
    items = list_presets()
    table = Table(title="presets", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("name", "method", "data"):
        table.add_column(col, no_wrap=True)
    table.add_column("summary", ratio=1)
    for p in items:
        table.add_row(p.name, p.method, p.data, p.summary)
    emit(opts, {"presets": [p.to_dict() for p in items]}, table)


@app.command("show", epilog=examples("ebmctl presets show icd-cifar10", "ebmctl --json presets show quickstart"))
def show(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Preset name or path to a .toml file.")]) -> None:
    """Print a preset file (its header says what it reproduces) and, with --json, the full spec."""
    opts = options(ctx)
    doc = show_preset(name)
    if opts.json:
        emit(opts, doc)
    else:
        stdout.print(Syntax(doc["text"], "toml", theme="ansi_dark", background_color="default"))
