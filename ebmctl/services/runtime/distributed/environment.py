"""Where a process stands among several: the variables torchrun sets, and the device each process takes."""

from __future__ import annotations

import os

import torch

from ebmctl.errors import DeviceError, SpecError, UsageError

ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise UsageError(f"${name} is {raw!r}, not a number", "launch with torchrun, which sets it") from None


def launched() -> bool:
    """Whether this process was started by torchrun (or anything else that sets WORLD_SIZE)."""
    return "WORLD_SIZE" in os.environ


def env_rank() -> int:
    """This process's rank (0 when not launched as one of several)."""
    return _env_int("RANK", 0) if launched() else 0


def process_device(name: str, local_rank: int, world: int) -> torch.device:
    """The device of one of ``world`` processes: ``cuda:LOCAL_RANK`` for auto/cuda when CUDA is there, else CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if not name.startswith("cuda"):
        raise SpecError(f"unsupported device {name!r}", "use auto, cpu or cuda")
    if name != "cuda":
        raise UsageError(f"--device {name} names one GPU, but each of the {world} processes takes its own",
                         "use --device cuda (process r of a node takes cuda:r) or --device cpu")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        raise DeviceError("CUDA is not available on this machine", "use --device cpu (gloo) or auto")
    if local_rank >= count:
        raise DeviceError(f"process with local rank {local_rank} has no GPU: this node has {count} CUDA devices",
                          f"start at most {count} processes per node (--nproc / --nproc-per-node)")
    return torch.device("cuda", local_rank)
