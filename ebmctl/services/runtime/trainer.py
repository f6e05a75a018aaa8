"""The training loop of a run: batches, steps, metrics, checkpoints, negatives grids, the divergence guard's
rollbacks, and exact restores. Under several processes every process runs it on its slice of each global
batch (:mod:`ebmctl.services.runtime.distributed`); rank 0 alone writes the run directory and reports."""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ebmctl import __version__
from ebmctl.checkpoints import load_tensors, save_tensors, write_bytes_atomic
from ebmctl.data import BatchStream, DataInfo, to_float
from ebmctl.errors import CapabilityError, CheckpointError, DivergenceError
from ebmctl.methods.capabilities import Refines, Samples, WideBatches
from ebmctl.methods.replication import Replicated
from ebmctl.methods.state import rng_state, set_rng_state
from ebmctl.recipes import RunSpec, build_method, condition_of, recipe_of, spec_to_json
from ebmctl.runs import (
    MODEL_CKPT,
    STATE_CKPT,
    append_metrics,
    read_metrics,
    truncate_metrics,
    update_run_json,
)
from ebmctl.services.runtime.datasets import conditioned_dataset, data_root, dataset_from
from ebmctl.services.runtime.distributed.processes import Processes, check_batches
from ebmctl.services.runtime.distributed.rank_state import check_world, local_part, rank_state, with_ranks
from ebmctl.services.runtime.generators import (
    GENERATOR_CKPT,
    generator_file,
)
from ebmctl.services.runtime.guard import GuardState, Remedies, negatives_diversity, problem
from ebmctl.services.runtime.loggers import Loggers, check_loggers, open_loggers
from ebmctl.services.runtime.pictures import samples_png, training_curves_png
from ebmctl.services.runtime.reporting import Reporter
from ebmctl.services.runtime.stopping import Interrupted, signal_name, stop_signals


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
        self.batch_size = self.method.data_batch_size if isinstance(self.method, WideBatches) else spec.train.batch_size
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
            parts = self.procs.gather(local_part(tensors, meta, recipe_of(self.spec).local_state))
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
        verb = next_verb(self.method)
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


def next_verb(method: Any) -> str:
    """The command to use a trained run of ``method`` with."""
    return "refine" if isinstance(method, Refines) else "sample" if isinstance(method, Samples) else "probe"
