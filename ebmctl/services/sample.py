"""`ebmctl sample`: draw samples from a run with the test-time schedule; optional FID/KID/PR."""

from __future__ import annotations

import time
from contextlib import suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from ebmctl.checkpoints import write_bytes_atomic
from ebmctl.errors import CapabilityError, SpecError, UsageError
from ebmctl.methods.capabilities import HasEnergy, HasLatents, LangevinTrained, Samples, SamplesPool
from ebmctl.recipes import recipe_of, spec_to_json, validate_spec
from ebmctl.runs import RunRef, command_dir, output_base, write_json
from ebmctl.samplers.fastpath import PRECISIONS
from ebmctl.samplers.hat import HatLangevinParams
from ebmctl.samplers.langevin import LangevinParams
from ebmctl.samplers.pool import PoolSchedule
from ebmctl.samples_file import StreamingTensorWriter, iter_rows, streaming_tensor_file
from ebmctl.services.runtime.chain_progress import ChainProgress
from ebmctl.services.runtime.conditioning import Condition, class_condition, instance_condition
from ebmctl.services.runtime.datasets import data_root, dataset_from
from ebmctl.services.runtime.judging import check_fid_count, class_accuracy, fid_metrics
from ebmctl.services.runtime.loading import LoadedRun, load_replay_buffer, open_run
from ebmctl.services.runtime.pictures import chain_strip_png, samples_png
from ebmctl.services.runtime.reporting import NullReporter, Reporter
from ebmctl.services.runtime.stopping import Interrupted, signal_name, signum_of, stop_signals
from ebmctl.specs import layered

GRID_SAMPLES = 100  # the samples grid.png shows


@dataclass
class SampleOptions:
    """Options of `ebmctl sample`; None takes the run's ``sample`` spec section."""

    n: int | None = None
    steps: int | None = None
    init: str | None = None
    aug_every: int | None = None
    plain_steps: int | None = None
    step_size: float | None = None
    noise: float | None = None
    seed: int = 0
    ema: bool = True
    fid: bool = False
    batch_size: int = 128
    out: str | None = None
    snapshots: int = 10
    like: str | None = None
    class_label: str | None = None
    beta: float | None = None  # beta of CLEL's E(x|z) (None: the run's method.guidance)
    precision: str | None = None  # energy precision inside the sampler (None: the run's sampler.precision)
    schedule: str | None = None  # chains or pool (None: the run's sample.schedule)


@dataclass
class SampleResult:
    out_dir: Path
    n: int
    steps: int
    seconds: float
    files: dict[str, str]
    metrics: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"out": str(self.out_dir), "n": self.n, "steps": self.steps, "seconds": round(self.seconds, 2),
                "files": self.files, "metrics": self.metrics, "settings": self.settings}


def _with_options(run: LoadedRun, opts: SampleOptions) -> Any:
    """The run's spec with this command's options on top, by the precedence every spec follows (its method's
    defaults < preset < --set < a command's options): the sampling settings, typed and validated."""
    options = {"sample.n": opts.n, "sample.steps": opts.steps, "sample.init": opts.init,
               "sample.aug_every": opts.aug_every, "sample.plain_steps": opts.plain_steps,
               "sample.step_size": opts.step_size, "sample.noise": opts.noise, "sample.schedule": opts.schedule,
               "sampler.precision": opts.precision}
    try:
        return validate_spec(layered(spec_to_json(run.spec), extra={k: v for k, v in options.items() if v is not None}))
    except SpecError as err:  # a value the options gave, or a combination of them with the run's
        hint = ("the pool runs rounds of --aug-every steps (at least 1)" if "pool" in err.message else
                "see `ebmctl sample --help`")
        raise UsageError(f"sample options: {err.message}", hint) from None


