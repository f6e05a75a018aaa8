"""Rebuilding a trained method from a model checkpoint alone (its spec travels in the metadata)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch

from ebmctl.checkpoints import load_tensors
from ebmctl.data import DataInfo
from ebmctl.errors import CheckpointError, SpecError
from ebmctl.methods import PersistentChainEbm
from ebmctl.runs import STATE_CKPT, RunRef
from ebmctl.services.build import build_method, load_method_weights
from ebmctl.services.distributed import merged_buffer
from ebmctl.specs import RunSpec, validate_spec


@dataclass
class LoadedRun:
    ref: RunRef
    spec: RunSpec
    info: DataInfo
    method: PersistentChainEbm
    step: int
    meta: dict[str, Any]


def info_from_doc(doc: dict[str, Any], split: str) -> DataInfo:
    return DataInfo(
        name=doc["name"],
        kind=doc["kind"],
        split=split,
        shape=tuple(doc["shape"]),
        num_classes=int(doc.get("num_classes", 0)),
        class_names=tuple(doc.get("class_names", ())),
        attribute_names=tuple(doc.get("attribute_names", ())),
    )


def load_run(ref: RunRef, device: torch.device) -> LoadedRun:
    """Load the model checkpoint of ``ref`` into a freshly built method on ``device``."""
    tensors, meta = load_tensors(ref.checkpoint)
    if meta.get("kind") != "model" or "spec" not in meta or "data" not in meta:
        raise CheckpointError(f"{ref.checkpoint} is not an ebmctl model checkpoint",
                              "pass a run directory or its checkpoints/model.safetensors")
    try:
        spec = validate_spec(meta["spec"])
    except SpecError as exc:
        raise CheckpointError(f"{ref.checkpoint} carries a spec this version cannot read ({exc.message})",
                              "use the ebmctl version that wrote it") from None
    try:
        info = info_from_doc(meta["data"], spec.data.split)
    except (KeyError, TypeError, ValueError):
        raise CheckpointError(f"{ref.checkpoint} has damaged metadata", "use another checkpoint") from None
    method = build_method(spec, info, device)
    load_method_weights(method, tensors, ref.checkpoint)
    return LoadedRun(ref, spec, info, method, int(meta.get("step", 0)), meta)


def load_replay_buffer(run: LoadedRun) -> None:
    """Fill the method's replay buffer from the run's training state (for ``--init buffer``)."""
    chains = getattr(run.method, "chains", None)  # encoder and GAN methods keep no chains
    buffer = chains.buffer if chains is not None else None
    path = run.ref.run_dir / STATE_CKPT
    if buffer is None:
        raise CheckpointError(f"{run.spec.method.name} run {run.ref.run_dir.name} keeps no replay buffer",
                              "use --init noise")
    if not path.is_file():
        raise CheckpointError(f"{path} is missing, so there is no buffer to start from", "use --init noise")
    tensors, meta = load_tensors(path)
    saved = meta["method"]["buffer"]
    if int(meta.get("world_size", 1)) > 1:  # trained on several processes: draw from all of their chains
        tensors, saved = merged_buffer(tensors, meta)
        if saved["capacity"] != buffer.capacity:
            buffer = type(buffer)(saved["capacity"], quantize=buffer.quantize, value_range=buffer.value_range,
                                  device=buffer.device)
            run.method.chains = replace(chains, buffer=buffer)
    buffer.load_state(tensors, saved)
