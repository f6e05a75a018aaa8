"""The ebmctl app: global options, the commands, and the one error boundary."""

from __future__ import annotations

import json
import os
import sys
import traceback
from typing import Annotated

import typer

from ebmctl import __version__
from ebmctl.cli import compose as compose_cmd
from ebmctl.cli import import_release as import_cmd
from ebmctl.cli import ood as ood_cmd
from ebmctl.cli import presets as presets_cmd
from ebmctl.cli import probe as probe_cmd
from ebmctl.cli import refine as refine_cmd
from ebmctl.cli import sample as sample_cmd
from ebmctl.cli import train as train_cmd
from ebmctl.cli.common import GlobalOptions, examples
from ebmctl.console import stderr
from ebmctl.errors import EbmctlError
from ebmctl.services.runtime.stopping import signal_name, signum_of

app = typer.Typer(
    name="ebmctl",
    help="Train, sample, compose, probe and evaluate energy-based models of images (IGEBM, ICD, CLEL, CEBM, "
    "EBCLR, Hat EBM).",
    epilog=examples(
        "ebmctl train --preset quickstart",
        "ebmctl sample",
        "ebmctl ood --in shapes32 --out textures",
        "ebmctl probe --dataset digits",
        "ebmctl refine",
        "ebmctl --json ood --in cifar10 --out svhn",
        "ebmctl presets list",
    ),
    rich_markup_mode="rich",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ebmctl {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")] = "auto",
    threads: Annotated[int | None, typer.Option("--threads", help="Threads for torch and BLAS.", min=1)] = None,
    runs_dir: Annotated[str | None, typer.Option("--runs-dir", help="Where runs live (default ./runs or $EBMCTL_RUNS).")] = None,
    outputs_dir: Annotated[str | None, typer.Option(
        "--outputs-dir", help="Write the outputs of sample, ood, probe, refine and compose under DIR/<run name>/ instead "
        "of the run directory (also $EBMCTL_OUTPUTS); for runs on a read-only disk.")] = None,
    data_root: Annotated[str | None, typer.Option("--data-root", envvar="EBMCTL_DATA",
                                                  help="Directory of real datasets (also $EBMCTL_DATA).")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print results as JSON on stdout.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or messages.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
    progress_every: Annotated[float | None, typer.Option(
        "--progress-every", envvar="EBMCTL_PROGRESS_EVERY", min=0.01, show_default=False,
        help="Seconds between progress lines when stderr is not a terminal (default 30; also "
        "$EBMCTL_PROGRESS_EVERY).")] = None,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Train, sample and evaluate energy-based models of images.

    Global options may also follow the command: `ebmctl train --data-root ~/data` works as well.
    """
    ctx.obj = GlobalOptions(device=device, threads=threads, runs_dir=runs_dir, outputs_dir=outputs_dir,
                            data_root=data_root, json=json_out, quiet=quiet, debug=debug,
                            progress_every=progress_every)
    if threads is not None:
        _set_threads(threads)


def _set_threads(n: int) -> None:
    import torch
    from threadpoolctl import threadpool_limits

    os.environ["OMP_NUM_THREADS"] = str(n)
    torch.set_num_threads(n)
    threadpool_limits(n)


app.command("train", help=train_cmd.HELP, epilog=train_cmd.EPILOG)(train_cmd.train)
app.command("sample", help=sample_cmd.HELP, epilog=sample_cmd.EPILOG)(sample_cmd.sample)
app.command("compose", help=compose_cmd.HELP, epilog=compose_cmd.EPILOG)(compose_cmd.compose)
app.command("ood", help=ood_cmd.HELP, epilog=ood_cmd.EPILOG)(ood_cmd.ood)
app.command("probe", help=probe_cmd.HELP, epilog=probe_cmd.EPILOG)(probe_cmd.probe)
app.command("refine", help=refine_cmd.HELP, epilog=refine_cmd.EPILOG)(refine_cmd.refine)
app.command("import", help=import_cmd.HELP, epilog=import_cmd.EPILOG)(import_cmd.import_)
app.add_typer(presets_cmd.app, name="presets")


GLOBAL_VALUE_OPTIONS = ("--device", "--threads", "--runs-dir", "--outputs-dir", "--data-root", "--progress-every")
GLOBAL_FLAGS = ("--json", "--quiet", "-q", "--debug")


def hoist_global_options(args: list[str]) -> list[str]:
    """Move global options written after the command to the front, so that both
    `ebmctl --data-root D train ...` and `ebmctl train ... --data-root D` work."""
    head: list[str] = []
    i = 0
    while i < len(args) and args[i].startswith("-"):  # global options already in front
        takes_value = args[i] in GLOBAL_VALUE_OPTIONS
        head.extend(args[i : i + 1 + takes_value])
        i += 1 + takes_value
    moved: list[str] = []
    rest: list[str] = []
    while i < len(args):
        token = args[i]
        if token == "--":
            rest.extend(args[i:])
            break
        name = token.split("=", 1)[0]
        if name in GLOBAL_VALUE_OPTIONS and "=" not in token and i + 1 < len(args):
            moved.extend(args[i : i + 2])
            i += 2
            continue
        if name in GLOBAL_VALUE_OPTIONS or token in GLOBAL_FLAGS:
            moved.append(token)
        else:
            rest.append(token)
        i += 1
    return head + moved + rest


def app_commands() -> set[str]:
    return {c.name for c in app.registered_commands} | {g.name for g in app.registered_groups}


def command_of(args: list[str]) -> str | None:
    """The command ``args`` run (global options hoisted in front), e.g. ``train``; None when there is none."""
    i = 0
    while i < len(args) and args[i].startswith("-"):
        i += 1 + (args[i] in GLOBAL_VALUE_OPTIONS)
    return args[i] if i < len(args) else None


# How a command gives a spec setting that gets past an error: `train` takes any with --set, some through their own
# option; `ood` reads its sets with or without checksums; the other commands read data with the run's own settings.
SETTING_SWITCHES = {"train": {"data.download=true": "--download"},
                    "ood": {"data.verify_checksums=false": "--no-verify-checksums"}}


def _hint_for(exc: EbmctlError, command: str | None) -> str | None:
    """The hint of ``exc`` as the command that met it can follow it."""
    if exc.setting is None:
        return exc.hint
    setting, why = exc.setting
    switch = SETTING_SWITCHES.get(command or "", {}).get(setting) or (f"--set {setting}" if command == "train" else None)
    if switch is None:
        return exc.hint
    return f"{exc.hint}, or add {switch} {why}" if exc.hint else f"add {switch} {why}"


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


# Errors every process of a data-parallel run raises alike: only rank 0 reports them.
SHARED_ERRORS = ("spec", "usage", "interrupted", "divergence")


def _rank() -> int:
    """This process's rank among several training processes (0 when alone)."""
    from ebmctl.services.runtime.distributed.environment import env_rank

    try:
        return env_rank()
    except Exception:
        return 0


def _report(message: str, hint: str | None, code: int, as_json: bool, kind: str) -> int:
    rank = _rank()
    if rank > 0:
        if kind in SHARED_ERRORS:
            return code
        message = f"process {rank}: {message}"
        as_json = False
    line = f"error: {_one_line(message)}" + (f" (hint: {_one_line(hint)})" if hint else "")
    stderr.print(line, markup=False, highlight=False, soft_wrap=True)
    if as_json:
        sys.stdout.write(json.dumps({"error": {"kind": kind, "message": message, "hint": hint, "exit_code": code}}) + "\n")
    return code


def main_entry(argv: list[str] | None = None) -> int:
    """Run the app and map every failure to a one-line message and an exit code."""
    args = hoist_global_options(list(sys.argv[1:] if argv is None else argv))
    debug = "--debug" in args
    as_json = "--json" in args
    try:
        result = app(args=args, prog_name="ebmctl", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except EbmctlError as exc:
        if debug:
            traceback.print_exc()
        return _report(exc.message, _hint_for(exc, command_of(args)), exc.exit_code, as_json, exc.kind)
    except typer.Exit as exc:
        return exc.exit_code
    except typer.TyperException as exc:  # usage errors: unknown option, bad value, missing argument
        if type(exc).__name__ == "NoArgsIsHelpError":  # `ebmctl` or `ebmctl presets` alone: the help, already shown
            return 0
        command = command_of(args)
        known = command in app_commands()
        hint = f"see `ebmctl {command} --help`" if known else "see `ebmctl --help` for the commands"
        return _report(exc.format_message(), hint, getattr(exc, "exit_code", 2), as_json, "usage")
    except (KeyboardInterrupt, typer.Abort) as exc:  # stopped by a signal outside a command's own handling
        signum = signum_of(exc)
        return _report(f"interrupted by {signal_name(signum)}", None, 128 + signum, as_json, "interrupted")
    except Exception as exc:  # a bug: say so in one line unless --debug
        if debug:
            traceback.print_exc()
            return 1
        return _report(f"internal error: {type(exc).__name__}: {exc}", "rerun with --debug for the traceback and "
                       "report it", 1, as_json, "internal")


def run() -> None:
    sys.exit(main_entry())
