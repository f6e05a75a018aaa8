"""`ebmctl train`: build a run from a spec, train it with checkpoints, resume it exactly.

Under torchrun (or ``ebmctl train --nproc N``) every process runs the same loop on its slice of each global
batch (:mod:`ebmctl.services.distributed`); rank 0 alone writes the run directory and reports progress.
"""

from __future__ import annotations

import math
import shutil
import signal
import time
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ebmctl import __version__
from ebmctl.checkpoints import load_tensors, read_meta, save_tensors, write_bytes_atomic
from ebmctl.data import BatchStream, DataInfo, to_float
from ebmctl.errors import CapabilityError, CheckpointError, DivergenceError, RunError, SpecError
from ebmctl.methods.parts import Replicated
from ebmctl.methods.state import rng_state, set_rng_state
from ebmctl.run_lock import RunLock
from ebmctl.runs import (
    METRICS,
    MODEL_CKPT,
    RUN_JSON,
    SPEC_JSON,
    STATE_CKPT,
    append_metrics,
    check_free_space,
    ensure_writable,
    new_run_dir,
    read_json,
    read_metrics,
    start_run_json,
    sweep_staging,
    truncate_metrics,
    update_run_json,
    write_json,
)
from ebmctl.services.build import (
    build_method,
    condition_of,
    conditioned_dataset,
    data_root,
    dataset_from,
)
from ebmctl.services.distributed import (
    Processes,
    check_batches,
    check_world,
    local_part,
    lost_peer,
    rank_state,
    session,
    with_ranks,
)
from ebmctl.services.generators import GENERATOR_CKPT, GeneratorSource, generator_file, resolve_generator
from ebmctl.services.guard import GuardState, Remedies, negatives_diversity, problem
from ebmctl.services.loggers import Loggers, check_loggers, open_loggers
from ebmctl.services.memory import check_buffer_fits
from ebmctl.services.pictures import samples_png, training_curves_png
from ebmctl.services.reporting import NullReporter, Reporter
from ebmctl.services.stopping import Interrupted, signal_name, signum_of, stop_signals
from ebmctl.specs import RunSpec, deep_merge, spec_to_json, validate_spec

# Keys a resume may change: how long to train and how often to write, never what is trained.
RESUMABLE_KEYS = ("train.steps", "train.log_every", "train.checkpoint_every", "train.sample_every", "train.loggers",
                  "data.root", "data.workers", "data.download", "data.verify_checksums", "sample", "eval", "guard")


# Errors every process raises at the same step (the stop flag and the metrics are agreed on by all).
COLLECTIVE_ENDS: tuple[type[BaseException], ...] = (Interrupted, DivergenceError)


@dataclass
class TrainResult:
    run_dir: Path
    status: str
    step: int
    total_steps: int
    seconds: float
    final: dict[str, float] = field(default_factory=dict)
    next_command: str = ""
    rollbacks: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "run": str(self.run_dir),
            "status": self.status,
            "step": self.step,
            "total_steps": self.total_steps,
            "seconds": round(self.seconds, 2),
            "checkpoint": str(self.run_dir / MODEL_CKPT),
            "final": self.final,
            "rollbacks": self.rollbacks,
            "next": self.next_command,
        }


def seed_everything(seed: int) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def info_doc(info: DataInfo) -> dict[str, Any]:
    return {"name": info.name, "kind": info.kind, "shape": list(info.shape), "num_classes": info.num_classes,
            "class_names": list(info.class_names), "attribute_names": list(info.attribute_names)}


class _Window:
    """Running means of the metrics between two lines of metrics.jsonl (saved in checkpoints)."""

    def __init__(self, state: dict[str, Any] | None = None) -> None:
        state = state or {}
        self.sums: dict[str, float] = dict(state.get("sums", {}))
        self.counts: dict[str, int] = dict(state.get("counts", {}))

    def add(self, metrics: dict[str, float]) -> None:
        for k, v in metrics.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
            self.counts[k] = self.counts.get(k, 0) + 1

    def means(self) -> dict[str, float]:
        return {k: self.sums[k] / self.counts[k] for k in self.sums}

    def reset(self) -> None:
        self.sums, self.counts = {}, {}

    def state(self) -> dict[str, Any]:
        return {"sums": self.sums, "counts": self.counts}


