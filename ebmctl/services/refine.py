"""`ebmctl refine`: generator samples before and after a Hat EBM's Langevin refinement, with FID/KID of both."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ebmctl.checkpoints import save_tensors, write_bytes_atomic
from ebmctl.methods.capabilities import Refines
from ebmctl.runs import RunRef, command_dir, output_base, write_json
from ebmctl.services.runtime.chain_progress import ChainProgress
from ebmctl.services.runtime.judging import check_fid_count, fid_metrics
from ebmctl.services.runtime.loading import open_run
from ebmctl.services.runtime.pictures import hat_chains_png, image_grid_png
from ebmctl.services.runtime.reporting import NullReporter, Reporter


@dataclass
class RefineOptions:
    n: int | None = None  # None: the run's sample.n
    steps: int | None = None  # None: the run's sample.steps
    seed: int = 0
    fid: bool = True
    batch_size: int = 128
    chains: int = 8
    snapshots: int = 8
    out: str | None = None


@dataclass
class RefineResult:
    out_dir: Path
    n: int
    steps: int
    seconds: float
    files: dict[str, str]
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)
    motion: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"out": str(self.out_dir), "n": self.n, "steps": self.steps, "seconds": round(self.seconds, 2),
                "files": self.files, "before": self.before, "after": self.after, "motion": self.motion}


def snapshot_steps(steps: int, count: int) -> list[int]:
    """``count`` chain snapshots spread over ``steps`` steps: 0 (the start) ... steps (the end)."""
    count = max(2, min(count, steps + 1))
    return sorted({round(i * steps / (count - 1)) for i in range(count)})


def refine(
    ref: RunRef,
    opts: RefineOptions,
    *,
    device: str = "auto",
    cli_data_root: str | None = None,
    reporter: Reporter | None = None,
) -> RefineResult:
    reporter = reporter or NullReporter()
    run = open_run(ref, device, Refines, ("{method} run {run} is not a Hat EBM",
                                          "train one first, e.g. ebmctl train --preset hat-refine-shapes, and pass it "
                                          "to --run"))
    torch_device = run.device
    method = run.method
    n = opts.n if opts.n is not None else run.spec.sample.n
    if opts.fid:
        check_fid_count(n, "add --no-fid")
    steps = opts.steps if opts.steps is not None else run.spec.sample.steps
    torch.manual_seed(opts.seed)
    keep = set(snapshot_steps(steps, opts.snapshots))
    frames: list[tuple[Tensor, Tensor]] = []  # (G(z), y) of the first chains at the kept steps

    def record(k: int, z: Tensor, y: Tensor, g: Tensor) -> None:
        if k + 1 in keep:
            frames.append((g[: opts.chains].cpu(), y[: opts.chains].cpu()))

    started = time.perf_counter()
    befores, afters, moved, residual = [], [], [], []
    done = 0
    batches = -(-n // opts.batch_size)
    with reporter.progress(f"refine {n} in {batches} batch(es) x {steps} steps", batches * steps, unit="step",
                           fields=("mean E",)) as bar:
        steps_of = ChainProgress(bar, steps, method.energy)
        while done < n:
            b = min(opts.batch_size, n - done)
            batch = done // opts.batch_size
            z0 = method.latents(b)
            g0 = method.decode(z0)
            if done == 0:
                frames.append((g0[: opts.chains].cpu(), torch.zeros_like(g0[: opts.chains]).cpu()))
            report = steps_of.batch(batch)

            def step(k: int, z: Tensor, y: Tensor, g: Tensor, first: bool = done == 0, report=report) -> None:
                report(k, method.to_images(g + y))
                if first:
                    record(k, z, y, g)

            z, y, g = method.run_chains(z0, steps=steps, callback=step)
            befores.append(method.to_images(g0).cpu())
            afters.append(method.to_images(g + y).cpu())
            moved.append((z - z0).flatten(1).norm(dim=1).cpu())
            residual.append(y.flatten(1).norm(dim=1).cpu())
            done += b
            bar.update((batch + 1) * steps)
    before, after = torch.cat(befores), torch.cat(afters)
    seconds = time.perf_counter() - started
    motion = {"latent_move": float(torch.cat(moved).mean()), "residual_norm": float(torch.cat(residual).mean()),
              "pixel_change": float((after - before).flatten(1).norm(dim=1).mean())}

    before_metrics: dict[str, Any] = {}
    after_metrics: dict[str, Any] = {}
    if opts.fid:
        reporter.info("FID/KID of the generator's samples, then of the refined ones")
        before_metrics = fid_metrics(run, before, cli_data_root=cli_data_root, device=torch_device, reporter=reporter)
        after_metrics = fid_metrics(run, after, cli_data_root=cli_data_root, device=torch_device, reporter=reporter)

    out_dir = command_dir(output_base(ref), "refine", opts.out)
    files = {name: str(out_dir / f"{name}.png") for name in ("before", "after", "chains")}
    write_bytes_atomic(out_dir / "before.png", image_grid_png(before[:64]))
    write_bytes_atomic(out_dir / "after.png", image_grid_png(after[:64]))
    write_bytes_atomic(out_dir / "chains.png", hat_chains_png(frames, method.to_images, sorted(keep)))
    save_tensors(out_dir / "samples.safetensors", {"before": before, "after": after},
                 {"kind": "samples", "run": str(ref.run_dir), "steps": steps, "seed": opts.seed,
                  "checkpoint_step": run.step})
    files["samples"] = str(out_dir / "samples.safetensors")
    result = RefineResult(out_dir, n, steps, seconds, files, before_metrics, after_metrics, motion)
    write_json(out_dir / "result.json", {"command": "refine", "run": str(ref.run_dir), **result.to_dict()})
    return result
