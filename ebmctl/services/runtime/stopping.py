"""Stopping cleanly on the signals users and clusters send: SIGINT (Ctrl-C), SIGTERM (``kill``, Slurm preemption,
``docker stop``) and SIGHUP (a closed terminal or tmux session). A command stopped by signal N exits 128 + N."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

from ebmctl.errors import EbmctlError

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Stopped(KeyboardInterrupt):
    """Raised where the program was when a stop signal arrived."""

    def __init__(self, signum: int = signal.SIGINT) -> None:
        super().__init__(signal_name(signum))
        self.signum = signum


class Interrupted(EbmctlError):
    """A command stopped by a signal after saving what it had (exit 128 + the signal: 130 for Ctrl-C)."""

    kind = "interrupted"

    def __init__(self, message: str, hint: str | None = None, signum: int = signal.SIGINT) -> None:
        super().__init__(message, hint)
        self.signum = signum
        self.exit_code = 128 + signum


def signal_name(signum: int) -> str:
    return "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name


def signum_of(exc: BaseException) -> int:
    """The signal behind a KeyboardInterrupt (a plain one is Ctrl-C)."""
    return getattr(exc, "signum", signal.SIGINT)


@dataclass
class StopRequest:
    """The first stop signal received, if any (checked between steps)."""

    signum: int | None = None

    @property
    def requested(self) -> bool:
        return self.signum is not None


@contextmanager
def stop_signals(*, graceful: bool) -> Iterator[StopRequest]:
    """Catch the stop signals inside the block. ``graceful``: the first one is only recorded (the caller stops at
    its next safe point) and a second one raises :class:`Stopped` at once; otherwise the first one raises it."""
    request = StopRequest()

    def handler(signum: int, frame: Any) -> None:
        if signum == signal.SIGHUP:
            _leave_the_terminal()
        if graceful and not request.requested:
            request.signum = signum
            return
        raise Stopped(signum)

    previous = {}
    try:
        for signum in STOP_SIGNALS:
            previous[signum] = signal.signal(signum, handler)
    except ValueError:  # not the main thread: signals keep their default behaviour
        yield request
        return
    try:
        yield request
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def _leave_the_terminal() -> None:
    """After a hangup the terminal is gone and writing to it fails: send what was bound for it to /dev/null."""
    with suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        for stream in (sys.stdout, sys.stderr):
            if stream is not None and stream.isatty():
                os.dup2(devnull, stream.fileno())
        os.close(devnull)
