"""One state file for a run of several processes: rank 0's full state at the keys a one-process run uses,
and every other rank's own part (replay buffer, bank, RNG) under ``rank{r}.``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ebmctl.checkpoints import read_meta
from ebmctl.errors import RunError, UsageError
from ebmctl.runs import STATE_CKPT

RNG_STATE = "rng."  # every process keeps its own RNG states
_RANK_KEY = re.compile(r"^rank\d+\.")


def local_part(tensors: dict[str, Tensor], meta: dict[str, Any],
               local: tuple[str, ...]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """The part of one process's state no other process has: the tensors under the method's ``local`` key
    prefixes (its recipe's ``local_state``: replay buffers, banks) and the RNG tensors, on the CPU, with the RNG
    and buffer metadata."""
    mine = {k: v.detach().cpu() for k, v in tensors.items() if k.startswith((*local, RNG_STATE))}
    part = {"rng": meta["rng"]}
    if "buffer" in meta["method"]:
        part["buffer"] = meta["method"]["buffer"]
    return mine, part


def with_ranks(tensors: dict[str, Tensor], meta: dict[str, Any],
               parts: list[tuple[dict[str, Tensor], dict[str, Any]]]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Rank 0's state with every other rank's own part added under ``rank{r}.`` and ``meta["ranks"]``."""
    out, doc = dict(tensors), {**meta, "world_size": len(parts), "ranks": {}}
    for r, (mine, part) in enumerate(parts):
        if r == 0:
            continue
        out.update({f"rank{r}.{k}": v for k, v in mine.items()})
        doc["ranks"][str(r)] = part
    return out, doc


def rank_state(tensors: dict[str, Tensor], meta: dict[str, Any], rank: int) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """The state of process ``rank`` as a one-process state: the shared tensors plus that rank's own part."""
    shared = {k: v for k, v in tensors.items() if not _RANK_KEY.match(k)}
    if rank == 0:
        return shared, meta
    part = meta.get("ranks", {}).get(str(rank))
    if part is None:
        raise RunError(f"the training state has no part for process {rank}", "resume with as many processes as "
                       "the run was trained on")
    prefix = f"rank{rank}."
    own = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    state = {k: v for k, v in shared.items() if k not in own} | own  # each process's own part replaces rank 0's
    method = {k: v for k, v in meta["method"].items() if k != "buffer"}
    if "buffer" in part:
        method["buffer"] = part["buffer"]
    return state, {**meta, "rng": part["rng"], "method": method}


def merged_buffer(tensors: dict[str, Tensor], meta: dict[str, Any]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """The replay buffers of every process of a saved run as one buffer (what ``sample --init buffer`` reads)."""
    world = int(meta.get("world_size", 1))
    parts = [rank_state(tensors, meta, r) for r in range(world)]
    metas = [m["method"]["buffer"] for _, m in parts]
    merged = {**metas[0], "capacity": sum(m["capacity"] for m in metas), "size": sum(m["size"] for m in metas),
              "seen": sum(m["seen"] for m in metas)}
    out: dict[str, Tensor] = {}
    for key in ("buffer.storage", "buffer.visits"):
        pieces = [t[key] for t, _ in parts if key in t]
        if pieces:
            out[key] = torch.cat(pieces)
    return out, merged


def saved_world(run_dir: Path) -> int:
    """How many processes wrote the run's training state (1 for a one-process run or no state yet)."""
    path = run_dir / STATE_CKPT
    return int(read_meta(path).get("world_size", 1)) if path.is_file() else 1


def check_world(run_dir: Path, world: int) -> None:
    """A resume uses as many processes as the run was trained on (each one's buffer and RNG continue)."""
    saved = saved_world(run_dir)
    if saved != world:
        trained = "one process" if saved == 1 else f"{saved} processes"
        runs = "one" if world == 1 else str(world)
        fix = f"ebmctl train --resume {run_dir}" + (f" --nproc {saved}" if saved > 1 else " (without --nproc)")
        raise UsageError(f"{run_dir.name} was trained on {trained}; this resume runs {runs}", fix)
