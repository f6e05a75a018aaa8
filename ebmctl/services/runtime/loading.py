"""Rebuilding a trained method from a model checkpoint alone (its spec travels in the metadata)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from ebmctl.checkpoints import load_tensors
from ebmctl.data import DataInfo
from ebmctl.errors import CapabilityError, CheckpointError, SpecError
from ebmctl.methods.base import PersistentChainEbm
from ebmctl.methods.capabilities import chain_buffer
from ebmctl.recipes import RunSpec, build_method, validate_spec
from ebmctl.runs import MODEL_CKPT, SPEC_JSON, STATE_CKPT, RunRef, is_run_dir
from ebmctl.services.runtime.devices import resolve_device
from ebmctl.services.runtime.distributed.rank_state import merged_buffer
from ebmctl.services.runtime.weights import load_method_weights


@dataclass
class LoadedRun:
    ref: RunRef
    spec: RunSpec
    info: DataInfo
    method: PersistentChainEbm
    step: int
    meta: dict[str, Any]
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))


def info_from_doc(doc: dict[str, Any], split: str) -> DataInfo:
    """The DataInfo a checkpoint records; ValueError or TypeError when it is damaged."""
    kind, shape = doc["kind"], doc["shape"]
    if not isinstance(doc["name"], str) or kind not in ("image", "points") or not isinstance(shape, list):
        raise ValueError("data is not a dataset description")
    if not all(type(v) is int for v in shape):  # bools and floats are damage too
        raise ValueError("data.shape holds values that are not integers")
    if kind == "points" and shape != [2]:
        raise ValueError("2D points with a shape other than [2]")
    if kind == "image" and (len(shape) != 3 or shape[0] not in (1, 3)
                            or not all(1 <= v <= MAX_SIDE for v in shape[1:])):
        raise ValueError(f"an image shape of {shape}")
    num_classes = doc.get("num_classes", 0)
    names = [doc.get("class_names", []), doc.get("attribute_names", [])]
    if type(num_classes) is not int or num_classes < 0 or not all(
            isinstance(n, list) and all(isinstance(v, str) for v in n) for n in names):
        raise ValueError("class or attribute names that are not lists of strings")
    return DataInfo(
        name=doc["name"],
        kind=kind,
        split=split,
        shape=tuple(shape),
        num_classes=num_classes,
        class_names=tuple(names[0]),
        attribute_names=tuple(names[1]),
    )


MAX_SIDE = 4096  # larger than any image size a spec allows
# Parts of a spec that decide which weights a run has: a model checkpoint must agree with its run's spec.json.
IDENTITY = (("method",), ("net",), ("data", "name"), ("data", "image_size"), ("data", "channels"))


def load_run(ref: RunRef, device: torch.device) -> LoadedRun:
    """Load the model checkpoint of ``ref`` into a freshly built method on ``device``."""
    tensors, meta = load_tensors(ref.checkpoint)
    if meta.get("kind") != "model" or not isinstance(meta.get("spec"), dict) or not isinstance(meta.get("data"), dict):
        what = f"a {meta['kind']} file" if meta.get("kind") in ("state", "generator", "samples") else "damaged"
        raise CheckpointError(f"{ref.checkpoint} is not an ebmctl model checkpoint ({what})",
                              "pass a run directory or its checkpoints/model.safetensors")
    try:
        spec = validate_spec(meta["spec"])
    except SpecError as exc:
        raise CheckpointError(f"{ref.checkpoint} carries a spec this version cannot read ({exc.message})",
                              "use the ebmctl version that wrote it") from None
    except (TypeError, ValueError, AttributeError, KeyError, RecursionError):
        raise CheckpointError(f"{ref.checkpoint} carries a damaged spec", "use another checkpoint") from None
    step = meta.get("step", 0)
    try:
        if type(step) is not int or step < 0:
            raise ValueError(f"step {step!r}")
        info = info_from_doc(meta["data"], spec.data.split)
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{ref.checkpoint} has damaged metadata ({exc})", "use another checkpoint") from None
    _check_same_run(ref, spec)
    try:
        method = build_method(spec, info, device)
    except SpecError as exc:  # a spec that validates but describes a net that cannot take the recorded data
        raise CheckpointError(f"{ref.checkpoint} describes a model this version cannot build ({exc.message})",
                              "use another checkpoint") from None
    load_method_weights(method, tensors, ref.checkpoint)
    return LoadedRun(ref, spec, info, method, step, meta, device)


def _check_same_run(ref: RunRef, spec: RunSpec) -> None:
    """A model checkpoint inside a run directory must be that run's: same method, net and data shape as the run's
    spec.json (a checkpoint copied over from another run is refused). Loose checkpoints carry their own spec."""
    path = ref.run_dir / SPEC_JSON
    if not is_run_dir(ref.run_dir) or ref.checkpoint.resolve() != (ref.run_dir / MODEL_CKPT).resolve():
        return
    try:
        saved = validate_spec(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError, AttributeError, RecursionError, SpecError):
        return  # the checkpoint carries its own spec; a damaged spec.json is reported by the commands that read it
    theirs, ours = saved.model_dump(mode="json"), spec.model_dump(mode="json")
    differ = [".".join(k) for k in IDENTITY if _part(theirs, k) != _part(ours, k)]
    if differ:
        verb = "differs" if len(differ) == 1 else "differ"
        raise CheckpointError(f"{ref.checkpoint} does not belong to run {ref.run_dir.name}: its {', '.join(differ)} "
                              f"{verb} from {path.name}",
                              "the checkpoint was copied from another run; put back the run's own checkpoint, or pass "
                              "the other checkpoint's file to --run")


def _part(doc: Any, keys: tuple[str, ...]) -> Any:
    for key in keys:
        doc = doc.get(key) if isinstance(doc, dict) else None
    return doc


def load_replay_buffer(run: LoadedRun) -> None:
    """Fill the method's replay buffer from the run's training state (for ``--init buffer``)."""
    buffer = chain_buffer(run.method)  # encoder and GAN methods keep no chains
    path = run.ref.run_dir / STATE_CKPT
    if buffer is None:
        raise CheckpointError(f"{run.spec.method.name} run {run.ref.run_dir.name} keeps no replay buffer",
                              "use --init noise")
    if not path.is_file():
        raise CheckpointError(f"{path} is missing, so there is no buffer to start from", "use --init noise")
    tensors, meta = load_tensors(path)
    if meta.get("kind") != "state":
        raise CheckpointError(f"{path} is not an ebmctl training state", "use --init noise")
    try:
        saved = meta["method"]["buffer"]
        if int(meta.get("world_size", 1)) > 1:  # trained on several processes: draw from all of their chains
            tensors, saved = merged_buffer(tensors, meta)
            if saved["capacity"] != buffer.capacity:
                buffer = type(buffer)(saved["capacity"], quantize=buffer.quantize, value_range=buffer.value_range,
                                      device=buffer.device)
        buffer.load_state(tensors, saved)
    except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise CheckpointError(f"{path} holds no replay buffer this run can use ({first})",
                              "use --init noise, or resume training to write a new state") from None
    if buffer is not chain_buffer(run.method):
        run.method.chains = replace(run.method.chains, buffer=buffer)


def open_run(ref: RunRef, device: str, needs: type | None = None, refusal: tuple[str, str] = ("", "")) -> LoadedRun:
    """Every command's prologue: the run ``ref`` names, loaded on ``device``, and refused when its method lacks
    the capability ``needs`` (:mod:`ebmctl.methods.capabilities`) with ``refusal``: the message and the hint,
    formatted with ``{method}`` and ``{run}``."""
    run = load_run(ref, resolve_device(device))
    if needs is not None and not isinstance(run.method, needs):
        message, hint = (part.format(method=run.spec.method.name, run=ref.run_dir.name) for part in refusal)
        raise CapabilityError(message, hint)
    return run
