"""``ebmctl train --nproc N``: torchrun's launcher run from the command, with signals passed on to every process."""

from __future__ import annotations

import logging
import signal
from typing import Any

import torch

from ebmctl.errors import DeviceError, RunError, UsageError
from ebmctl.services.runtime.distributed.environment import process_device


def check_launch(nproc: int, device: str) -> None:
    """Before starting ``nproc`` processes: one GPU each when training on CUDA."""
    if nproc < 1:
        raise UsageError(f"--nproc must be at least 1, got {nproc}", "use --nproc 2 or more to train on several "
                         "processes")
    if nproc > 1 and device.startswith("cuda:"):
        process_device(device, 0, nproc)  # raises: one named GPU cannot serve several processes
    if device not in ("auto", "cuda"):
        return
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if device == "cuda" and count == 0:
        raise DeviceError("CUDA is not available on this machine", f"use --device cpu to train {nproc} CPU processes")
    if count and nproc > count:
        raise DeviceError(f"--nproc {nproc} needs one GPU per process; this machine has {count}",
                          f"use --nproc {count} or fewer, or --device cpu")


_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT")


def launch(nproc: int, argv: list[str], *, debug: bool = False) -> int:
    """Run ``python -m ebmctl ARGV`` on ``nproc`` local processes with torchrun's launcher (a standalone
    rendezvous on a free port); return rank 0's exit code (the first failure's if rank 0 succeeded).

    Ctrl-C reaches the launcher, which passes it on to every process once: they save a checkpoint at the same
    step and exit 130. The processes print their own errors; a process killed by a signal is reported here."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    args = parse_args(["--standalone", f"--nproc-per-node={nproc}", "--module", "ebmctl", *argv])
    handlers = {name: signal.getsignal(getattr(signal, name)) for name in _SIGNALS if hasattr(signal, name)}
    quiet = logging.root.manager.disable
    if not debug:
        logging.disable(logging.CRITICAL)  # the launcher's own log lines; each process reports for itself
    try:
        run(args)
        return 0
    except ChildFailedError as exc:
        return _exit_code(exc.failures)
    except SignalException as exc:
        return 128 + int(exc.sigval)
    finally:
        logging.disable(quiet)
        for name, handler in handlers.items():
            if handler is not None:
                signal.signal(getattr(signal, name), handler)


def _exit_code(failures: dict[int, Any]) -> int:
    """Rank 0's exit code, else the first failure's. A process killed by a signal other than the launcher's own
    (SIGTERM, SIGINT: how it stops the others) is the cause of the rest, and an error of its own."""
    stops = (signal.SIGTERM, signal.SIGINT)
    killed = sorted((f.timestamp, rank, -f.exitcode) for rank, f in failures.items()
                    if f.exitcode < 0 and -f.exitcode not in stops)
    if not killed:
        ordered = sorted(failures.items(), key=lambda item: (item[0] != 0, item[1].timestamp))
        codes = [f.exitcode for _, f in ordered if f.exitcode >= 0]
        if codes:
            return codes[0]
        killed = sorted((f.timestamp, rank, -f.exitcode) for rank, f in failures.items())
    _, rank, number = killed[0]
    try:
        name = signal.Signals(number).name
    except ValueError:
        name = f"signal {number}"
    raise RunError(f"training process {rank} was killed by {name}",
                   "out of memory? see the system log; then resume the run with ebmctl train --resume --nproc N")
