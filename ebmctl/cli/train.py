"""`ebmctl train`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ebmctl.cli.common import emit, examples, kv_table, options
from ebmctl.console import stdout
from ebmctl.errors import UsageError
from ebmctl.runs import STATE_CKPT, latest_run, resolve_run
from ebmctl.services import train as service
from ebmctl.specs import parse_override, resolve_spec, set_path, spec_to_json

HELP = "Train a model from a preset (or spec file) with overrides; resume an interrupted run."

EPILOG = examples(
    "ebmctl train --preset quickstart",
    "ebmctl train --preset icd-cifar10 --data-root ~/data --set train.steps=2",
    "ebmctl train --preset icd-cifar10 --set method.kl=false --print-spec",
    "ebmctl train --resume",
    "ebmctl train --resume runs/quickstart-20260101-120000 --set train.steps=5000",
)


def train(
    ctx: typer.Context,
    run: Annotated[str | None, typer.Argument(help="With --resume: the run to continue (default: the newest unfinished).",
                                              show_default=False)] = None,
    preset: Annotated[str | None, typer.Option("--preset", "-p", help="Preset name or path to a .toml spec.")] = None,
    overrides: Annotated[list[str] | None, typer.Option("--set", "-s", help="Override a key: --set a.b=value (TOML literal).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue a run from its last checkpoint.")] = False,
    steps: Annotated[int | None, typer.Option("--steps", help="Shortcut for --set train.steps=N.", min=1)] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Shortcut for --set seed=N.", min=0)] = None,
    download: Annotated[bool, typer.Option("--download", help="Let torchvision download a missing dataset.")] = False,
    print_spec: Annotated[bool, typer.Option("--print-spec", help="Print the resolved spec as JSON and exit.")] = False,
) -> None:
    opts = options(ctx)
    extra = {k: v for k, v in {"train.steps": steps, "seed": seed, "data.download": download or None}.items() if v is not None}
    if resume:
        if preset:
            raise UsageError("--resume continues a run with its own spec; --preset does not apply",
                             "drop --preset, or start a new run without --resume")
        run_dir = resolve_run(run, opts.runs).run_dir if run else latest_run(
            opts.runs, statuses=("interrupted", "running", "failed", "diverged"))
        tree: dict = {}
        for item in overrides or []:
            set_path(tree, *parse_override(item))
        for path, value in extra.items():
            set_path(tree, path, value)
        if print_spec:
            raise UsageError("--print-spec prints a new spec; a resumed run keeps its spec.json", f"see {run_dir}/spec.json")
        result = service.resume(run_dir, overrides=tree, device=opts.device, cli_data_root=opts.data_root,
                                reporter=opts.reporter())
    else:
        if run:
            raise UsageError(f"unexpected argument {run!r}", "a run is only given with --resume")
        spec = resolve_spec(preset or "quickstart", overrides or [], extra)
        if print_spec:
            stdout.print_json(data=spec_to_json(spec))
            return
        result = service.train(spec, runs_root=opts.runs, device=opts.device, cli_data_root=opts.data_root,
                               reporter=opts.reporter())
    emit(opts, result.to_dict(), _table(result))


def _table(result: service.TrainResult) -> Table:
    rows = [("run", str(result.run_dir)), ("steps", f"{result.step}/{result.total_steps} in {result.seconds:.1f} s")]
    rows += [(key, f"{result.final[key]:.4g}") for key in ("loss", "e_pos", "e_neg", "gap", "images_per_s")
             if key in result.final]
    rows += [("checkpoint", str(result.run_dir / "checkpoints" / "model.safetensors")),
             ("resume state", str(result.run_dir / STATE_CKPT)),
             ("next", result.next_command or f"ebmctl sample --run {result.run_dir}")]
    return kv_table(f"trained {result.run_dir.name}", rows)