class Trainer:
    """The training loop of one run (of one process, when ``procs`` has several)."""

    def __init__(self, spec: RunSpec, *, device: torch.device, cli_data_root: str | None, reporter: Reporter,
                 run_dir: Path | None = None, procs: Processes | None = None) -> None:
        self.spec = spec
        self.run_dir = run_dir or Path(".")
        self.device = device
        self.reporter = reporter
        self.procs = procs or Processes(device=device)
        check_batches(spec, self.procs.world)
        check_loggers(spec.train.loggers)
        self.loggers = Loggers()  # opened by run(): TensorBoard and the like, beside metrics.jsonl
        self.dataset = dataset_from(spec.data, root=data_root(spec.data.root, cli_data_root))
        self.info = self.dataset.info
        self.method = build_method(spec, self.info, device)
        self.batch_size = getattr(self.method, "data_batch_size", spec.train.batch_size)  # the global batch
        self.condition = condition_of(spec)
        self.step = 0
        self.window = _Window()
        self.spec_doc = spec_to_json(spec)
        self.guard = GuardState()
        self.remedies = Remedies(self.method)
        if self.procs.parallel:
            self._replicate()

    def _replicate(self) -> None:
        """Wrap the trained nets for gradient averaging and take this process's share of the buffers. The nets
        were built from the run's seed on every process; rank 0 then draws on as one process would, rank r > 0
        reseeds with seed + r so that the processes draw different chains and noise."""
        if not isinstance(self.method, Replicated):
            raise CapabilityError(f"{self.spec.method.name} cannot train on several processes",
                                  "train it with one process (drop --nproc)")
        self.method.replicate(self.procs.replicas())
        if self.procs.rank > 0:
            seed_everything(self.spec.seed + self.procs.rank)

    def resume_command(self) -> str:
        nproc = f" --nproc {self.procs.world}" if self.procs.parallel else ""
        return f"ebmctl train --resume {self.run_dir}{nproc}"

    # ------------------------------------------------------------------ checkpoints

    def save(self) -> None:
        """Write the checkpoints. With several processes every one of them calls this at the same step: rank 0
        collects each one's own state (buffer, RNG) into its state file and writes alone.

        The weights go first and the state last: a resume starts from the state's step, so a kill between the
        writes only repeats steps whose weights were already on disk, never leaves newer state than weights."""
        tensors = self.method.state_tensors()
        rng_tensors, rng_meta = rng_state()
        tensors.update(rng_tensors)
        meta = {"kind": "state", "format": 1, "step": self.step, "spec": self.spec_doc, "method": self.method.state_meta(),
                "rng": rng_meta, "window": self.window.state(), "guard": self.guard.to_meta(), "ebmctl": __version__}
        if self.procs.parallel:
            parts = self.procs.gather(local_part(tensors, meta))
            if parts is None:
                return
            tensors, meta = with_ranks(tensors, meta, parts)
        model_meta = {"kind": "model", "format": 1, "step": self.step, "spec": self.spec_doc, "method": self.spec.method.name,
                      "data": info_doc(self.info), "ebmctl": __version__}
        weights = self.method.weight_tensors()
        save_tensors(self.run_dir / MODEL_CKPT, weights, model_meta)
        generator = generator_file(self.spec, weights, self.info.shape, self.step)
        if generator is not None:
            save_tensors(self.run_dir / GENERATOR_CKPT, *generator)
        save_tensors(self.run_dir / STATE_CKPT, tensors, meta)
        update_run_json(self.run_dir, step=self.step)
        self.write_curves()

    def restore(self) -> None:
        """Load the last checkpoint's training state; a state file that is not this run's is a one-line error."""
        path = self.run_dir / STATE_CKPT
        tensors, meta = load_tensors(path)
        hint = "the state file was replaced or damaged; start a new run, or restore the file"
        if meta.get("kind") != "state" or not isinstance(meta.get("spec"), dict):
            raise CheckpointError(f"{path} is not a training-state checkpoint", hint)
        saved = meta["spec"]
        for key in ("method", "net"):
            if saved.get(key) != self.spec_doc.get(key):
                raise CheckpointError(f"{path} belongs to another run (its {key} differs from spec.json)", hint)
        check_world(self.run_dir, self.procs.world)
        try:
            tensors, meta = rank_state(tensors, meta, self.procs.rank)
            self.method.load_state(tensors, meta["method"])
            set_rng_state(tensors, meta["rng"])
            step = int(meta["step"])
            window = _Window(meta.get("window"))
            guard = GuardState.from_meta(meta.get("guard"))
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError) as exc:
            first = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
            raise CheckpointError(f"{path} does not fit this run ({first})", hint) from exc
        if not 0 <= step <= self.spec.train.steps:
            raise CheckpointError(f"{path} is at step {step}, outside 0..{self.spec.train.steps}", hint)
        self.step, self.window, self.guard = step, window, guard
        self.remedies.apply(self.guard)
        if self.procs.main:
            truncate_metrics(self.run_dir, self.step)

    def write_curves(self) -> None:
        records = read_metrics(self.run_dir)
        if records:
            title = f"{self.run_dir.name} ({self.spec.method.name} on {self.info.name})"
            write_bytes_atomic(self.run_dir / "plots" / "training.png", training_curves_png(records, title))

    def write_negatives(self, tag: str) -> None:
        x = self.method.last_negatives
        if x is None:
            return
        reference = None
        if x.dim() == 2:
            reference, _ = self.dataset.get_batch(torch.arange(min(len(self.dataset), 2000)))
        png = samples_png(x[:64].detach().cpu(), reference, title=f"negatives at step {self.step}")
        write_bytes_atomic(self.run_dir / "samples" / f"negatives-{tag}.png", png)
        self.loggers.images("negatives", self.step, x[:64])

    # ------------------------------------------------------------------ loop

    def run(self) -> TrainResult:
        spec, tr, procs = self.spec, self.spec.train, self.procs
        fields = ("loss", "gap", "E+", "E-", "img/s")  # in the order a narrow terminal keeps them
        started = time.perf_counter()
        window_start, window_images = time.perf_counter(), 0
        if not (self.run_dir / STATE_CKPT).exists():
            self.save()  # step 0: the first good checkpoint a rollback or a resume can return to
        if procs.main:
            self.loggers = open_loggers(tr.loggers, self.run_dir, self.step)
        stream = self._batches()
        with stop_signals(graceful=True) as stop_request, self.reporter.progress(
            "train", tr.steps, unit="step", fields=fields
        ) as bar:
            bar.update(self.step)
            while self.step < tr.steps:
                x, labels = next(stream)
                x = to_float(x, spec.data.dequantize).to(self.device)
                y = labels.to(self.device) if self.condition is not None else None
                metrics = self.method.train_step(x, y)
                metrics.update(negatives_diversity(self.method, x))
                metrics, stop = procs.agree(metrics, stop_request.requested)  # means over the processes
                self.step += 1
                reason = problem(metrics, spec.guard) if spec.guard.enabled else _non_finite(metrics)
                if reason is not None:
                    self._roll_back(reason)
                    stream = self._batches()
                    bar.update(self.step)
                    window_start, window_images = time.perf_counter(), 0
                    continue
                self.window.add(metrics)
                window_images += x.shape[0] * procs.world
                if self.step % tr.log_every == 0 or self.step == tr.steps:
                    now = time.perf_counter()
                    record = {"step": self.step, **self.window.means(),
                              "images_per_s": window_images / max(now - window_start, 1e-9),
                              "elapsed_s": now - started}
                    if procs.main:
                        append_metrics(self.run_dir, record)
                        self.loggers.scalars(record)
                    self.window.reset()
                    window_start, window_images = now, 0
                    bar.update(self.step, **{"loss": record.get("loss"), "E+": record.get("e_pos"), "E-": record.get("e_neg"),
                                             "gap": record.get("gap"), "img/s": record["images_per_s"]})
                else:
                    bar.update(self.step)
                if self.step % tr.sample_every == 0 and procs.main:
                    self.write_negatives(f"step-{self.step:07d}")
                if self.step % tr.checkpoint_every == 0 or self.step == tr.steps:
                    self.save()
                if stop and self.step < tr.steps:
                    self.save()
                    if procs.main:
                        update_run_json(self.run_dir, status="interrupted")
                    signum = stop_request.signum or signal.SIGINT  # another process of the run was signalled
                    raise Interrupted(f"interrupted at step {self.step}/{tr.steps} by {signal_name(signum)}; a "
                                      "checkpoint was saved", f"resume with: {self.resume_command()}", signum)
        if not procs.main:
            return TrainResult(self.run_dir, "completed", self.step, tr.steps, time.perf_counter() - started)
        self.write_negatives("final")
        self.loggers.close()
        update_run_json(self.run_dir, status="completed", step=self.step)
        last = [r for r in read_metrics(self.run_dir) if "event" not in r]
        final = {k: v for k, v in (last[-1] if last else {}).items() if k != "step"}
        caps = self.method.CAPABILITIES
        verb = "refine" if "refine" in caps else "sample" if "sample" in caps else "probe"
        return TrainResult(self.run_dir, "completed", self.step, tr.steps, time.perf_counter() - started, final,
                           next_command=f"ebmctl {verb} --run {self.run_dir}", rollbacks=self.guard.rollbacks)

    def _batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """This process's data batches from the current step on (the same ones a resumed run reads)."""
        labelled = conditioned_dataset(self.dataset, self.condition)
        return iter(BatchStream(labelled, self.batch_size, self.spec.seed, start_step=self.step,
                                workers=self.spec.data.workers, part=(self.procs.rank, self.procs.world)))

    def _roll_back(self, reason: str) -> None:
        """Return to the last good checkpoint and apply the guard's remedy, or stop when the rollbacks are spent.

        Every process reaches this at the same step (the metrics are agreed on), restores its own state and saves
        the remedied one at once, so a run killed right after a rollback resumes with the remedy in force."""
        guard, detected = self.spec.guard, self.step
        if not guard.enabled or self.guard.rollbacks >= guard.max_rollbacks:
            self._diverged(reason)
        state = self.guard
        self.restore()
        event = {"event": "rollback", "detected_at": detected, "to_step": self.step, "reason": reason,
                 "rollback": state.rollbacks + 1}
        state = state.after_rollback(guard, event)
        self.guard = state
        self.remedies.apply(state)
        emptied = self.remedies.empty_buffers() if guard.reinit_buffer else 0
        event.update(lr_scale=state.lr_scale, step_size=self.remedies.step_size(), buffers_emptied=emptied)
        self.save()
        if self.procs.main:
            append_metrics(self.run_dir, {"step": self.step, **event})
            self.loggers.event({"step": self.step, **event})
            update_run_json(self.run_dir, rollbacks=state.rollbacks, guard_events=state.events)
        remedy = [f"learning rates x{state.lr_scale:g}"]
        if guard.step_size_factor != 1.0 and event["step_size"] is not None:
            remedy.append(f"step size {event['step_size']:.4g}")
        if emptied:
            remedy.append("replay buffer emptied")
        self.reporter.warn(f"rollback {state.rollbacks}/{guard.max_rollbacks} at step {detected}: {reason}; "
                           f"back to step {self.step}, {', '.join(remedy)}")

    def _diverged(self, reason: str) -> None:
        guard = self.spec.guard
        if self.procs.main:
            update_run_json(self.run_dir, status="diverged", diverged_at=self.step, diverged_because=reason)
        if guard.enabled:
            raise DivergenceError(
                f"training diverged at step {self.step} ({reason}) after {self.guard.rollbacks} rollback(s); "
                "the last good checkpoint is kept",
                f"start again with a lower train.lr or sampler.step_size, or allow more rollbacks: "
                f"{self.resume_command()} --set guard.max_rollbacks={guard.max_rollbacks + 3}",
            )
        raise DivergenceError(
            f"training diverged at step {self.step} ({reason}); the last checkpoint is kept",
            "lower train.lr or sampler.step_size, then train again (or resume from the checkpoint)",
        )


