"""Run directories: layout, run.json, metrics.jsonl and ``latest`` resolution.

    runs/<preset>-<YYYYmmdd-HHMMSS>/
        spec.json            the resolved spec
        run.json             status, versions, device, parents, progress
        metrics.jsonl        one JSON object per logged step
        checkpoints/model.safetensors   weights (+ EMA) with the spec in the metadata
        checkpoints/state.safetensors   everything an exact resume needs
        samples/ plots/      pictures
        <command>/<timestamp>/          outputs of sample, ood, ... (result.json + pictures)
"""

from __future__ import annotations

import errno
import json
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ebmctl import __version__
from ebmctl.checkpoints import write_text_atomic
from ebmctl.errors import RunError, UsageError

RUN_JSON = "run.json"
SPEC_JSON = "spec.json"
METRICS = "metrics.jsonl"
MODEL_CKPT = "checkpoints/model.safetensors"
STATE_CKPT = "checkpoints/state.safetensors"


def user_path(text: str | Path) -> Path:
    """``text`` as a path with ``~`` and ``~user`` expanded; an unknown user is a one-line error."""
    try:
        return Path(text).expanduser()
    except RuntimeError:
        raise UsageError(f"cannot expand {str(text)!r}: no such user or home directory",
                         "write the path out in full") from None


def runs_root(override: str | Path | None = None) -> Path:
    """--runs-dir, else $EBMCTL_RUNS, else ./runs."""
    if override:
        return user_path(override)
    return user_path(os.environ.get("EBMCTL_RUNS", "runs"))


