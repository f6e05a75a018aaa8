"""Start ``ebmctl`` commands as processes and SIGKILL them at chosen moments (used by test_kill_resume.py).

Two ways to start a process, with one interface (:class:`Launcher`):

- ``SpawnLauncher`` runs ``python -m ebmctl ...``: the real entry point, paying the start-up of Python, torch
  and ebmctl (seconds) on every run;
- ``ForkLauncher`` keeps a server process (this file run as a script) that has imported ebmctl once and forks a
  fresh process per command, which then runs the same CLI entry point. The server imports without running any
  torch operation, so it holds one thread when it forks.

A kill is aimed by a *condition* (a small JSON document, so the fork server can evaluate it) and a delay: the
process is watched until the condition holds, then killed with SIGKILL ``delay`` seconds later unless it has
exited by then. Conditions:

- ``{"new_run": ROOT, "known": [NAMES]}``: a run directory with a run.json that is not in NAMES appears in ROOT;
  with ``"file": NAME`` as well, that run's NAME must exist and not be empty (``metrics.jsonl``: a step logged);
  with ``"temp_in": DIR`` as well, that run's DIR must hold a temporary file (``checkpoints``: one is written);
- ``{"new_dir": ROOT, "known": [NAMES]}``: a directory not in NAMES appears in ROOT (a run directory as it is
  made, before anything is written in it);
- ``{"replaced": PATH, "ino": INODE}``: PATH was replaced (a resume rewrites spec.json atomically);
- ``{"nonempty": PATH}``: PATH exists and is not empty (metrics.jsonl after the first logged step);
- ``{"temp_file": DIR, "known": [NAMES]}``: a temporary file of an atomic write (``.NAME.*.tmp``) not in NAMES
  is in DIR; with ``"prefix": ".model.safetensors."`` only the temporary files of that write count;
- ``{"lines": PATH, "at_least": N}``: PATH holds at least N lines;
- ``{"all": [CONDITIONS]}``: every one of CONDITIONS holds.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

POLL_S = 0.001
REPO = Path(__file__).resolve().parents[2]


def child_env() -> dict[str, str]:
    """One thread everywhere, no display: the settings every training process runs under."""
    env = dict(os.environ)
    env.update({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MPLBACKEND": "Agg",
                "CUBLAS_WORKSPACE_CONFIG": ":4096:8", "PYTHONPATH": os.pathsep.join(
                    [str(REPO), *filter(None, [env.get("PYTHONPATH")])])})
    return env


def temp_files(root: Path) -> list[Path]:
    """Temporary files of atomic writes (``.NAME.XXXX.tmp``) anywhere under ``root``."""
    return sorted(p for p in Path(root).rglob("*") if p.name.startswith(".") and p.name.endswith(".tmp"))


def run_dirs(root: Path) -> set[str]:
    """Names of the run directories (with a run.json) in ``root``; hidden ones, where a run is put together
    before it is renamed into place, are none of them."""
    root = Path(root)
    if not root.is_dir():
        return set()
    return {p.name for p in root.iterdir() if not p.name.startswith(".") and (p / "run.json").is_file()}


def holds(condition: dict[str, Any] | None) -> bool:
    if condition is None:
        return False
    if "new_run" in condition:
        root = Path(condition["new_run"])
        fresh = run_dirs(root) - set(condition["known"])
        if "file" in condition:
            return any(holds({"nonempty": str(root / name / condition["file"])}) for name in fresh)
        if "temp_in" in condition:
            return any(holds({"temp_file": str(root / name / condition["temp_in"]), "known": []}) for name in fresh)
        return bool(fresh)
    if "new_dir" in condition:
        try:
            return any(e.is_dir() and e.name not in condition["known"] for e in os.scandir(condition["new_dir"]))
        except FileNotFoundError:
            return False
    if "replaced" in condition:
        try:
            return os.stat(condition["replaced"]).st_ino != condition["ino"]
        except FileNotFoundError:
            return False
    if "nonempty" in condition:
        try:
            return os.stat(condition["nonempty"]).st_size > 0
        except FileNotFoundError:
            return False
    if "temp_file" in condition:
        try:
            names = os.listdir(condition["temp_file"])
        except FileNotFoundError:
            return False
        prefix = condition.get("prefix", ".")
        return any(n.startswith(prefix) and n.endswith(".tmp") and n not in condition["known"] for n in names)
    if "lines" in condition:
        try:
            with open(condition["lines"], "rb") as fh:
                return fh.read().count(b"\n") >= condition["at_least"]
        except FileNotFoundError:
            return False
    if "all" in condition:
        return all(holds(c) for c in condition["all"])
    raise ValueError(f"unknown condition {condition}")


@dataclass
class Outcome:
    """How one process ended. ``code`` is its exit status (``-9`` when the kill landed); ``fired`` the seconds
    from its start until the condition held (None if it never did); ``seconds`` its whole run."""

    code: int
    killed: bool
    fired: float | None
    seconds: float
    log: str


def supervise(proc: Any, until: dict[str, Any] | None, delay: float | None, timeout: float) -> dict[str, Any]:
    """Watch ``proc`` (``poll()``, ``kill()``, ``wait()``) and SIGKILL it ``delay`` s after ``until`` holds.

    With ``delay=None`` the process is never killed; the moment the condition held is still recorded."""
    start = time.monotonic()
    fired = None
    while True:
        code = proc.poll()
        now = time.monotonic()
        if code is not None:
            break
        if now - start > timeout:
            proc.kill()
            proc.wait()
            raise TimeoutError(f"the process ran for more than {timeout} s")
        if fired is None and holds(until):
            fired = now
        if fired is not None and delay is not None and now - fired >= delay:
            proc.kill()
            code = proc.wait()
            break
        time.sleep(POLL_S)
    return {"code": code, "killed": code == -signal.SIGKILL, "seconds": time.monotonic() - start,
            "fired": None if fired is None else fired - start}


class Launcher:
    """Runs ``ebmctl ARGV`` in a new process, optionally killing it; see :func:`supervise`."""

    def run(self, argv: list[str], log: Path, *, until: dict[str, Any] | None = None, delay: float | None = None,
            timeout: float = 600.0) -> Outcome:
        raise NotImplementedError

    def close(self) -> None:
        """Stop whatever the launcher keeps running (nothing by default)."""


class SpawnLauncher(Launcher):
    """Each command is ``python -m ebmctl ARGV``."""

    def run(self, argv, log, *, until=None, delay=None, timeout=600.0):
        with open(log, "wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "ebmctl", *argv], stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=child_env(), cwd=REPO)
            try:
                result = supervise(proc, until, delay, timeout)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        return Outcome(log=Path(log).read_text(errors="replace"), **result)


class ForkLauncher(Launcher):
    """Each command is forked from a server that imported ebmctl once (``python kill_harness.py``)."""

    def __init__(self) -> None:
        self.server = subprocess.Popen([sys.executable, str(Path(__file__).resolve())], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, env=child_env(), cwd=REPO, text=True)
        ready = self.server.stdout.readline()
        if ready.strip() != "ready":
            self.close()
            raise RuntimeError(f"the fork server did not start: {ready!r}")

    def run(self, argv, log, *, until=None, delay=None, timeout=600.0):
        request = {"argv": argv, "log": str(log), "until": until, "delay": delay, "timeout": timeout}
        self.server.stdin.write(json.dumps(request) + "\n")
        self.server.stdin.flush()
        answer = self.server.stdout.readline()
        if not answer:
            raise RuntimeError(f"the fork server stopped (exit {self.server.poll()})")
        result = json.loads(answer)
        if "error" in result:
            raise RuntimeError(result["error"])
        return Outcome(log=Path(log).read_text(errors="replace"), **result)

    def close(self) -> None:
        if self.server.poll() is None:
            self.server.stdin.close()
            try:
                self.server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()


class _Forked:
    """A forked child seen through the ``poll``/``kill``/``wait`` of :class:`subprocess.Popen`."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def _reap(self, flags: int) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, flags)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def poll(self) -> int | None:
        return self._reap(os.WNOHANG)

    def wait(self) -> int:
        return self._reap(0)

    def kill(self) -> None:
        if self.returncode is None:  # not reaped yet, so the pid is still this child's
            os.kill(self.pid, signal.SIGKILL)


def _fork_cli(argv: list[str], log: str, main_entry: Any) -> _Forked:
    pid = os.fork()
    if pid:
        return _Forked(pid)
    code = 1
    try:  # the child: the CLI with its output in ``log``
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        sys.argv = ["ebmctl", *argv]
        code = main_entry(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def serve() -> None:
    """The fork server: one JSON request per line on stdin, one JSON outcome per line on stdout."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot  # the training curves are drawn at every checkpoint

    import ebmctl.services.train  # noqa: F401
    from ebmctl.cli.main import main_entry  # the expensive imports, paid once

    print("ready", flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        try:
            child = _fork_cli(request["argv"], request["log"], main_entry)
            answer = supervise(child, request["until"], request["delay"], request["timeout"])
        except Exception as exc:
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    serve()