def _non_finite(metrics: dict[str, float]) -> str | None:
    bad = [f"{k}={v}" for k, v in metrics.items() if not math.isfinite(v)]
    return f"non-finite {', '.join(bad)}" if bad else None


def train(
    spec: RunSpec,
    *,
    runs_root: Path,
    device: str = "auto",
    cli_data_root: str | None = None,
    reporter: Reporter | None = None,
) -> TrainResult:
    """Train a new run of ``spec`` under ``runs_root`` (as one of several processes when launched by torchrun).
    The run is locked (:mod:`ebmctl.run_lock`) from before its directory appears until training ends."""
    with session(device, collective=COLLECTIVE_ENDS) as procs, RunLock() as lock:
        reporter = (reporter or NullReporter()) if procs.main else NullReporter()
        if procs.main:
            ensure_writable(runs_root)  # before any work: an unwritable runs directory fails at once
            _report_staging(runs_root, reporter)
        torch_device = procs.device
        seed_everything(spec.seed)
        source = None
        if _stands_on_generator(spec):
            source = _generator_source(spec.hat.generator, runs_root)
            spec = spec.model_copy(update={"hat": spec.hat.model_copy(update={"generator_net": source.arch})})
        # Build everything (data, net) before the run directory exists: a bad spec leaves nothing behind.
        trainer = Trainer(spec, device=torch_device, cli_data_root=cli_data_root, reporter=reporter, procs=procs)
        check_buffer_fits(trainer.method, trainer.info.shape, torch_device, resuming=False)
        if source is not None:
            _install_generator(trainer, source)
        run_dir = None
        if procs.main:
            check_free_space(runs_root, 3 * _checkpoint_bytes(trainer))
            parents = [str(source.origin)] if source is not None else []

            def fill(folder: Path, name: str) -> None:
                lock.acquire(folder)  # the lock file travels with the folder when it is renamed into place
                write_json(folder / SPEC_JSON, trainer.spec_doc)
                start_run_json(folder, preset=spec.preset, method=spec.method.name, device=str(torch_device),
                               parents=parents, name=name)
                if procs.parallel:
                    update_run_json(folder, processes=procs.world, backend=procs.backend)

            run_dir = new_run_dir(runs_root, spec.preset or spec.method.name, fill)
            lock.moved_to(run_dir)
        trainer.run_dir = Path(procs.broadcast(str(run_dir)))
        where = f"{torch_device}" if not procs.parallel else f"{procs.world} processes, {procs.backend}"
        reporter.info(f"run {trainer.run_dir} ({spec.method.name}, {spec.net.name}, {trainer.info.name}, {where})")
        return _run_guarded(trainer, fresh=True)


