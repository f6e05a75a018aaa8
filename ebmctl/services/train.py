"""`ebmctl train`: build a run from a spec, train it with checkpoints, resume it exactly.

Under torchrun (or ``ebmctl train --nproc N``) every process runs the same loop on its slice of each global
batch (:mod:`ebmctl.services.runtime.distributed`); rank 0 alone writes the run directory and reports progress."""

from __future__ import annotations

import shutil
from contextlib import suppress
from pathlib import Path
from typing import Any

from ebmctl.checkpoints import read_meta
from ebmctl.errors import CheckpointError, DivergenceError, RunError, SpecError, UsageError
from ebmctl.methods.capabilities import Samples
from ebmctl.recipes import RunSpec, recipe_of, validate_spec
from ebmctl.run_lock import RunLock
from ebmctl.runs import (
    METRICS,
    MODEL_CKPT,
    RUN_JSON,
    SPEC_JSON,
    STATE_CKPT,
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
from ebmctl.services.runtime.distributed.processes import lost_peer, session
from ebmctl.services.runtime.generators import (
    GeneratorSource,
    resolve_generator,
)
from ebmctl.services.runtime.memory import check_buffer_fits
from ebmctl.services.runtime.reporting import NullReporter, Reporter
from ebmctl.services.runtime.stopping import Interrupted, signal_name, signum_of
from ebmctl.services.runtime.trainer import Trainer, TrainResult, seed_everything
from ebmctl.specs import deep_merge

# Keys a resume may change: how long to train and how often to write, never what is trained.
RESUMABLE_KEYS = ("train.steps", "train.log_every", "train.checkpoint_every", "train.sample_every", "train.loggers",
                  "data.root", "data.workers", "data.download", "data.verify_checksums", "sample", "eval", "guard")


# Errors every process raises at the same step (the stop flag and the metrics are agreed on by all).
COLLECTIVE_ENDS: tuple[type[BaseException], ...] = (Interrupted, DivergenceError)


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
        recipe = recipe_of(spec)
        foundation = recipe.generator_to_build_on(spec)
        if foundation is not None:
            source = resolve_generator(foundation, runs_root)
            spec = recipe.with_generator(spec, source.arch)
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
    imported = (read_json(run_dir / RUN_JSON) if (run_dir / RUN_JSON).is_file() else {}).get("imported")
    if isinstance(imported, dict):
        preset = read_json(run_dir / SPEC_JSON).get("preset")
        raise UsageError(f"{run_dir.name} was imported from {imported.get('source')}: it holds the released weights, "
                         "not a training state to continue", "sample, score or probe it as it is; to train, start a "
                         f"run: ebmctl train --preset {preset or '<preset>'}")
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
            foundation = recipe_of(spec).generator_to_build_on(spec)
            if foundation is not None:  # killed before its first checkpoint: read the generator again
                parents = read_json(run_dir / RUN_JSON).get("parents") or [foundation]
                _install_generator(trainer, resolve_generator(parents[0], run_dir.parent))
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
    use = f"ebmctl {'sample' if isinstance(trainer.method, Samples) else 'probe'} --run {run_dir}"
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