def _settings(run: LoadedRun, opts: SampleOptions) -> dict[str, Any]:
    if (opts.n is not None and opts.n < 1) or (opts.steps is not None and opts.steps < 1):
        raise UsageError("--n and --steps must be at least 1", "e.g. ebmctl sample --steps 600 --n 64")
    if opts.init is not None and opts.init not in ("noise", "buffer"):
        raise UsageError(f"unknown --init {opts.init!r}", "use noise or buffer")
    if opts.precision is not None and opts.precision not in PRECISIONS:
        raise UsageError(f"unknown --precision {opts.precision!r}", f"use one of {', '.join(PRECISIONS)}")
    if opts.schedule is not None and opts.schedule not in ("chains", "pool"):
        raise UsageError(f"unknown --schedule {opts.schedule!r}", "use chains or pool")
    spec = _with_options(run, opts)
    d, sampler = spec.sample, spec.sampler
    s = {
        # --fid without --n draws as many samples as the FID protocol scores (eval.fid_samples)
        "n": max(d.n, spec.eval.fid_samples) if opts.fid and opts.n is None else d.n,
        "steps": d.steps,
        "init": d.init,
        "aug_every": d.aug_every,
        "plain_steps": min(d.plain_steps, d.steps),
        "step_size": d.step_size or sampler.step_size,
        "noise": d.noise if d.noise is not None else sampler.noise,
        "seed": opts.seed,
        "ema": opts.ema and run.method.has_ema,
        "precision": sampler.precision,
    }
    if opts.fid:
        check_fid_count(s["n"], "drop --fid")
    s["schedule"] = d.schedule
    if s["schedule"] == "pool":
        _pool_settings(run, opts, s)
    s.update(recipe_of(run.spec).sample_settings(run.spec))  # a method with its own sampler records its settings
    return s


def _pool_settings(run: LoadedRun, opts: SampleOptions, s: dict[str, Any]) -> None:
    """Check and record the pool schedule's settings in ``s`` (its rounds replace steps and plain_steps)."""
    if opts.steps is not None or opts.plain_steps is not None:
        raise UsageError("--steps and --plain-steps set the chains schedule; this run samples with the pool schedule",
                         "add --schedule chains, or leave them out to run the pool's rounds")
    if not isinstance(run.method, SamplesPool):
        raise CapabilityError(f"method {run.spec.method.name} has no pool schedule", "use --schedule chains")
    d = run.spec.sample
    try:
        schedule = PoolSchedule(size=d.pool, batch=d.pool_batch, rounds=d.pool_rounds,
                                plain_rounds=d.pool_plain_rounds, plain_splits=d.pool_plain_splits,
                                steps=s["aug_every"])
    except ValueError as err:
        raise UsageError(f"pool schedule: {err}", "the pool runs rounds of --aug-every steps (at least 1)") from None
    del s["steps"], s["plain_steps"]
    s["pool"] = {"size": schedule.size, "batch": schedule.batch, "rounds": schedule.rounds,
                 "plain_rounds": schedule.plain_rounds, "plain_splits": schedule.plain_splits}


def _pool_schedule(s: dict[str, Any]) -> PoolSchedule:
    return PoolSchedule(**s["pool"], steps=s["aug_every"])


def _set_precision(run: LoadedRun, precision: str) -> None:
    """Run the loaded method's Langevin sampler at ``precision`` (a sampling choice, not a retraining)."""
    if precision == run.spec.sampler.precision:
        return
    sampler = run.method.sampler if isinstance(run.method, LangevinTrained) else None
    if not isinstance(sampler, LangevinParams | HatLangevinParams):
        raise UsageError(f"--precision applies to Langevin samplers; {run.spec.method.name} runs its own sampler",
                         "drop --precision")
    run.method.sampler = replace(sampler, precision=precision)


