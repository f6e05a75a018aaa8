"""The lock a run being trained holds, so that no second process trains it at the same time.

The lock is an ``fcntl.flock`` on ``train.lock`` inside the run directory. The operating system releases it when
the holding process ends, however it ends, so a run killed with SIGKILL leaves no stale lock. The file records
who holds it (pid, host, command, since when) for the message a second writer gets.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from ebmctl.errors import RunError

LOCK_FILE = "train.lock"


class RunLock:
    """An exclusive hold on one run directory, taken with :meth:`acquire` and given up with :meth:`release`."""

    def __init__(self) -> None:
        self.fd: int | None = None
        self.path: Path | None = None

    def acquire(self, run_dir: Path) -> RunLock:
        """Hold ``run_dir`` (releasing any run held before); a run another process holds is a RunError naming it."""
        self.release()
        path = Path(run_dir) / LOCK_FILE
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise RunError(f"cannot create the lock file {path} ({exc.strerror or type(exc).__name__})",
                           "training writes into the run directory: make it writable") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise held_error(Path(run_dir), _read_holder(path)) from None
            raise
        os.ftruncate(fd, 0)
        os.write(fd, (json.dumps(_me()) + "\n").encode("utf-8"))
        self.fd, self.path = fd, path
        return self

    def moved_to(self, run_dir: Path) -> None:
        """The held directory was renamed to ``run_dir`` (the lock goes with the open file)."""
        self.path = Path(run_dir) / LOCK_FILE

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
        self.fd = self.path = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def holder(run_dir: Path) -> dict[str, Any] | None:
    """Who holds ``run_dir`` (pid, host, command, since), or None when no live process does."""
    path = Path(run_dir) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None  # never locked, or unreadable: nothing can hold it through this file
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return _read_holder(path)
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def describe(doc: dict[str, Any]) -> str:
    """``process 123 on host (since 2026-01-01T12:00:00)`` from a lock file's record."""
    who = f"process {doc['pid']}" if doc.get("pid") else "another process"
    where = f" on {doc['host']}" if doc.get("host") else ""
    since = f" (since {doc['since']})" if doc.get("since") else ""
    return who + where + since


def held_error(run_dir: Path, doc: dict[str, Any]) -> RunError:
    """The error a second writer of ``run_dir`` gets."""
    stop = f"stop it (kill {doc['pid']}) and resume" if doc.get("pid") else "stop it and resume"
    return RunError(f"run {run_dir.name} is being trained by {describe(doc)}",
                    f"wait for it to finish, or {stop}; ebmctl train --resume with no run picks only runs no process "
                    "is training")


def _me() -> dict[str, Any]:
    return {"pid": os.getpid(), "host": socket.gethostname(), "since": datetime.now().isoformat(timespec="seconds"),
            "command": " ".join(["ebmctl", *sys.argv[1:]])}


def _read_holder(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # the holder has not written its record yet
    return doc if isinstance(doc, dict) else {}
