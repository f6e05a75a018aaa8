"""`ebmctl import`: a checkpoint the authors' released code wrote becomes an ordinary run: its spec (the matching
paper preset with the settings the file's shapes give), its weights in a safetensors model checkpoint, and a
run.json that names the source file and its SHA-256. Every command then works on it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ebmctl import __version__
from ebmctl.checkpoints import save_tensors
from ebmctl.data import DataInfo
from ebmctl.errors import CheckpointError, EbmctlError, SpecError, UsageError
from ebmctl.methods.capabilities import chain_buffer
from ebmctl.recipes import RECIPES, build_method, recipe_named, resolve_spec, spec_to_json
from ebmctl.released.reader import read_release, sha256
from ebmctl.released.tf_bundle import read_bundle
from ebmctl.run_lock import RunLock
from ebmctl.runs import (
    MODEL_CKPT,
    SPEC_JSON,
    STATE_CKPT,
    ensure_writable,
    new_run_dir,
    start_run_json,
    update_run_json,
    user_path,
    write_json,
)
from ebmctl.services.runtime.datasets import data_root, dataset_from, described
from ebmctl.services.runtime.reporting import NullReporter, Reporter
from ebmctl.services.runtime.trainer import info_doc
from ebmctl.services.runtime.weights import load_method_weights


@dataclass
class ImportResult:
    run_dir: Path
    method: str
    preset: str
    source: Path
    sha256: str
    step: int
    seconds: float
    used: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"run": str(self.run_dir), "method": self.method, "preset": self.preset, "source": str(self.source),
                "sha256": self.sha256, "step": self.step, "seconds": round(self.seconds, 2), "used": self.used,
                "dropped": self.dropped}


def importable() -> list[str]:
    """The methods whose released checkpoints ebmctl reads."""
    return [name for name, recipe in RECIPES.items() if recipe.release is not None]


def import_release(method: str, path: str, *, preset: str | None = None, overrides: list[str] | tuple[str, ...] = (),
                   companions: dict[str, str | None] | None = None, runs_root: Path, cli_data_root: str | None = None,
                   reporter: Reporter | None = None) -> ImportResult:
    """Read the released checkpoint at ``path`` as ``method``'s and write it as a run under ``runs_root``;
    ``overrides`` (``--set`` items) go on top of the preset and the settings read from the file; ``companions``
    name the files a release keeps apart (``{"generator": path}`` for Hat EBM, ``{"buffer": path}`` for CEBM)."""
    reporter = reporter or NullReporter()
    started = time.perf_counter()
    recipe = recipe_named(method) if method in RECIPES else None
    if recipe is None or recipe.release is None:
        raise UsageError(f"ebmctl does not import {method!r} checkpoints", f"--from takes {', '.join(importable())} "
                         "(docs/commands/import.md)")
    given = {k: user_path(v).resolve() for k, v in (companions or {}).items() if v is not None}
    for name in given:
        if name not in recipe.release_companions:
            takes = [r.name for r in RECIPES.values() if name in r.release_companions]
            raise UsageError(f"--{name} is for {', '.join(takes)} imports; {recipe.name}'s release keeps no {name} "
                             "file apart", f"drop --{name}")
    source = user_path(path).resolve()
    ensure_writable(runs_root)
    reporter.info(f"reading {source}")
    if recipe.release_format == "tensorflow":
        bundle = read_bundle(source)
        doc, source, files = bundle, bundle.prefix, bundle.files
    else:
        doc, files = read_release(source, recipe.release_globals), [source]
    imported = recipe.release(doc, source, preset, **given)
    files = [*files, *imported.companions]
    spec = resolve_spec(imported.preset, [*imported.overrides, *overrides], {"train.steps": max(imported.step, 1)})
    if spec.method.name != recipe.name:
        raise SpecError(f"preset {imported.preset} trains {spec.method.name}, not {recipe.name}",
                        f"pass a {recipe.name} preset with --preset (see `ebmctl presets list`)")
    info = _data_info(spec, cli_data_root)
    reporter.info(f"loading {len(imported.weights)} tensors into the nets of {spec.preset or recipe.name}")
    model = build_method(spec, info, torch.device("cpu"))
    load_method_weights(model, imported.weights | _unreleased(model, imported.weights), source)
    buffer = _released_buffer(model, imported.chains, tuple(info.shape), source)
    reporter.info(f"hashing {len(files)} file(s) and writing the run")
    digest, digests = sha256(*files)
    spec_doc = spec_to_json(spec)
    meta = {"kind": "model", "format": 1, "step": imported.step, "spec": spec_doc, "method": spec.method.name,
            "data": info_doc(info), "ebmctl": __version__, "imported_from": str(source), "sha256": digest}
    with RunLock() as lock:
        def fill(folder: Path, name: str) -> None:
            lock.acquire(folder)
            write_json(folder / SPEC_JSON, spec_doc)
            start_run_json(folder, preset=spec.preset, method=spec.method.name, device="cpu", parents=[], name=name)
            save_tensors(folder / MODEL_CKPT, model.weight_tensors(), meta)
            if buffer is not None:  # the release's replay buffer, for `sample --init buffer`; no training state
                save_tensors(folder / STATE_CKPT, buffer.state_tensors(), {
                    "kind": "state", "format": 1, "step": imported.step, "spec": spec_doc,
                    "method": {"buffer": buffer.state_meta()}, "imported_from": str(source), "ebmctl": __version__})
            update_run_json(folder, status="completed", step=imported.step, imported={
                "from": recipe.name, "source": str(source), "files": digests, "sha256": digest,
                "used": imported.used, "dropped": imported.dropped})

        run_dir = new_run_dir(runs_root, f"{spec.preset or recipe.name}-imported", fill)
        lock.moved_to(run_dir)
    return ImportResult(run_dir, recipe.name, spec.preset or "", source, digest, imported.step,
                        time.perf_counter() - started, imported.used, imported.dropped)


def _data_info(spec: Any, cli_data_root: str | None) -> DataInfo:
    """The run's data as its dataset describes itself (class and attribute names included) where the files are
    there; else what the dataset registry says (the data need not be on disk to import)."""
    try:
        return dataset_from(spec.data, root=data_root(spec.data.root, cli_data_root)).info
    except EbmctlError:
        return described(spec.data)


def _unreleased(model: Any, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """EMA copies the release does not keep (``ema.*``, ``encoder.ema.*``): the weights themselves, as a run just
    started would have them."""
    out = {}
    for key in model.weight_tensors():
        source = key.replace("ema.", "model.", 1)
        if (key.startswith("ema.") or ".ema." in key) and key not in weights and source in weights:
            out[key] = weights[source]
    return out


def _released_buffer(model: Any, chains: torch.Tensor | None, shape: tuple[int, ...], source: Path) -> Any:
    """The method's replay buffer holding the release's chains, stored as the run's spec says (float or uint8);
    None where the release keeps none."""
    if chains is None:
        return None
    buffer = chain_buffer(model)
    if buffer is None:
        raise CheckpointError(f"{source} keeps a replay buffer, but this run's method keeps none",
                              "import it with the method's own preset (drop --preset)")
    if tuple(chains.shape[1:]) != shape:
        raise CheckpointError(f"{source}'s replay buffer holds chains of shape {tuple(chains.shape[1:])}, but this "
                              f"run's data are {shape}", "pass --preset or --set data.* for the data it was trained on")
    if len(chains) != buffer.capacity:
        raise CheckpointError(f"{source}'s replay buffer holds {len(chains)} chains, but the run's buffer.size is "
                              f"{buffer.capacity}", "drop --set buffer.size: the import sizes the buffer to the release's")
    buffer.fill_with(chains)
    return buffer