def sample(
    ref: RunRef,
    opts: SampleOptions,
    *,
    device: str = "auto",
    cli_data_root: str | None = None,
    reporter: Reporter | None = None,
) -> SampleResult:
    reporter = reporter or NullReporter()
    run = open_run(ref, device, Samples, ("method {method} learns a representation and draws no samples",
                                          "probe it with `ebmctl probe`, or sample a run of an energy-based method"))
    torch_device = run.device
    if opts.fid and run.info.kind != "image":
        raise SpecError("--fid needs images; this run samples 2D points", "drop --fid and look at grid.png")
    s = _settings(run, opts)
    _set_precision(run, s["precision"])
    if s["init"] == "buffer":
        load_replay_buffer(run)
    torch.manual_seed(s["seed"])
    condition = _condition(run, opts, s, cli_data_root)
    # Samples stream to disk batch by batch; memory keeps one batch plus the first rows the grid and --fid use.
    keep_n = min(s["n"], max(GRID_SAMPLES, run.spec.eval.fid_samples if opts.fid else 0))
    kept: list[torch.Tensor] = []
    snapshots: list[torch.Tensor] = []
    snapshot_steps: list[int] = []
    pool = _pool_schedule(s) if s["schedule"] == "pool" else None
    every = max(1, (pool.rounds if pool else s["steps"]) // opts.snapshots)

    def keep(k: int, x: torch.Tensor) -> None:
        if (k + 1) % every == 0 or k == 0:
            snapshots.append(x[:8].detach().cpu().clone())
            snapshot_steps.append(k + 1)

    out_dir = command_dir(output_base(ref), "sample", opts.out)
    samples_path = out_dir / "samples.safetensors"
    files = {"samples": str(samples_path), "grid": str(out_dir / "grid.png")}
    meta = {"kind": "samples", "run": str(ref.run_dir), "settings": s, "checkpoint_step": run.step}
    started = time.perf_counter()
    pools = -(-s["n"] // pool.size) if pool else 0
    batches = -(-s["n"] // opts.batch_size)
    label, total, unit = ((f"sample {s['n']}: {pools} pool(s) x {pool.rounds} rounds", pools * pool.rounds, "round")
                          if pool else (f"sample {s['n']} in {batches} batch(es) x {s['steps']} steps",
                                        batches * s["steps"], "step"))
    pool_steps: list[torch.Tensor] = []

    def draw(writer: StreamingTensorWriter, bar: Any) -> None:
        steps_of = ChainProgress(bar, pool.rounds if pool else s["steps"], _energy_meter(run, condition, s))
        done = 0

        def take(x: torch.Tensor) -> int:
            """Stream a finished batch to the file, keep the first samples for the grid and metrics; its size."""
            writer.write(x)
            have = sum(len(c) for c in kept)
            if have < keep_n:
                kept.append(x[: keep_n - have].clone())
            return len(x)

        for p in range(pools):  # the pool schedule: each pool from fresh chains, its first chains returned
            assert pool is not None

            def on_round(k: int, x: torch.Tensor, p: int = p) -> None:
                if p == 0 and len(x) >= min(8, pool.size):  # snapshots of one size
                    keep(k, x)

            res = run.method.sample_pool(
                pool, step_size=s["step_size"], noise=s["noise"], init=s["init"], ema=s["ema"],
                energy=condition.energy_for(0, pool.size) if condition else None,
                callback=steps_of.batch(p, then=on_round),
            )
            b = min(pool.size, s["n"] - done)
            pool_steps.append(res.steps(pool)[:b])
            done += take(res.x[:b].detach().cpu())
        while done < s["n"]:
            b = min(opts.batch_size, s["n"] - done)
            batch = done // opts.batch_size
            x = run.method.sample(
                b, steps=s["steps"], step_size=s["step_size"], noise=s["noise"], init=s["init"],
                aug_every=s["aug_every"], plain_steps=s["plain_steps"], ema=s["ema"],
                energy=condition.energy_for(done, b) if condition else None,
                callback=steps_of.batch(batch, then=keep if done == 0 else None),
            ).detach().cpu()
            done += take(x)
            bar.update((batch + 1) * s["steps"])

    stopped: KeyboardInterrupt | None = None
    try:
        with stop_signals(graceful=False), streaming_tensor_file(samples_path, "samples", s["n"], meta) as writer, \
                reporter.progress(label, total, unit=unit, fields=("mean E",)) as bar:
            try:
                draw(writer, bar)
            except KeyboardInterrupt as exc:  # Ctrl-C, SIGTERM or SIGHUP: keep the finished batches
                if writer.written == 0:
                    raise
                stopped = exc
                s.update(n_requested=s["n"], n=writer.written)  # the file's metadata says what it holds
                writer.keep_written(meta)
    except BaseException as exc:
        if opts.out is None:  # the fresh <run>/sample/<timestamp> folder, empty again
            with suppress(OSError):
                out_dir.rmdir()
        if not isinstance(exc, KeyboardInterrupt):
            raise
        signum = signum_of(exc)
        raise Interrupted(f"interrupted by {signal_name(signum)} before the first batch of samples was finished; "
                          "nothing was saved", "run the command again", signum) from None
    done = writer.written
    first = torch.cat(kept)
    seconds = time.perf_counter() - started
    if pool_steps:  # each chain of a pool gets its own number of rounds
        per_sample = torch.cat(pool_steps).float()
        s["steps"] = round(per_sample.mean().item())
        s["steps_per_sample"] = {"min": int(per_sample.min()), "mean": round(per_sample.mean().item(), 1),
                                 "max": int(per_sample.max())}

    reference = None
    if first.dim() == 2:
        ds = dataset_from(run.spec.data, root=data_root(run.spec.data.root, cli_data_root), split="test")
        reference, _ = ds.get_batch(torch.arange(min(len(ds), 2000)))
    write_bytes_atomic(out_dir / "grid.png", samples_png(first[:GRID_SAMPLES], reference, title=f"{s['n']} samples"))
    if snapshots and first.dim() == 4:
        write_bytes_atomic(out_dir / "chain.png", chain_strip_png(snapshots, snapshot_steps,
                                                                     unit="round" if pool else "step"))
        files["chain"] = str(out_dir / "chain.png")

    if condition is not None and condition.reference is not None:
        write_bytes_atomic(out_dir / "like.png", samples_png(condition.reference, None, title="reference"))
        files["like"] = str(out_dir / "like.png")

    if stopped is not None:  # what was drawn is saved; the metrics wait for a complete set
        signum = signum_of(stopped)
        s["interrupted_by"] = signal_name(signum)
        result = SampleResult(out_dir, done, s.get("steps", 0), seconds, files, {}, s)
        write_json(out_dir / "result.json", {"command": "sample", **result.to_dict()})
        raise Interrupted(f"interrupted by {signal_name(signum)} after {done} of {s['n_requested']} samples; the {done} "
                          f"finished are saved in {out_dir} (samples.safetensors, grid.png)",
                          f"run the command again for all {s['n_requested']}" + (" and the metrics" if opts.fid else ""),
                          signum)
    metrics: dict[str, Any] = {}
    if opts.fid:  # on the first eval.fid_samples samples (and as many eval.fid_reference images)
        metrics = fid_metrics(run, first[: run.spec.eval.fid_samples], cli_data_root=cli_data_root,
                              device=torch_device, reporter=reporter)
    if condition is not None:
        s["condition"] = condition.description
        if condition.target_class is not None:
            metrics.update(class_accuracy(run, iter_rows(samples_path, "samples", 256), condition.target_class,
                                          cli_data_root=cli_data_root, device=torch_device, reporter=reporter))
    result = SampleResult(out_dir, s["n"], s["steps"], seconds, files, metrics, s)
    write_json(out_dir / "result.json", {"command": "sample", **result.to_dict()})
    return result


def _energy_meter(run: LoadedRun, condition: Condition | None, s: dict[str, Any]) -> Any:
    """The energy the chains descend, as a function of images (None: the method has no energy to show)."""
    method = run.method
    if condition is not None:
        def conditional(images: torch.Tensor) -> torch.Tensor:
            return condition.energy_for(0, len(images))(method.to_model(images))

        return conditional
    if not isinstance(method, HasEnergy):
        return None
    return lambda images: method.energy(images, ema=s["ema"])


def _condition(run: LoadedRun, opts: SampleOptions, s: dict[str, Any], cli_data_root: str | None) -> Condition | None:
    if opts.like and opts.class_label:
        raise UsageError("--like and --class cannot be combined", "give one of them")
    if (opts.like or opts.class_label) and run.info.kind != "image":
        raise SpecError("conditional sampling is for image runs", "drop --like/--class")
    if opts.beta is not None and not isinstance(run.method, HasLatents):
        raise UsageError("--beta weighs CLEL's latent term", "drop --beta for this run")
    if opts.like:
        return instance_condition(run, opts.like, s["n"], cli_data_root, ema=s["ema"], beta=opts.beta)
    if opts.class_label:
        return class_condition(run, opts.class_label, cli_data_root, ema=s["ema"], beta=opts.beta)
    return None