def resume(
    run_dir: Path,
    *,
    overrides: dict[str, Any] | None = None,
    device: str = "auto",
    cli_data_root: str | None = None,
    reporter: Reporter | None = None,
) -> TrainResult:
    """Continue ``run_dir`` from its last checkpoint; ``overrides`` may only touch RESUMABLE_KEYS. A run trained
    on several processes resumes on as many. A run another process is training is refused."""
    with session(device, collective=COLLECTIVE_ENDS) as procs, RunLock() as lock:
        reporter = (reporter or NullReporter()) if procs.main else NullReporter()
        saved = read_json(run_dir / SPEC_JSON)
        for path in _flat_paths(overrides or {}):
            if not any(path == k or path.startswith(k + ".") for k in RESUMABLE_KEYS):
                raise SpecError(f"cannot change {path} when resuming", "only train.steps, logging intervals, "
                                "data.root, sample.*, eval.* and guard.* may change; start a new run for anything else")
        spec = validate_spec(deep_merge(saved, overrides or {}))
        if procs.main:
            ensure_writable(run_dir)
            lock.acquire(run_dir)  # before anything in the run is read for training or changed
        torch_device = procs.device
        seed_everything(spec.seed)
        trainer = Trainer(spec, device=torch_device, cli_data_root=cli_data_root, reporter=reporter, run_dir=run_dir,
                          procs=procs)
        check_buffer_fits(trainer.method, trainer.info.shape, torch_device, resuming=True)
        if procs.main:
            check_free_space(run_dir, 3 * _checkpoint_bytes(trainer))
        if (run_dir / STATE_CKPT).exists():
            trainer.restore()
        else:
            _refuse_to_start_over(trainer)
            if procs.main:
                truncate_metrics(run_dir, 0)
            if _stands_on_generator(spec):  # killed before its first checkpoint: read the generator again
                parents = read_json(run_dir / RUN_JSON).get("parents") or [spec.hat.generator]
                _install_generator(trainer, _generator_source(parents[0], run_dir.parent))
        if procs.main:
            _sweep_temporaries(run_dir)
            write_json(run_dir / SPEC_JSON, trainer.spec_doc)
            update_run_json(run_dir, status="running", device=str(torch_device),
                            **({"processes": procs.world, "backend": procs.backend} if procs.parallel else {}))
        reporter.info(f"resuming {run_dir} at step {trainer.step}/{spec.train.steps}")
        return _run_guarded(trainer)


