"""`ebmctl train`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ebmctl.cli.common import GlobalOptions, emit, examples, kv_table, options
from ebmctl.console import stdout
from ebmctl.errors import SpecError, UsageError
from ebmctl.recipes import resolve_spec, spec_to_json, validate_spec
from ebmctl.run_lock import held_error, holder
from ebmctl.runs import SPEC_JSON, STATE_CKPT, read_json, resolve_run, run_to_resume
from ebmctl.services import train as service
from ebmctl.services.runtime.distributed.environment import env_rank, launched
from ebmctl.services.runtime.distributed.launcher import check_launch
from ebmctl.services.runtime.distributed.launcher import launch as launch_processes
from ebmctl.services.runtime.distributed.processes import check_batches
from ebmctl.services.runtime.distributed.rank_state import check_world
from ebmctl.specs import deep_merge, parse_override, set_path

HELP = "Train a model from a preset (or spec file) with overrides; resume an interrupted run."

EPILOG = examples(
    "ebmctl train --preset quickstart",
    "ebmctl train --preset icd-cifar10 --data-root ~/data --set train.steps=2",
    "ebmctl train --preset icd-cifar10 --set method.kl=false --print-spec",
    "ebmctl train --resume",
    "ebmctl train --resume runs/quickstart-20260101-120000 --set train.steps=5000",
    "ebmctl train --preset icd-cifar10 --data-root ~/data --nproc 4",
    "torchrun --nproc-per-node 4 -m ebmctl train --preset icd-cifar10 --data-root ~/data",
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
    nproc: Annotated[int | None, typer.Option(
        "--nproc", help="Train data-parallel on N processes on this machine (one GPU each, or N CPU processes with "
        "--device cpu); train.batch_size is the global batch. Starts torchrun's launcher.", show_default=False)] = None,
) -> None:
    opts = options(ctx)
    extra = {k: v for k, v in {"train.steps": steps, "seed": seed, "data.download": download or None}.items() if v is not None}
    if nproc is not None:
        if launched():
            raise UsageError("--nproc starts its own processes, but this one was started as one of several",
                             "drop --nproc when launching with torchrun")
        check_launch(nproc, opts.device)
    launch = nproc if nproc is not None and nproc > 1 and not print_spec else 0  # processes to start

    def worker_args(head: list[str]) -> list[str]:
        return _worker_args(opts, head, overrides or [], steps, seed, download)
    if resume:
        if preset:
            raise UsageError("--resume continues a run with its own spec; --preset does not apply",
                             "drop --preset, or start a new run without --resume")
        tree: dict = {}
        for item in overrides or []:
            set_path(tree, *parse_override(item))
        for path, value in extra.items():
            set_path(tree, path, value)
        run_dir = resolve_run(run, opts.runs).run_dir if run else run_to_resume(opts.runs)
        if print_spec:
            raise UsageError("--print-spec prints a new spec; a resumed run keeps its spec.json", f"see {run_dir}/spec.json")
        _check_resume_overrides(run_dir, tree)
        if launch:
            if (who := holder(run_dir)) is not None:  # the processes would each be refused: refuse once, here
                raise held_error(run_dir, who)
            check_world(run_dir, launch)
            check_batches(validate_spec(deep_merge(read_json(run_dir / SPEC_JSON), tree)), launch)
            raise typer.Exit(launch_processes(launch, worker_args(["--resume", str(run_dir)]), debug=opts.debug))
        result = service.resume(run_dir, overrides=tree, device=opts.device, cli_data_root=opts.data_root,
                                reporter=opts.reporter())
    else:
        if run:
            raise UsageError(f"unexpected argument {run!r}", "a run is only given with --resume")
        spec = resolve_spec(preset or "quickstart", overrides or [], extra)
        if print_spec:
            stdout.print_json(data=spec_to_json(spec))
            return
        if launch:
            check_batches(spec, launch)
            raise typer.Exit(launch_processes(launch, worker_args(["--preset", preset] if preset else []),
                                                debug=opts.debug))
        result = service.train(spec, runs_root=opts.runs, device=opts.device, cli_data_root=opts.data_root,
                               reporter=opts.reporter())
    if env_rank() == 0:  # the other processes of a data-parallel run stay quiet
        emit(opts, result.to_dict(), _table(result))


def _check_resume_overrides(run_dir: Path, tree: dict[str, Any]) -> None:
    """Refuse overrides a resume cannot apply, and bad values, before the run directory is touched."""
    def paths(node: dict[str, Any], prefix: str = "") -> list[str]:
        return [p for k, v in node.items() for p in (paths(v, f"{prefix}{k}.") if isinstance(v, dict) else [prefix + k])]

    for path in paths(tree):
        if not any(path == k or path.startswith(k + ".") for k in service.RESUMABLE_KEYS):
            raise SpecError(f"cannot change {path} when resuming", f"only {', '.join(service.RESUMABLE_KEYS)} may "
                            "change; start a new run for anything else")
    if tree:
        validate_spec(deep_merge(read_json(run_dir / SPEC_JSON), tree))


def _worker_args(opts: GlobalOptions, head: list[str], overrides: list[str], steps: int | None, seed: int | None,
                 download: bool) -> list[str]:
    """The command line each process of ``--nproc`` runs: this one without ``--nproc``, the run resolved."""
    out = ["--device", opts.device, "--runs-dir", str(opts.runs)]
    out += ["--threads", str(opts.threads)] if opts.threads else []
    out += ["--data-root", opts.data_root] if opts.data_root else []
    out += ["--progress-every", str(opts.progress_every)] if opts.progress_every else []
    out += [flag for flag, on in (("--json", opts.json), ("--quiet", opts.quiet), ("--debug", opts.debug)) if on]
    out += ["train", *head]
    for item in overrides:
        out += ["--set", item]
    out += ["--steps", str(steps)] if steps is not None else []
    out += ["--seed", str(seed)] if seed is not None else []
    out += ["--download"] if download else []
    return out


def _table(result: service.TrainResult) -> Table:
    rows = [("run", str(result.run_dir)), ("steps", f"{result.step}/{result.total_steps} in {result.seconds:.1f} s")]
    rows += [(key, f"{result.final[key]:.4g}") for key in ("loss", "e_pos", "e_neg", "gap", "images_per_s")
             if key in result.final]
    if result.rollbacks:
        rows.append(("rollbacks", f"{result.rollbacks} (see guard_events in run.json)"))
    rows += [("checkpoint", str(result.run_dir / "checkpoints" / "model.safetensors")),
             ("resume state", str(result.run_dir / STATE_CKPT)),
             ("next", result.next_command or f"ebmctl sample --run {result.run_dir}")]
    return kv_table(f"trained {result.run_dir.name}", rows)
