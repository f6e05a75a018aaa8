"""`ebmctl sample`: draw samples from a run with the test-time schedule; optional FID/KID/PR."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from ebmctl.checkpoints import write_bytes_atomic
from ebmctl.data import to_float
from ebmctl.data.classes import set_label
from ebmctl.data.registry import dataset_entry, dataset_names
from ebmctl.errors import CapabilityError, SpecError, UsageError
from ebmctl.runs import RunRef, command_dir, output_base, write_json
from ebmctl.samplers.fastpath import PRECISIONS
from ebmctl.samplers.langevin import LangevinParams
from ebmctl.samplers.pool import PoolSchedule
from ebmctl.samples_file import StreamingTensorWriter, iter_rows, streaming_tensor_file
from ebmctl.services.build import data_root, dataset_from, every_class, resolve_device
from ebmctl.services.chain_progress import ChainProgress
from ebmctl.services.conditioning import Condition, class_condition, instance_condition
from ebmctl.services.loading import LoadedRun, load_replay_buffer, load_run
from ebmctl.services.pictures import chain_strip_png, samples_png
from ebmctl.services.reporting import NullReporter, Reporter
from ebmctl.services.stopping import Interrupted, signal_name, signum_of, stop_signals
from ebmctl.specs import DataSpec

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


def cache_dir() -> Path:
    return Path(os.environ.get("EBMCTL_CACHE", Path.home() / ".cache" / "ebmctl")).expanduser()


def _settings(run: LoadedRun, opts: SampleOptions) -> dict[str, Any]:
    d = run.spec.sample
    s = {
        # --fid without --n draws as many samples as the FID protocol scores (eval.fid_samples)
        "n": opts.n if opts.n is not None else max(d.n, run.spec.eval.fid_samples) if opts.fid else d.n,
        "steps": opts.steps if opts.steps is not None else d.steps,
        "init": opts.init or d.init,
        "aug_every": opts.aug_every if opts.aug_every is not None else d.aug_every,
        "plain_steps": opts.plain_steps if opts.plain_steps is not None else d.plain_steps,
        "step_size": opts.step_size if opts.step_size is not None else (d.step_size or run.spec.sampler.step_size),
        "noise": opts.noise if opts.noise is not None else (d.noise if d.noise is not None else run.spec.sampler.noise),
        "seed": opts.seed,
        "ema": opts.ema and run.method.has_ema,
        "precision": opts.precision or run.spec.sampler.precision,
    }
    if s["n"] < 1 or s["steps"] < 1:
        raise UsageError("--n and --steps must be at least 1", "e.g. ebmctl sample --steps 600 --n 64")
    if opts.fid:
        check_fid_count(s["n"], "drop --fid")
    if s["init"] not in ("noise", "buffer"):
        raise UsageError(f"unknown --init {s['init']!r}", "use noise or buffer")
    if s["precision"] not in PRECISIONS:
        raise UsageError(f"unknown --precision {s['precision']!r}", f"use one of {', '.join(PRECISIONS)}")
    if s["plain_steps"] > s["steps"]:
        s["plain_steps"] = s["steps"]
    s["schedule"] = opts.schedule or d.schedule
    if s["schedule"] == "pool":
        _pool_settings(run, opts, s)
    elif s["schedule"] != "chains":
        raise UsageError(f"unknown --schedule {s['schedule']!r}", "use chains or pool")
    if run.spec.method.name == "hat":  # its own joint sampler: the run's epsilons, not step size and noise
        method = run.spec.method
        s.update(step_size=None, noise=None, epsilon=getattr(method, "epsilon", None),
                 epsilon_latent=getattr(method, "epsilon_latent", None))
    return s


def check_fid_count(n: int, without: str) -> None:
    """Refuse, before sampling, fewer samples than FID/KID and precision/recall can be computed on."""
    from ebmctl.evaluation.fid import MIN_IMAGES

    if n < MIN_IMAGES:
        raise UsageError(f"FID/KID and precision/recall need at least {MIN_IMAGES} samples; --n is {n}",
                         f"raise --n (e.g. --n 1000), or {without}")


def _pool_settings(run: LoadedRun, opts: SampleOptions, s: dict[str, Any]) -> None:
    """Check and record the pool schedule's settings in ``s`` (its rounds replace steps and plain_steps)."""
    if opts.steps is not None or opts.plain_steps is not None:
        raise UsageError("--steps and --plain-steps set the chains schedule; this run samples with the pool schedule",
                         "add --schedule chains, or leave them out to run the pool's rounds")
    if not hasattr(run.method, "sample_pool"):
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
    sampler = getattr(run.method, "sampler", None)
    if not isinstance(sampler, LangevinParams):
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
    torch_device = resolve_device(device)
    run = load_run(ref, torch_device)
    if "sample" not in run.method.CAPABILITIES:
        raise CapabilityError(f"method {run.spec.method.name} learns a representation and draws no samples",
                              "probe it with `ebmctl probe`, or sample a run of an energy-based method")
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
    if not callable(getattr(method, "energy", None)):
        return None
    return lambda images: method.energy(images, ema=s["ema"])


def _condition(run: LoadedRun, opts: SampleOptions, s: dict[str, Any], cli_data_root: str | None) -> Condition | None:
    if opts.like and opts.class_label:
        raise UsageError("--like and --class cannot be combined", "give one of them")
    if (opts.like or opts.class_label) and run.info.kind != "image":
        raise SpecError("conditional sampling is for image runs", "drop --like/--class")
    if opts.beta is not None and "latents" not in run.method.CAPABILITIES:
        raise UsageError("--beta weighs CLEL's latent term", "drop --beta for this run")
    if opts.like:
        return instance_condition(run, opts.like, s["n"], cli_data_root, ema=s["ema"], beta=opts.beta)
    if opts.class_label:
        return class_condition(run, opts.class_label, cli_data_root, ema=s["ema"], beta=opts.beta)
    return None