def _refuse_to_start_over(trainer: Trainer) -> None:
    """Without its state file a run may only start from step 0 if it never trained past it (a kill before its
    first checkpoint); otherwise starting over would overwrite the weights it had reached."""
    run_dir = trainer.run_dir
    reached = {"run.json": read_json(run_dir / RUN_JSON).get("step", 0),
               METRICS: max((r.get("step", 0) for r in read_metrics(run_dir)), default=0)}
    with suppress(CheckpointError):
        if (run_dir / MODEL_CKPT).is_file():
            reached[MODEL_CKPT] = read_meta(run_dir / MODEL_CKPT).get("step", 0)
    where, step = max(reached.items(), key=lambda item: item[1] if isinstance(item[1], int) else 0)
    if not isinstance(step, int) or step <= 0:
        return
    caps = trainer.method.CAPABILITIES
    use = f"ebmctl {'sample' if 'sample' in caps else 'probe'} --run {run_dir}"
    again = f"ebmctl train --preset {trainer.spec.preset}" if trainer.spec.preset else "a new ebmctl train"
    raise CheckpointError(f"cannot resume {run_dir.name}: {STATE_CKPT} is missing, and the run had reached step {step} "
                          f"(recorded in {where}); starting over would overwrite that training",
                          f"put the state file back to resume exactly; or use the step-{step} model as it is: {use}; "
                          f"or start a new run: {again}")


