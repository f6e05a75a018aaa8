"""`ebmctl compose`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Group
from rich.table import Table

from ebmctl.cli.common import (
    SEED_MAX,
    check_number,
    emit,
    examples,
    kv_table,
    options,
    split_list,
    with_notes,
)
from ebmctl.services.compose import ComposeOptions, ComposeResult
from ebmctl.services.compose import compose as run_compose

HELP = ("Sample compositions of concepts: CLEL attribute latents (--attrs) or independently trained conditional "
        "EBMs (--runs); an attribute judge reports how many samples show each requested attribute.")

EPILOG = examples(
    "ebmctl compose --attrs circle,red",
    "ebmctl compose --attrs young,female --n 64 --steps 600",
    "ebmctl compose --attrs young,-smiling --beta 0.05",
    "ebmctl compose --runs runs/icd-smiling-20260101-120000,runs/icd-young-20260101-130000",
    "ebmctl compose --runs RUN_A,-RUN_B --alpha 0.5",
    "ebmctl compose --runs RUN_A,RUN_B --op or",
)


def compose(
    ctx: typer.Context,
    attrs: Annotated[str | None, typer.Option(
        "--attrs", help="Attributes to compose on a clel run, comma-separated; -NAME asks for its absence.")] = None,
    runs: Annotated[str | None, typer.Option(
        "--runs", help="Conditional runs to compose: RUN, -RUN (negated), RUN@LABEL (a class, or 0/1).")] = None,
    run: Annotated[str, typer.Option("--run", "-r", help="The clel run of --attrs: a directory, checkpoint or "
                                     "latest.")] = "latest",
    op: Annotated[str, typer.Option("--op", help="How --runs combine: and (sum of energies) or or (soft-min).")] = "and",
    n: Annotated[int, typer.Option("--n", help="Number of samples.", min=1, max=1_000_000)] = 64,
    steps: Annotated[int | None, typer.Option("--steps", help="Langevin steps (default: the run's sample.steps).",
                                              min=1, max=1_000_000)] = None,
    step_size: Annotated[float | None, typer.Option(
        "--step-size", help="Step size (default: the run's, divided by the number of models).")] = None,
    noise: Annotated[float | None, typer.Option("--noise", help="Langevin noise (default: the run's).")] = None,
    beta: Annotated[float | None, typer.Option(
        "--beta", help="Weight of the latent terms of E(x|A) (default: the run's method.guidance).", min=0)] = None,
    alpha: Annotated[float, typer.Option("--alpha", help="Weight of negated runs.", min=0)] = 1.0,
    no_baseline: Annotated[bool, typer.Option("--no-baseline", help="Skip the unconditional baseline.")] = False,
    no_judge: Annotated[bool, typer.Option("--no-judge", help="Skip the attribute judge.")] = False,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the chains.", min=0, max=SEED_MAX)] = 0,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Chains sampled at once.", min=1)] = 128,
    no_ema: Annotated[bool, typer.Option("--no-ema", help="Use the raw weights, not the EMA.")] = False,
    out: Annotated[str | None, typer.Option("--out", help="Output folder: an absolute path, or taken relative to the "
        "directory of the clel run (or of the first of --runs) and kept inside it (default: <run>/compose/<timestamp>).")] = None,
) -> None:
    opts = options(ctx)
    check_number("--step-size", step_size, positive=True)
    check_number("--noise", noise, minimum=0)
    check_number("--beta", beta, minimum=0)
    check_number("--alpha", alpha, minimum=0)
    copts = ComposeOptions(attrs=split_list(attrs), runs=split_list(runs), op=op, n=n, steps=steps,
                           step_size=step_size, noise=noise, beta=beta, alpha=alpha, baseline=not no_baseline,
                           judge=not no_judge, seed=seed, batch_size=batch_size, ema=not no_ema, out=out)
    result = run_compose(run, copts, runs_root=opts.runs, outputs=opts.outputs, device=opts.device, cli_data_root=opts.data_root,
                         reporter=opts.reporter())
    emit(opts, result.to_dict(), _table(result))


def _table(result: ComposeResult) -> Group | Table:
    concepts = " & ".join(c.label for c in result.concepts)
    title = f"{concepts}: {result.n} samples, {result.steps} steps ({result.route})"
    files = [f"{name}: {path}" for name, path in result.files.items() if name != "samples"]
    if not result.rows:
        rows = [("judge", result.judge), *((name, path) for name, path in result.files.items())]
        return kv_table(title, rows)
    table = Table(title=title, title_justify="left")
    has_base = any("unconditional" in r for r in result.rows)
    table.add_column("attribute")
    table.add_column("wanted")
    table.add_column("composed", justify="right")
    if has_base:
        table.add_column("unconditional", justify="right")
    table.add_column("judge acc.", justify="right")
    for r in result.rows:
        wanted = "-" if r["present"] is None else ("present" if r["present"] else "absent")
        cells = [r["attribute"], wanted, f"{r['composed']:.3f}"]
        if has_base:
            cells.append(f"{r['unconditional']:.3f}" if "unconditional" in r else "")
        cells.append(f"{r['judge_accuracy']:.3f}" if r.get("judge_accuracy") is not None else "")
        table.add_row(*cells)
    table.caption = "fraction of samples the attribute judge sees as wanted ('all': every attribute at once)"
    first = result.rows[0]
    abstained = f"{first['composed_abstained']} of {result.n} composed samples"
    if "unconditional_abstained" in first:
        abstained += f" and {first['unconditional_abstained']} of {result.n} unconditional ones"
    notes = [f"judge: {result.judge}; it abstained on {abstained} (not recognised as images of its dataset; "
             "they count as not matching)", *files]
    return with_notes(table, *notes)
