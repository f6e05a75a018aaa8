"""`ebmctl sample`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ebmctl.cli.common import SEED_MAX, check_number, emit, examples, kv_table, options, run_for_outputs
from ebmctl.services.sample import SampleOptions, SampleResult
from ebmctl.services.sample import sample as run_sample

HELP = "Draw samples from a trained run (EMA weights where kept); optionally FID, KID and precision/recall."

EPILOG = examples(
    "ebmctl sample",
    "ebmctl sample --steps 600 --n 64",
    "ebmctl sample --run runs/icd-cifar10-20260101-120000 --n 1000 --fid",
    "ebmctl sample --schedule chains --steps 1000 --aug-every 20 --plain-steps 0",
    "ebmctl sample --init buffer --steps 100 --out my-samples",
    "ebmctl sample --class circle --n 64",
    "ebmctl sample --like shapes32:12",
)


def sample(
    ctx: typer.Context,
    run: Annotated[str, typer.Option("--run", "-r", help="Run directory, model checkpoint, or latest.")] = "latest",
    steps: Annotated[int | None, typer.Option("--steps", help="Langevin steps (default: the run's sample.steps).", min=1,
                                              max=1_000_000)] = None,
    n: Annotated[int | None, typer.Option("--n", help="Number of samples (default: the run's sample.n).", min=1,
                                          max=1_000_000)] = None,
    init: Annotated[str | None, typer.Option("--init", help="Start chains from: noise or buffer.")] = None,
    aug_every: Annotated[int | None, typer.Option("--aug-every", help="Augment chains every K steps (0: never).", min=0,
                                                  max=1_000_000)] = None,
    plain_steps: Annotated[int | None, typer.Option("--plain-steps", help="Final steps without augmentation.", min=0,
                                                    max=1_000_000)] = None,
    schedule: Annotated[str | None, typer.Option(
        "--schedule", help="chains (independent chains of --steps) or pool (ICD's released test schedule; the run's "
        "sample.pool* keys); default: the run's sample.schedule.")] = None,
    step_size: Annotated[float | None, typer.Option("--step-size", help="Override the sampler's step size.")] = None,
    noise: Annotated[float | None, typer.Option("--noise", help="Override the sampler's noise.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the chains.", min=0, max=SEED_MAX)] = 0,
    out: Annotated[str | None, typer.Option("--out", help="Output folder: an absolute path, or taken relative to the run "
        "directory and kept inside it (default: <run>/sample/<timestamp>).")] = None,
    no_ema: Annotated[bool, typer.Option("--no-ema", help="Use the raw weights, not the EMA.")] = False,
    fid: Annotated[bool, typer.Option("--fid", help="Report FID, KID and precision/recall against the run's data.")] = False,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Chains sampled at once.", min=1)] = 128,
    like: Annotated[str | None, typer.Option(
        "--like", help="Sample like one image (clel): an image file or DATASET:INDEX (test split).")] = None,
    class_label: Annotated[str | None, typer.Option(
        "--class", help="Sample one class (name or index): clel's class latent or a class-conditional net.")] = None,
    beta: Annotated[float | None, typer.Option(
        "--beta", help="Weight of clel's latent term in E(x|z) (default: the run's method.guidance).", min=0)] = None,
    precision: Annotated[str | None, typer.Option(
        "--precision", help="Energy precision in the sampler: fp32 or bf16 (default: the run's sampler.precision).")] = None,
) -> None:
    opts = options(ctx)
    check_number("--step-size", step_size, positive=True)
    check_number("--noise", noise, minimum=0)
    check_number("--beta", beta, minimum=0)
    sopts = SampleOptions(n=n, steps=steps, init=init, aug_every=aug_every, plain_steps=plain_steps,
                          step_size=step_size, noise=noise, seed=seed, ema=not no_ema, fid=fid, batch_size=batch_size,
                          out=out, like=like, class_label=class_label, beta=beta,
                          precision=precision, schedule=schedule)
    result = run_sample(run_for_outputs(opts, run, "sample", out), sopts, device=opts.device,
                        cli_data_root=opts.data_root, reporter=opts.reporter())
    emit(opts, result.to_dict(), _table(result))


def _table(result: SampleResult) -> Table:
    rows = list(result.files.items())
    m = result.metrics
    if m:
        if m.get("extractor"):
            rows.append(("extractor", str(m.get("extractor"))))
        rows += [(key, f"{m[key]:.4g}") for key in ("fid", "kid_mean", "kid_std", "precision", "recall",
                                                  "judge_confident", "class_accuracy", "judge_test_accuracy")
                 if m.get(key) is not None]
    if result.settings.get("condition"):
        rows.insert(0, ("condition", str(result.settings["condition"])))
    return kv_table(f"{result.n} samples, {result.steps} steps, {result.seconds:.1f} s", rows)
