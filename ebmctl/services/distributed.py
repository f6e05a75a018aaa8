"""Data-parallel training on several processes: the process group, what the processes share, the launcher.

Processes come from torchrun (``torchrun --nproc-per-node N -m ebmctl train ...``, on one node or several) or
from ``ebmctl train --nproc N``, which runs torchrun's launcher itself. Each finds its place in the variables
torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) and joins the process group: NCCL
with one GPU per process (``cuda:LOCAL_RANK``), gloo on CPU. Without those variables, or with one process,
nothing here changes a run.

Gradients are averaged by DistributedDataParallel around each trained net (see
:meth:`ebmctl.methods.parts.EnergyModel.replicate`). The checkpoint helpers below keep one state file per run:
rank 0's full state at the keys a one-process run uses, and every other rank's own part (replay buffer,
bank, RNG) under ``rank{r}.``.
"""

from __future__ import annotations

import inspect
import logging
import os
import re
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ebmctl.checkpoints import read_meta
from ebmctl.errors import DeviceError, RunError, SpecError, UsageError
from ebmctl.methods.parts import Replicas
from ebmctl.runs import STATE_CKPT
from ebmctl.specs import RunSpec

ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
# Checkpoint keys each process keeps for itself: replay buffers, the Hat synthesis bank, RNG states.
LOCAL_STATE = ("buffer.", "bank.", "rng.")
_RANK_KEY = re.compile(r"^rank\d+\.")


# ----------------------------------------------------------------------------------------------- environment


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


# ----------------------------------------------------------------------------------------------- processes


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
    from ebmctl.services.build import resolve_device

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


# ----------------------------------------------------------------------------------------------- checkpoints


def is_local(key: str) -> bool:
    """Whether a state key is one a process keeps for itself."""
    return key.startswith(LOCAL_STATE)


def local_part(tensors: dict[str, Tensor], meta: dict[str, Any]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """The part of one process's state no other process has: buffer, bank and RNG tensors (on the CPU), with
    the RNG and buffer metadata."""
    mine = {k: v.detach().cpu() for k, v in tensors.items() if is_local(k)}
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
    state = {k: v for k, v in shared.items() if not is_local(k)} | own
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


# ----------------------------------------------------------------------------------------------- launching


def check_batches(spec: RunSpec, world: int) -> None:
    """Every global batch of ``spec`` splits evenly over ``world`` processes."""
    if world <= 1:
        return
    sizes = {"train.batch_size": spec.train.batch_size}
    encoder_batch = getattr(spec.method, "encoder_batch_size", None)
    if encoder_batch:
        sizes["method.encoder_batch_size"] = encoder_batch
    for key, size in sizes.items():
        if size % world:
            lower, upper = size // world * world, -(-size // world) * world
            nearest = " or ".join(str(n) for n in (lower, upper) if n > 0)
            raise SpecError(f"{key} {size} does not split evenly over {world} processes",
                            f"{key} is the global batch; use a multiple of {world} (e.g. {nearest})")


def check_launch(nproc: int, device: str) -> None:
    """Before starting ``nproc`` processes: one GPU each when training on CUDA."""
    if nproc < 1:
        raise UsageError(f"--nproc must be at least 1, got {nproc}", "use --nproc 2 or more to train on several "
                         "processes")
    if nproc > 1 and device.startswith("cuda:"):
        process_device(device, 0, nproc)  # raises: one named GPU cannot serve several processes
    if device not in ("auto", "cuda"):
        return
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if device == "cuda" and count == 0:
        raise DeviceError("CUDA is not available on this machine", f"use --device cpu to train {nproc} CPU processes")
    if count and nproc > count:
        raise DeviceError(f"--nproc {nproc} needs one GPU per process; this machine has {count}",
                          f"use --nproc {count} or fewer, or --device cpu")


_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT")


def launch(nproc: int, argv: list[str], *, debug: bool = False) -> int:
    """Run ``python -m ebmctl ARGV`` on ``nproc`` local processes with torchrun's launcher (a standalone
    rendezvous on a free port); return rank 0's exit code (the first failure's if rank 0 succeeded).

    Ctrl-C reaches the launcher, which passes it on to every process once: they save a checkpoint at the same
    step and exit 130. The processes print their own errors; a process killed by a signal is reported here."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    args = parse_args(["--standalone", f"--nproc-per-node={nproc}", "--module", "ebmctl", *argv])
    handlers = {name: signal.getsignal(getattr(signal, name)) for name in _SIGNALS if hasattr(signal, name)}
    quiet = logging.root.manager.disable
    if not debug:
        logging.disable(logging.CRITICAL)  # the launcher's own log lines; each process reports for itself
    try:
        run(args)
        return 0
    except ChildFailedError as exc:
        return _exit_code(exc.failures)
    except SignalException as exc:
        return 128 + int(exc.sigval)
    finally:
        logging.disable(quiet)
        for name, handler in handlers.items():
            if handler is not None:
                signal.signal(getattr(signal, name), handler)


def _exit_code(failures: dict[int, Any]) -> int:
    """Rank 0's exit code, else the first failure's. A process killed by a signal other than the launcher's own
    (SIGTERM, SIGINT: how it stops the others) is the cause of the rest, and an error of its own."""
    stops = (signal.SIGTERM, signal.SIGINT)
    killed = sorted((f.timestamp, rank, -f.exitcode) for rank, f in failures.items()
                    if f.exitcode < 0 and -f.exitcode not in stops)
    if not killed:
        ordered = sorted(failures.items(), key=lambda item: (item[0] != 0, item[1].timestamp))
        codes = [f.exitcode for _, f in ordered if f.exitcode >= 0]
        if codes:
            return codes[0]
        killed = sorted((f.timestamp, rank, -f.exitcode) for rank, f in failures.items())
    _, rank, number = killed[0]
    try:
        name = signal.Signals(number).name
    except ValueError:
        name = f"signal {number}"
    raise RunError(f"training process {rank} was killed by {name}",
                   "out of memory? see the system log; then resume the run with ebmctl train --resume --nproc N")


def lost_peer(exc: BaseException) -> bool:
    """Whether ``exc`` is a collective that failed because another process went away."""
    import torch.distributed as dist

    if dist.is_available() and isinstance(exc, dist.DistError):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and any(s in text for s in ("gloo", "NCCL", "Connection reset", "Connection closed"))