def class_judge(run: LoadedRun, *, cli_data_root: str | None, device: torch.device, reporter: Reporter) -> Any:
    """The in-domain class judge of the run's dataset (trained on first use, then cached)."""
    from ebmctl.evaluation.judges import load_or_train_judge

    spec = run.spec
    root = data_root(spec.data.root, cli_data_root)
    shape = run.info.shape
    data = every_class(spec.data)  # the judge is the dataset's, shared by every run on it through the cache
    test = _reference_split(data, root, shape)
    train_ds = dataset_from(data, root=root, split=data.split, image_size=shape[-1], channels=shape[0])
    path = cache_dir() / "judges" / f"{spec.data.name}-{shape[0]}x{shape[1]}x{shape[2]}.safetensors"
    with reporter.progress(f"judge for {spec.data.name}", spec.eval.judge_steps) as bar:
        judge, trained = load_or_train_judge(
            path, train_ds, test, steps=spec.eval.judge_steps, device=str(device),
            progress=lambda step, total, m: bar.update(step),
        )
    if trained:
        reporter.info(f"trained the {spec.data.name} judge ({path})")
    return judge


def class_accuracy(run: LoadedRun, samples: torch.Tensor | Iterable[torch.Tensor], target: int, *,
                   cli_data_root: str | None, device: torch.device, reporter: Reporter) -> dict[str, Any]:
    """The share of class-conditional samples (a tensor, or its chunks in order) the class judge assigns to the
    requested class."""
    judge = class_judge(run, cli_data_root=cli_data_root, device=device, reporter=reporter).to(device).eval()
    chunks = samples.split(256) if isinstance(samples, torch.Tensor) else samples
    with torch.no_grad():
        pred = torch.cat([judge.logits(c.to(device)).argmax(1).cpu() for c in chunks])
    names = list(judge.meta.get("class_names") or [])
    return {"class_accuracy": float((pred == target).float().mean()), "target_class": names[target] if names else target,
            "judge_test_accuracy": judge.meta.get("test_accuracy")}


def fid_metrics(
    run: LoadedRun, samples: torch.Tensor, *, cli_data_root: str | None, device: torch.device, reporter: Reporter
) -> dict[str, Any]:
    """FID/KID/precision/recall of ``samples`` against the run's dataset, with the extractor named."""
    from ebmctl.evaluation.fid import image_metrics

    spec = run.spec
    root = data_root(spec.data.root, cli_data_root)
    shape = run.info.shape
    ref, split = _fid_reference(spec, root, shape)
    n = len(samples)
    idx = torch.randperm(len(ref), generator=torch.Generator().manual_seed(0))[:n]
    reference = to_float(ref.get_batch(idx)[0], dequantize=False)
    weights = spec.eval.inception_weights
    out: dict[str, Any] = {}
    judge = None
    if weights is None or ref.info.num_classes > 0:
        judge = class_judge(run, cli_data_root=cli_data_root, device=device, reporter=reporter)
        out.update(judge_report(judge, samples, device))
    reporter.info(f"computing FID/KID/PR on {n} samples vs {len(reference)} {set_label(ref.info)} {split} images")
    out["fid_reference"] = f"{set_label(ref.info)} {split}, {len(reference)} images"
    metrics = image_metrics(samples, reference, judge=None if weights else judge, inception_weights=weights)
    out.update(metrics)
    return out


def _fid_reference(spec: Any, root: Path | None, shape: tuple[int, ...]) -> tuple[Any, str]:
    """The images --fid compares with and their split: the one ``eval.fid_reference`` names (the held-out split
    of a dataset that has none is its training split)."""
    name = spec.data.name
    split = "train" if spec.eval.fid_reference == "train" else (
        dataset_entry(name).eval_split if name in dataset_names() else "test")
    try:
        return dataset_from(spec.data, root=root, split=split, image_size=shape[-1], channels=shape[0]), split
    except SpecError:
        if split == "train":
            raise
    fallback = spec.data.split
    return dataset_from(spec.data, root=root, split=fallback, image_size=shape[-1], channels=shape[0]), fallback


def _reference_split(data: DataSpec, root: Path | None, shape: tuple[int, ...]):
    try:
        return dataset_from(data, root=root, split="test", image_size=shape[-1], channels=shape[0])
    except SpecError:
        return dataset_from(data, root=root, split=data.split, image_size=shape[-1], channels=shape[0])


def judge_report(judge: Any, samples: torch.Tensor, device: torch.device, threshold: float = 0.9) -> dict[str, Any]:
    """How the judge sees the samples: the share it classifies with confidence >= ``threshold`` and the
    share of each class among its predictions (coverage)."""
    judge = judge.to(device).eval()
    probs = []
    with torch.no_grad():
        for chunk in samples.split(256):
            probs.append(torch.softmax(judge.logits(chunk.to(device)), dim=1).cpu())
    p = torch.cat(probs)
    conf, cls = p.max(dim=1)
    names = list(judge.meta.get("class_names") or range(p.shape[1]))
    counts = torch.bincount(cls, minlength=p.shape[1]).tolist()
    return {
        "judge_confident": float((conf >= threshold).float().mean()),
        "judge_threshold": threshold,
        "judge_test_accuracy": judge.meta.get("test_accuracy"),
        "judge_class_share": {str(names[i]): counts[i] / len(cls) for i in range(len(counts))},
    }