def _report_staging(runs_root: Path, reporter: Reporter) -> None:
    removed = sweep_staging(runs_root)
    if removed:
        reporter.info(f"removed {len(removed)} half-made run folder(s) that killed runs left in {runs_root}: "
                      f"{', '.join(removed)}")


def _sweep_temporaries(run_dir: Path) -> None:
    """Remove the temporary files of writes a kill cut short (the files they were to replace are intact)."""
    for tmp in run_dir.rglob(".*.tmp"):
        if tmp.is_file():
            tmp.unlink(missing_ok=True)


def _checkpoint_bytes(trainer: Trainer) -> int:
    """The size of one model plus one state checkpoint of ``trainer``'s method."""
    method = trainer.method
    return sum(t.nbytes for part in (method.weight_tensors(), method.state_tensors()) for t in part.values())


def _stands_on_generator(spec: RunSpec) -> bool:
    """Refine and retrofit Hat EBMs build on a generator trained by another run."""
    return spec.method.name == "hat" and getattr(spec.method, "mode", "") != "synthesis"


def _generator_source(source: str | None, runs_root: Path) -> GeneratorSource:
    if source is None:
        raise SpecError("a refine or retrofit Hat EBM needs a generator to stand on",
                        "set hat.generator to an sngan/ae run, latest:PRESET or a generator file "
                        "(e.g. --set hat.generator=latest:sngan-shapes)")
    return resolve_generator(source, runs_root)


def _install_generator(trainer: Trainer, source: GeneratorSource) -> None:
    if tuple(source.shape) != tuple(trainer.info.shape):
        made, data = "x".join(map(str, source.shape)), "x".join(map(str, trainer.info.shape))
        raise SpecError(f"the generator {source.origin} makes {made} images; {trainer.info.name} has {data}",
                        "train the Hat EBM on the generator's data (data.name, data.image_size)")
    try:
        trainer.method.load_generator(source.tensors)
    except (RuntimeError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0][:160]
        raise SpecError(f"the generator {source.origin} does not match its recorded architecture ({first})",
                        "use an sngan/ae run or a generator file written by ebmctl") from None


def _run_guarded(trainer: Trainer, *, fresh: bool = False) -> TrainResult:
    """Run ``trainer``, recording how it ended in run.json. A new run that fails before its first step (a dataset
    file found corrupt, a full disk) leaves nothing behind: its directory holds no training to resume."""
    main = trainer.procs.main
    try:
        return trainer.run()
    except COLLECTIVE_ENDS:
        raise
    except KeyboardInterrupt as exc:  # a second signal: stopped at once, the last checkpoint stays
        if main:
            update_run_json(trainer.run_dir, status="interrupted")
        signum = signum_of(exc)
        raise Interrupted(f"interrupted at step {trainer.step} by {signal_name(signum)}; the last checkpoint stays",
                          f"resume with: {trainer.resume_command()}", signum) from None
    except BaseException as exc:
        if main and fresh and trainer.step == 0:
            shutil.rmtree(trainer.run_dir, ignore_errors=True)
        elif main:
            update_run_json(trainer.run_dir, status="failed", error=f"{type(exc).__name__}: {exc}"[:300])
        if trainer.procs.parallel and lost_peer(exc):
            first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
            raise RunError(f"lost contact with another training process ({first})",
                           f"see that process's error; then resume with: {trainer.resume_command()}") from exc
        raise


def _flat_paths(tree: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for k, v in tree.items():
        if isinstance(v, dict):
            out.extend(_flat_paths(v, f"{prefix}{k}."))
        else:
            out.append(f"{prefix}{k}")
    return out
