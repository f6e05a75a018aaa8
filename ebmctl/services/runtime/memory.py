"""Memory a run will need, checked before training, so that a replay buffer too large for the machine is a
one-line error that says how large it is rather than an allocator failure."""

from __future__ import annotations

import math
import resource
from pathlib import Path
from typing import Any

import torch

from ebmctl.errors import RunError
from ebmctl.methods.capabilities import chain_buffer
from ebmctl.runs import human_size

HEADROOM = 0.9  # the share of the available memory a buffer may take (the rest: nets, batches, the process)


def buffer_bytes(buffer: Any, shape: tuple[int, ...]) -> int:
    """Bytes a replay buffer of images shaped ``shape`` will hold once full."""
    return buffer.capacity * math.prod(shape) * (1 if buffer.quantize else 4)


def available_memory(device: torch.device) -> tuple[int, str] | None:
    """The bytes this process can still allocate on ``device`` and what limits them; None when unknown."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free, f"on {device}"
    found = [(n, what) for n, what in (_meminfo(), _cgroup(), _address_space()) if n is not None]
    return min(found) if found else None


def check_buffer_fits(method: Any, shape: tuple[int, ...], device: torch.device, *, resuming: bool) -> None:
    """Refuse, before any work, a replay buffer larger than the memory this process can allocate."""
    buffer = chain_buffer(method)
    if buffer is None:
        return
    need, capacity = buffer_bytes(buffer, shape), buffer.capacity
    available = available_memory(device)
    if available is None or need <= HEADROOM * available[0]:
        return
    free, what = available
    fits = max(1, int(HEADROOM * free * capacity / need) // 1000 * 1000)
    hint = (f"lower it, e.g. --set buffer.size={fits}" if not resuming else
            "free memory, or resume on a machine with more (a run keeps its buffer.size)")
    raise RunError(f"the replay buffer needs {human_size(need)} (buffer.size={capacity} x "
                   f"{'x'.join(map(str, shape))}); only {human_size(free)} is available {what}", hint)


def _meminfo() -> tuple[int | None, str]:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024, "on this machine"
    except (OSError, ValueError, IndexError):
        pass
    return None, ""


def _cgroup() -> tuple[int | None, str]:
    """What the container's memory limit leaves (cgroup v2, else v1)."""
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            limit, usage = Path(limit_file).read_text().strip(), Path(usage_file).read_text().strip()
        except OSError:
            continue
        if limit.isdigit() and int(limit) < 2**60:
            return max(0, int(limit) - int(usage)), f"under this container's memory limit of {human_size(int(limit))}"
    return None, ""


def _address_space() -> tuple[int | None, str]:
    """What an address-space limit (ulimit -v) leaves this process."""
    limit, _ = resource.getrlimit(resource.RLIMIT_AS)
    if limit == resource.RLIM_INFINITY:
        return None, ""
    try:
        status = Path("/proc/self/status").read_text()
        used = next(int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmSize:"))
    except (OSError, ValueError, StopIteration):
        return None, ""
    return max(0, limit - used), f"under this process's address-space limit of {human_size(limit)} (ulimit -v)"
