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

import json
import os
import platform
import re
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ebmctl import __version__
from ebmctl.checkpoints import write_text_atomic
from ebmctl.errors import RunError

RUN_JSON = "run.json"
SPEC_JSON = "spec.json"
METRICS = "metrics.jsonl"
MODEL_CKPT = "checkpoints/model.safetensors"
STATE_CKPT = "checkpoints/state.safetensors"


def runs_root(override: str | Path | None = None) -> Path:
    """--runs-dir, else $EBMCTL_RUNS, else ./runs."""
    if override:
        return Path(override).expanduser()
    return Path(os.environ.get("EBMCTL_RUNS", "runs")).expanduser()


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


def new_run_dir(root: Path, name: str) -> Path:
    """Create ``root/<name>-<timestamp>`` (with a numeric suffix if taken)."""
    return _fresh_dir(root, f"{safe_name(name)}-{timestamp()}", "remove old runs or pass --runs-dir")


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


def start_run_json(run_dir: Path, *, preset: str | None, method: str, device: str, parents: list[str]) -> None:
    update_run_json(
        run_dir,
        name=run_dir.name,
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
        if child.is_dir() and is_run_dir(child):
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
    """Resolve --run: ``latest`` (default), a run directory or its name, or a model checkpoint file."""
    if ref in (None, "", "latest"):
        run_dir = latest_run(root)
        return RunRef(run_dir, run_dir / MODEL_CKPT)
    path = Path(ref).expanduser()
    if path.suffix == ".safetensors":
        if not path.is_file():
            raise RunError(f"checkpoint {path} does not exist", "give a run directory or a .safetensors checkpoint")
        run_dir = path.parent.parent if path.parent.name == "checkpoints" else path.parent
        return RunRef(run_dir, path)
    for candidate in (path, root / ref):
        if candidate.is_dir():
            if not is_run_dir(candidate):
                raise RunError(f"{candidate} is not a run directory (no spec.json/run.json)",
                               f"runs live under {root}; pass one of them to --run")
            return RunRef(candidate, candidate / MODEL_CKPT)
    raise RunError(f"run {ref!r} does not exist", f"runs live under {root}; use --run latest or a directory there")


def command_dir(run_dir: Path, command: str, out: str | Path | None = None) -> Path:
    """A fresh output folder for a command: ``--out`` or ``<run>/<command>/<timestamp>``."""
    if out is not None:
        path = Path(out).expanduser()
        path.mkdir(parents=True, exist_ok=True)
        return path
    return _fresh_dir(run_dir / command, timestamp(), "pass --out")
