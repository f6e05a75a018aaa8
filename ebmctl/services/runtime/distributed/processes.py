"""The process group of a data-parallel run: gradients averaged around each trained net, rows gathered
across processes, and the session that joins and leaves the group."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from ebmctl.errors import DeviceError, SpecError, UsageError
from ebmctl.methods.replication import Replicas
from ebmctl.recipes import RunSpec, recipe_of
from ebmctl.services.runtime.distributed.environment import _env_int, launched, process_device


class _GatherRows(torch.autograd.Function):
    """All-gather along dim 0 in rank order; the backward pass sums the gradients of every process and hands
    each its own rows, so a loss computed from the gathered tensor is differentiated as one global loss."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        import torch.distributed as dist

        ctx.rows = x.shape[0]
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        import torch.distributed as dist

        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        start = dist.get_rank() * ctx.rows
        return grad[start : start + ctx.rows]


def gather_rows(x: Tensor) -> Tensor:
    """``x`` (same shape on every process) stacked over the processes in rank order, differentiably."""
    return _GatherRows.apply(x)


def _ddp_options() -> dict[str, Any]:
    """Per-rank buffers (BatchNorm statistics, spectral-norm vectors) are not broadcast at every forward."""
    from torch.nn.parallel import DistributedDataParallel

    names = inspect.signature(DistributedDataParallel.__init__).parameters
    return {"forward_sync_buffers": False} if "forward_sync_buffers" in names else {"broadcast_buffers": False}


@dataclass
class Processes:
    """This process's place among the training processes (``world == 1``: a plain one-process run)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    backend: str | None = None
    objects: Any = None  # the gloo group carrying Python objects (checkpoint parts) when the backend is NCCL

    @property
    def main(self) -> bool:
        """Rank 0: the process that writes the run directory and reports progress."""
        return self.rank == 0

    @property
    def parallel(self) -> bool:
        return self.world > 1

    def wrap(self, module: nn.Module) -> nn.Module:
        """``module`` in DistributedDataParallel. ``static_graph``: a loss may call the net several times and
        reach it outside the wrapper too (ICD's differentiable last Langevin step), and some nets hold parameters
        no loss uses (ICD's unconditional label maps)."""
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids, static_graph=True, **_ddp_options())

    def replicas(self) -> Replicas:
        return Replicas(rank=self.rank, world=self.world, wrap=self.wrap, gather=gather_rows)

    def agree(self, metrics: dict[str, float], stop: bool) -> tuple[dict[str, float], bool]:
        """The metrics averaged over the processes, and whether any process asked to stop (Ctrl-C).

        Every process reports the same keys each step (they are a function of the step and the spec)."""
        if not self.parallel:
            return metrics, stop
        import torch.distributed as dist

        keys = sorted(metrics)
        values = torch.tensor([metrics[k] for k in keys] + [float(stop)], dtype=torch.float64, device=self.device)
        dist.all_reduce(values)
        out = values.cpu().tolist()
        return {k: v / self.world for k, v in zip(keys, out[:-1], strict=True)}, out[-1] > 0

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every process."""
        if not self.parallel:
            return obj
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0, group=self.objects)
        return box[0]

    def gather(self, obj: Any) -> list[Any] | None:
        """Every process's ``obj`` in rank order on rank 0 (None elsewhere). Tensors must be on the CPU."""
        if not self.parallel:
            return [obj]
        import torch.distributed as dist

        out: list[Any] | None = [None] * self.world if self.main else None
        dist.gather_object(obj, out, dst=0, group=self.objects)
        return out


@contextmanager
def session(device: str, *, collective: tuple[type[BaseException], ...] = ()) -> Iterator[Processes]:
    """Join the process group torchrun's variables describe (or run alone), and leave it at the end.

    The group is destroyed however the block ends. After a clean end, or one of the ``collective`` errors that
    every process raises at the same step, the processes first wait for each other."""
    from ebmctl.services.runtime.devices import resolve_device

    world = _env_int("WORLD_SIZE", 1) if launched() else 1
    if world <= 1:
        yield Processes(device=resolve_device(device))
        return
    import torch.distributed as dist

    rank, local_rank = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    if not dist.is_available():
        raise DeviceError("this PyTorch build has no torch.distributed", "install a PyTorch build with it")
    if not 0 <= rank < world:
        raise UsageError(f"$RANK {rank} is outside 0..{world - 1}", "launch with torchrun, which sets it")
    torch_device = process_device(device, local_rank, world)
    backend = "nccl" if torch_device.type == "cuda" else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(torch_device)
        dist.init_process_group(backend, device_id=torch_device)
    else:
        dist.init_process_group(backend)
    together = False
    try:
        objects = dist.new_group(backend="gloo") if backend == "nccl" else None
        yield Processes(rank, world, local_rank, torch_device, backend, objects)
        together = True
    except collective:
        together = True
        raise
    finally:
        if together:
            dist.barrier()
        dist.destroy_process_group()


def check_batches(spec: RunSpec, world: int) -> None:
    """Every global batch of ``spec`` splits evenly over ``world`` processes."""
    if world <= 1:
        return
    for key, size in recipe_of(spec).global_batches(spec).items():
        if size % world:
            lower, upper = size // world * world, -(-size // world) * world
            nearest = " or ".join(str(n) for n in (lower, upper) if n > 0)
            raise SpecError(f"{key} {size} does not split evenly over {world} processes",
                            f"{key} is the global batch; use a multiple of {world} (e.g. {nearest})")


def lost_peer(exc: BaseException) -> bool:
    """Whether ``exc`` is a collective that failed because another process went away."""
    import torch.distributed as dist

    if dist.is_available() and isinstance(exc, dist.DistError):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and any(s in text for s in ("gloo", "NCCL", "Connection reset", "Connection closed"))
