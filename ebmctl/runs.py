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


STAGING_GRACE_S = 60.0  # a staging folder is filled in milliseconds: one older than this was left by a kill


def sweep_staging(root: Path) -> list[str]:
    """Remove the hidden ``.NAME.<random>.partial`` folders that kills left while run directories were being made (they
    hold no training); returns their names."""
    from ebmctl.run_lock import holder

    removed = []
    for folder in sorted(Path(root).glob(".*.partial")) if Path(root).is_dir() else []:
        try:
            stale = folder.is_dir() and time.time() - folder.stat().st_mtime > STAGING_GRACE_S
        except OSError:
            continue
        if stale and holder(folder) is None:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder.name)
    return removed


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
        raise RunError(f"only {human_size(free)} free on the disk holding {path}; this needs about {human_size(need_bytes)}",
                       "free space or pass --runs-dir on another disk")


def human_size(n: float) -> str:
    """A byte count in decimal units (``9.2 GB``), as disks and memory are sold."""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
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
    """A run directory, the model checkpoint a command reads, and where outputs go when not into the run."""

    run_dir: Path
    checkpoint: Path
    outputs: Path | None = None  # --outputs-dir / $EBMCTL_OUTPUTS


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


UNFINISHED = ("interrupted", "running", "failed", "diverged")  # statuses a resume continues


def latest_run(root: Path, *, statuses: tuple[str, ...] = ("completed",)) -> Path:
    """The newest run under ``root`` whose status is one of ``statuses``."""
    runs = list_runs(root)
    chosen = [path for path, doc in runs if doc.get("status") in statuses]
    if chosen:
        return chosen[-1]
    unfinished = [(path, doc) for path, doc in runs if doc.get("status") in UNFINISHED]
    if statuses == ("completed",) and unfinished:
        path, doc = unfinished[-1]
        raise RunError(f"no completed run in {root}; {len(unfinished)} unfinished, the newest {path.name} "
                       f"({doc.get('status')} at step {doc.get('step', 0)})",
                       f"finish it with: ebmctl train --resume {path}; or read its last checkpoint with --run {path}")
    what = "completed run" if statuses == ("completed",) else "run to resume"
    raise RunError(f"no {what} in {root}", "train one first: ebmctl train --preset quickstart")


def run_to_resume(root: Path) -> Path:
    """The newest unfinished run under ``root`` that no live process is training."""
    from ebmctl.run_lock import describe, holder

    held = []
    for path, doc in reversed(list_runs(root)):
        if doc.get("status") not in UNFINISHED:
            continue
        who = holder(path)
        if who is None:
            return path
        held.append((path, who))
    if held:
        path, who = held[0]
        others = f" (and {len(held) - 1} more)" if len(held) > 1 else ""
        raise RunError(f"no run to resume in {root}: {path.name}{others} is being trained by {describe(who)}",
                       "wait for it to finish; a run no process is training resumes with: ebmctl train --resume RUN")
    return latest_run(root, statuses=UNFINISHED)


def resolve_run(ref: str | None, root: Path, outputs: Path | None = None) -> RunRef:
    """Resolve --run: ``latest`` (default), a run directory or its name, or a model checkpoint file; ``outputs`` is
    the folder outputs go to instead of the run directory (--outputs-dir).

    A name must resolve inside ``root`` (``../x`` or a link leading out is refused); a run directory or
    checkpoint given by a path that exists may lie anywhere (it is read)."""
    if ref in (None, "", "latest"):
        run_dir = latest_run(root)
        return RunRef(run_dir, run_dir / MODEL_CKPT, outputs)
    path = user_path(ref)
    if path.suffix == ".safetensors":
        if not path.is_file():
            raise RunError(f"checkpoint {path} does not exist", "give a run directory or a .safetensors checkpoint")
        run_dir = path.parent.parent if path.parent.name == "checkpoints" else path.parent
        return RunRef(run_dir, path, outputs)
    if path.is_file() and not (root / ref).is_dir():
        raise RunError(f"{ref} is a file, not a run directory or a .safetensors checkpoint",
                       f"give a run directory (runs live under {root}) or its checkpoints/model.safetensors")
    named = root / ref
    if not path.is_dir() and not path.is_absolute() and not is_inside(named, root):  # a name, not a path
        raise UsageError(f"run {ref} leaves the runs directory {root}",
                         f"give the name of a run under {root}, or the path of a run directory")
    for candidate in (path, named):
        if candidate.is_dir():
            if not is_run_dir(candidate):
                raise RunError(f"{candidate} is not a run directory (no spec.json/run.json)",
                               f"runs live under {root}; give one of them")
            return RunRef(candidate, candidate / MODEL_CKPT, outputs)
    raise RunError(f"run {ref!r} does not exist", f"runs live under {root}; give the name or path of one of them")


def outputs_root(override: str | Path | None = None) -> Path | None:
    """--outputs-dir, else $EBMCTL_OUTPUTS, else None (commands write into the run directory)."""
    value = override or os.environ.get("EBMCTL_OUTPUTS")
    return user_path(value) if value else None


def output_base(ref: RunRef) -> Path:
    """The folder a command's outputs of run ``ref`` go under: the run directory, or ``<outputs dir>/<run name>``."""
    return ref.outputs / safe_name(ref.run_dir.name) if ref.outputs is not None else ref.run_dir


def out_path(base: Path, out: str | Path, option: str = "--out") -> Path:
    """Where ``--out`` points. An absolute path is taken as it is; anything else is taken relative to ``base`` (the
    run directory or its folder under --outputs-dir) and refused unless it lies inside it after ``..`` and symbolic
    links, so that no relative name escapes where it is resolved."""
    if not str(out).strip():
        raise UsageError(f"{option} is empty", f"give a folder, e.g. {option} my-outputs (taken relative to the run)")
    given = user_path(out)
    if given.is_absolute():
        return Path(os.path.normpath(given))
    path = Path(os.path.normpath(Path(base) / given))
    if not is_inside(path, base):
        raise UsageError(f"{option} {out} is outside {base}",
                         f"give a folder inside it, e.g. {option} my-outputs (taken relative to the run), or an "
                         "absolute path")
    return path


def command_dir(base: Path, command: str, out: str | Path | None = None) -> Path:
    """A fresh output folder for a command: ``--out`` or ``<base>/<command>/<timestamp>``."""
    if out is not None:
        path = out_path(base, out)
        path.mkdir(parents=True, exist_ok=True)
        return path
    return _fresh_dir(base / command, timestamp(), "pass --out")


def check_outputs(base: Path, command: str, out: str | Path | None, option: str = "--out") -> Path:
    """Before any work: refuse a bad ``--out`` and prove that the outputs can be written (a run on a read-only disk
    fails here, not after computing everything); the folder they will go to."""
    target = out_path(base, out, option) if out is not None else base / command
    probe = target
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if probe.is_dir() and os.access(probe, os.W_OK | os.X_OK):  # asks without writing: the run stays untouched
        return target
    try:
        read_only = probe.is_dir() and bool(os.statvfs(probe).f_flag & os.ST_RDONLY)
    except OSError:
        read_only = False
    reason = "read-only file system" if read_only else "permission denied" if probe.is_dir() else "not a directory"
    raise RunError(f"cannot write the outputs of {command} to {target} ({reason}: {probe})",
                   f"write them elsewhere: {option} /an/absolute/folder, or --outputs-dir DIR (or $EBMCTL_OUTPUTS) "
                   "for a folder per run there")
