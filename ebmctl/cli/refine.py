"""`ebmctl refine`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Group
from rich.table import Table

from ebmctl.cli.common import SEED_MAX, emit, examples, options, run_for_outputs, with_notes
from ebmctl.services.refine import RefineOptions, RefineResult
from ebmctl.services.refine import refine as run_refine

HELP = ("Refine generator samples with a Hat EBM: draw G(z), run its Langevin sampler on (y, z), and compare "
        "FID/KID before and after, with before/after grids and the chains (x, G(z), magnified y).")

EPILOG = examples(
    "ebmctl refine",
    "ebmctl refine --n 500 --steps 100",
    "ebmctl refine --run runs/hat-refine-cifar10-20260101-120000 --n 10000",
    "ebmctl --json refine --no-fid --n 16",
)


def refine(
    ctx: typer.Context,
    run: Annotated[str, typer.Option("--run", "-r", help="Hat EBM run directory, model checkpoint, or latest.")] = "latest",
    n: Annotated[int | None, typer.Option("--n", help="Samples to refine (default: the run's sample.n).", min=1,
                                          max=1_000_000)] = None,
    steps: Annotated[int | None, typer.Option(
        "--steps", help="Langevin steps (default: the run's sample.steps, the training chains' length).", min=1,
        max=1_000_000)] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the latents and the chains.", min=0, max=SEED_MAX)] = 0,
    no_fid: Annotated[bool, typer.Option("--no-fid", help="Skip FID/KID (pictures only).")] = False,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Chains run at once.", min=1)] = 128,
    chains: Annotated[int, typer.Option("--chains", help="Chains shown in chains.png.", min=1, max=64)] = 8,
    snapshots: Annotated[int, typer.Option("--snapshots", help="Columns of chains.png.", min=2, max=64)] = 8,
    out: Annotated[str | None, typer.Option("--out", help="Output folder: an absolute path, or taken relative to the run directory and kept "
        "inside it "
        "(default: <run>/refine/<timestamp>).")] = None,
) -> None:
    opts = options(ctx)
    ropts = RefineOptions(n=n, steps=steps, seed=seed, fid=not no_fid, batch_size=batch_size, chains=chains,
                          snapshots=snapshots, out=out)
    ref = run_for_outputs(opts, run, "refine", out)
    result = run_refine(ref, ropts, device=opts.device, cli_data_root=opts.data_root,
                        reporter=opts.reporter())
    emit(opts, result.to_dict(), _table(result))


def _table(result: RefineResult) -> Group:
    table = Table(title=f"{result.n} samples refined with {result.steps} steps in {result.seconds:.1f} s",
                  title_justify="left")
    for col in ("metric", "before (G(z))", "after (G(z) + y)"):
        table.add_column(col, justify="left" if col == "metric" else "right")
    for key in ("fid", "kid_mean", "kid_std", "precision", "recall", "judge_confident"):
        if result.before.get(key) is not None:
            table.add_row(key, f"{result.before[key]:.4g}", f"{result.after[key]:.4g}")
    m = result.motion
    table.add_row("mean ||z - z0||", "", f"{m['latent_move']:.4g}")
    table.add_row("mean ||y||", "", f"{m['residual_norm']:.4g}")
    extractor = result.before.get("extractor")
    table.caption = f"features: {extractor}" if extractor else None
    return with_notes(table, f"pictures in {result.out_dir}")
