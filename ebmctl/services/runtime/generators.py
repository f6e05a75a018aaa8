"""The generator a Hat EBM stands on: found from a run, ``latest:PRESET`` or a generator file.

Runs whose method has a generator (sngan, ae, hat synthesis) also write ``checkpoints/generator.safetensors``:
the generator's weights alone, with metadata naming its architecture (``kind = "generator"``, ``arch``,
``shape``), so it can be handed to a Hat EBM anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from torch import Tensor

from ebmctl.checkpoints import load_tensors
from ebmctl.errors import CheckpointError, RunError, SpecError
from ebmctl.methods.state import unprefixed
from ebmctl.recipes import RunSpec, generator_arch, validate_spec
from ebmctl.runs import MODEL_CKPT, is_run_dir, list_runs, user_path
from ebmctl.specs import GeneratorSpec, preset_names

GENERATOR_CKPT = "checkpoints/generator.safetensors"
LATEST = "latest:"


@dataclass
class GeneratorSource:
    arch: GeneratorSpec
    tensors: dict[str, Tensor]  # model.* (and ema.* where the run kept an EMA)
    shape: tuple[int, ...]  # the images it makes
    origin: Path  # the run directory or file it came from


def generator_file(spec: RunSpec, weights: dict[str, Tensor], shape: tuple[int, ...],
                   step: int) -> tuple[dict[str, Tensor], dict[str, Any]] | None:
    """Tensors and metadata of a run's generator file, or None when the run has no generator of its own."""
    arch = generator_arch(spec)
    if arch is None:
        return None
    meta = {"kind": "generator", "format": 1, "arch": arch.model_dump(mode="json"), "shape": list(shape),
            "method": spec.method.name, "preset": spec.preset, "step": step}
    return unprefixed("generator.", weights), meta


def resolve_generator(source: str, runs_root: Path) -> GeneratorSource:
    """Read the generator ``source`` names: ``latest:PRESET``, a run directory (or its name under
    ``runs_root``), a run's model checkpoint, or a generator file."""
    if source.startswith(LATEST):
        return _from_checkpoint(_latest_of(source[len(LATEST):], runs_root) / MODEL_CKPT)
    path = user_path(source)
    if path.suffix == ".safetensors":
        if not path.is_file():
            raise RunError(f"generator file {path} does not exist", "give a run directory, latest:PRESET or a file")
        return _from_checkpoint(path)
    for candidate in (path, runs_root / source):
        if candidate.is_dir():
            if not is_run_dir(candidate):
                raise RunError(f"{candidate} is not a run directory", "point hat.generator at an sngan or ae run")
            return _from_checkpoint(candidate / MODEL_CKPT)
    raise RunError(f"generator {source!r} does not exist",
                   f"use latest:PRESET (e.g. latest:sngan-shapes), a run under {runs_root} or a .safetensors file")


def _latest_of(preset: str, runs_root: Path) -> Path:
    runs = [p for p, doc in list_runs(runs_root) if doc.get("preset") == preset and doc.get("status") == "completed"]
    if runs:
        return runs[-1]
    if preset not in preset_names():
        raise SpecError(f"hat.generator names an unknown preset {preset!r}", "e.g. latest:sngan-shapes")
    raise RunError(f"no completed {preset} run in {runs_root} to build the Hat EBM on",
                   f"train it first: ebmctl train --preset {preset}")


def _from_checkpoint(path: Path) -> GeneratorSource:
    if not path.is_file():
        raise RunError(f"{path} is missing", "train the generator run to its first checkpoint")
    tensors, meta = load_tensors(path)
    kind = meta.get("kind")
    try:
        if kind == "generator":
            arch = GeneratorSpec.model_validate(meta["arch"])
            return GeneratorSource(arch, tensors, tuple(int(v) for v in meta["shape"]), path)
        if kind == "model":
            spec = validate_spec(meta["spec"])
            arch = generator_arch(spec)
            if arch is None:
                raise CheckpointError(f"{path} is a {spec.method.name} run, which has no generator",
                                      "point hat.generator at an sngan or ae run")
            shape = tuple(int(v) for v in meta["data"]["shape"])
            return GeneratorSource(arch, unprefixed("generator.", tensors), shape, path.parent.parent)
    except (KeyError, TypeError, ValueError, ValidationError, SpecError):
        raise CheckpointError(f"{path} has damaged or foreign metadata", "use another generator") from None
    raise CheckpointError(f"{path} is neither a generator file nor an ebmctl model checkpoint",
                          "give an sngan/ae run, latest:PRESET or a generator .safetensors file")