def safe_name(name: str) -> str:
    """A run-name component that cannot leave the runs directory."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip(".-")
    return cleaned or "run"


def timestamp() -> str:
    return datetime.now().strftime("%Y%m%d-%H%M%S")


def _fresh_dir(parent: Path, stem: str, hint: str) -> Path:
    """Create ``parent/stem``, or ``stem-2``, ``stem-3``... if taken (never reusing a directory)."""
    parent.mkdir(parents=True, exist_ok=True)
    for i in range(1, 1000):
        candidate = parent / (stem if i == 1 else f"{stem}-{i}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise RunError(f"cannot create a directory under {parent}", hint)


def new_run_dir(root: Path, name: str, fill: Callable[[Path, str], None] | None = None) -> Path:
    """Create ``root/<name>-<timestamp>`` (with a numeric suffix if taken).

    The directory appears whole: ``fill(folder, final_name)`` writes its first files into a hidden folder beside
    it, which is then renamed into place, so a kill never leaves a run without its spec."""
    stem = f"{safe_name(name)}-{timestamp()}"
    if not is_inside(root / stem, root):  # safe_name already guarantees it; kept as a second lock
        raise RunError(f"run name {name!r} leaves the runs directory {root}", "name the run without '/' or '..'")
    root.mkdir(parents=True, exist_ok=True)
    for i in range(1, 1000):
        candidate = root / (stem if i == 1 else f"{stem}-{i}")
        if candidate.exists():
            continue
        staging = Path(tempfile.mkdtemp(prefix=f".{candidate.name}.", suffix=".partial", dir=root))
        try:
            if fill is not None:
                fill(staging, candidate.name)
            if candidate.exists():
                continue
            os.rename(staging, candidate)
            return candidate
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
    raise RunError(f"cannot create a directory under {root}", "remove old runs or pass --runs-dir")


def is_inside(path: Path, parent: Path) -> bool:
    """Whether ``path`` lies strictly inside ``parent`` once ``..`` and symbolic links are resolved."""
    inner, outer = user_path(path).resolve(), user_path(parent).resolve()
    return inner != outer and inner.is_relative_to(outer)


# ---------------------------------------------------------------------------------------- resources

_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def ensure_writable(root: Path) -> None:
    """Create ``root`` if needed and prove a file can be written there; else a one-line RunError."""
    root = Path(root)
    hint = "pass --runs-dir (or set $EBMCTL_RUNS) to a folder you can write to"
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".ebmctl-write-test.", dir=root)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        if exc.errno in _NO_SPACE:
            raise RunError(f"the disk holding {root} is full", "free space or pass --runs-dir on another disk") from None
        reason = exc.strerror or type(exc).__name__
        raise RunError(f"cannot write to the runs directory {root} ({reason})", hint) from None


def check_free_space(path: Path, need_bytes: int) -> None:
    """Raise a one-line RunError when the disk holding ``path`` has less than ``need_bytes`` free."""
    probe = user_path(path).absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        free = shutil.disk_usage(probe).free
    except OSError:
        return  # cannot tell: the writes themselves report a full disk
    if free < need_bytes:
        raise RunError(f"only {_size(free)} free on the disk holding {path}; this needs about {_size(need_bytes)}",
                       "free space or pass --runs-dir on another disk")


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def versions() -> dict[str, str]:
    import torch

    return {"ebmctl": __version__, "torch": torch.__version__, "python": platform.python_version()}


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunError(f"{path} is missing", "is this a run directory? list runs in the runs directory") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RunError(f"{path} is not valid JSON ({exc.msg if hasattr(exc, 'msg') else exc})",
                       "the run is damaged; train again or restore the file") from None


def write_json(path: Path, doc: dict[str, Any]) -> None:
    write_text_atomic(path, json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n")


def update_run_json(run_dir: Path, **fields: Any) -> dict[str, Any]:
    path = run_dir / RUN_JSON
    doc = read_json(path) if path.exists() else {}
    doc.update(fields)
    doc["updated"] = datetime.now().isoformat(timespec="seconds")
    write_json(path, doc)
    return doc


def start_run_json(run_dir: Path, *, preset: str | None, method: str, device: str, parents: list[str],
                   name: str | None = None) -> None:
    update_run_json(
        run_dir,
        name=name or run_dir.name,
        preset=preset,
        method=method,
        status="running",
        created=datetime.now().isoformat(timespec="seconds"),
        created_unix=time.time(),
        versions=versions(),
        device=device,
        parents=parents,
        command=" ".join(["ebmctl", *sys.argv[1:]]) if sys.argv else "",
        step=0,
    )


# ------------------------------------------------------------------------------------------- metrics


def append_metrics(run_dir: Path, record: dict[str, Any]) -> None:
    with open(run_dir / METRICS, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, sort_keys=True) + "\n")


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / METRICS
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a line cut by a kill: everything before it is good
    return out


def truncate_metrics(run_dir: Path, last_step: int) -> None:
    """Keep the records up to ``last_step`` (the checkpoint a resume starts from)."""
    kept = [r for r in read_metrics(run_dir) if r.get("step", 0) <= last_step]
    write_text_atomic(run_dir / METRICS, "".join(json.dumps(r, sort_keys=True) + "\n" for r in kept))


# ----------------------------------------------------------------------------------------- resolving


@dataclass(frozen=True)
class RunRef:
    """A run directory and the model checkpoint a command reads."""

    run_dir: Path
    checkpoint: Path


def is_run_dir(path: Path) -> bool:
    return (path / SPEC_JSON).is_file() and (path / RUN_JSON).is_file()


def list_runs(root: Path) -> list[tuple[Path, dict[str, Any]]]:
    """Runs under ``root``, oldest first."""
    if not root.is_dir():
        return []
    runs = []
    for child in root.iterdir():
        if child.is_dir() and not child.name.startswith(".") and is_run_dir(child):
            try:
                runs.append((child, read_json(child / RUN_JSON)))
            except RunError:
                continue
    runs.sort(key=lambda item: (item[1].get("created_unix", 0), item[0].name))
    return runs


def latest_run(root: Path, *, statuses: tuple[str, ...] = ("completed",)) -> Path:
    runs = [path for path, doc in list_runs(root) if doc.get("status") in statuses]
    if not runs:
        what = "completed run" if statuses == ("completed",) else "run to resume"
        raise RunError(f"no {what} in {root}", "train one first: ebmctl train --preset quickstart")
    return runs[-1]


def resolve_run(ref: str | None, root: Path) -> RunRef:
    """Resolve --run: ``latest`` (default), a run directory or its name, or a model checkpoint file.

    A name must resolve inside ``root`` (``../x`` or a link leading out is refused); a run directory or
    checkpoint given by a path that exists may lie anywhere (it is read; outputs stay inside that run)."""
    if ref in (None, "", "latest"):
        run_dir = latest_run(root)
        return RunRef(run_dir, run_dir / MODEL_CKPT)
    path = user_path(ref)
    if path.suffix == ".safetensors":
        if not path.is_file():
            raise RunError(f"checkpoint {path} does not exist", "give a run directory or a .safetensors checkpoint")
        run_dir = path.parent.parent if path.parent.name == "checkpoints" else path.parent
        return RunRef(run_dir, path)
    named = root / ref
    if not path.is_dir() and not path.is_absolute() and not is_inside(named, root):  # a name, not a path
        raise UsageError(f"--run {ref} leaves the runs directory {root}",
                         f"give the name of a run under {root}, or the path of a run directory")
    for candidate in (path, named):
        if candidate.is_dir():
            if not is_run_dir(candidate):
                raise RunError(f"{candidate} is not a run directory (no spec.json/run.json)",
                               f"runs live under {root}; pass one of them to --run")
            return RunRef(candidate, candidate / MODEL_CKPT)
    raise RunError(f"run {ref!r} does not exist", f"runs live under {root}; use --run latest or a directory there")


def out_path(run_dir: Path, out: str | Path) -> Path:
    """Where ``--out`` points: taken relative to the run directory, and refused unless it lies inside it
    (after ``..`` and symbolic links), so that no output escapes the run (and so the runs directory)."""
    path = Path(os.path.normpath(Path(run_dir) / user_path(out)))
    if not is_inside(path, run_dir):
        raise UsageError(f"--out {out} is outside the run directory {run_dir}",
                         "give a folder inside the run, e.g. --out my-samples (taken relative to the run)")
    return path


def command_dir(run_dir: Path, command: str, out: str | Path | None = None) -> Path:
    """A fresh output folder for a command: ``--out`` (inside the run) or ``<run>/<command>/<timestamp>``."""
    if out is not None:
        path = out_path(run_dir, out)
        path.mkdir(parents=True, exist_ok=True)
        return path
    return _fresh_dir(run_dir / command, timestamp(), "pass --out")
