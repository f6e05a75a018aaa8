"""`ebmctl probe`: how much of the labels a run's frozen representation carries.

A linear probe with 1/10/100 labels per class over several seeds and with the full training split, a kNN
classifier, and a 1-NN confusion matrix (CEBM's Figure 1), under one protocol: by default the one the run's
method's paper uses (its recipe's ``probe_protocol``), or ``standard``. Optionally the same for raw pixels, under the same
protocol, and for a second dataset (transfer, EBCLR's Table 2).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ebmctl.checkpoints import write_bytes_atomic
from ebmctl.data import to_float
from ebmctl.data.registry import dataset_entry, dataset_names
from ebmctl.errors import UsageError
from ebmctl.methods.capabilities import Represents
from ebmctl.recipes import RECIPES, recipe_named
from ebmctl.runs import RunRef, command_dir, output_base, write_json
from ebmctl.services.runtime.datasets import data_root, dataset_from
from ebmctl.services.runtime.loading import LoadedRun, open_run
from ebmctl.services.runtime.reporting import NullReporter, Reporter
from ebmctl.specs import DataSpec

DEFAULT_SHOTS: tuple[int | None, ...] = (1, 10, 100, None)
PROTOCOL_CHOICES: tuple[str, ...] = ("paper", "standard", "cebm", "ebclr")


@dataclass
class ProbeOptions:
    dataset: str | None = None  # None: the dataset the run was trained on
    shots: list[int | None] = field(default_factory=lambda: list(DEFAULT_SHOTS))  # None = the full split
    seeds: int = 10
    knn: int = 20  # 0: no kNN
    transfer: str | None = None
    pixels: bool = False
    train_n: int | None = None  # cap on training images (None: the whole split)
    test_n: int | None = None
    batch_size: int = 256
    ema: bool = True
    out: str | None = None
    protocol: str = "paper"  # paper: the run's method's; or a name in PROTOCOL_CHOICES
    split: str | None = None  # held-out split scored (None: the dataset's evaluation split, e.g. test)


@dataclass
class ProbeResult:
    out_dir: Path
    rows: list[dict[str, Any]]
    counts: dict[str, dict[str, int]]  # per dataset: train and held-out ("test", whichever split) sizes
    seconds: float
    files: dict[str, str]
    protocol: dict[str, str]  # name, linear, knn, source

    def to_dict(self) -> dict[str, Any]:
        return {"out": str(self.out_dir), "protocol": self.protocol, "results": self.rows, "counts": self.counts,
                "seconds": round(self.seconds, 2), "files": self.files}


def parse_shots(text: str) -> list[int | None]:
    """``1,10,100,full`` -> [1, 10, 100, None]."""
    out: list[int | None] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        if part.lower() in ("full", "all"):
            out.append(None)
        elif part.isdigit() and int(part) > 0:
            out.append(int(part))
        else:
            raise UsageError(f"--shots: {part!r} is not a positive number or 'full'", "e.g. --shots 1,10,100,full")
    if not out:
        raise UsageError("--shots names no shot count", "e.g. --shots 1,10,100,full")
    return out


def _check_protocol(choice: str) -> None:
    if choice not in PROTOCOL_CHOICES:
        raise UsageError(f"--protocol: {choice!r} is not a probe protocol",
                         f"use one of: {', '.join(PROTOCOL_CHOICES)}")


def resolve_protocol(choice: str, method: str) -> str:
    """The protocol ``choice`` names for a run of ``method``: ``paper`` is the protocol its recipe names (its
    paper's, or its family's)."""
    _check_protocol(choice)
    return recipe_named(method).probe_protocol if choice == "paper" else choice


def _check(opts: ProbeOptions) -> None:
    _check_protocol(opts.protocol)
    if opts.seeds < 1:
        raise UsageError("--seeds must be at least 1", "e.g. --seeds 10")
    if opts.knn < 0:
        raise UsageError("--knn must be 0 (off) or a positive k", "e.g. --knn 20")
    for name, value in (("--train-n", opts.train_n), ("--test-n", opts.test_n)):
        if value is not None and value < 1:
            raise UsageError(f"{name} must be at least 1", "leave it out to use the whole split")


def probe(
    ref: RunRef,
    opts: ProbeOptions,
    *,
    device: str = "auto",
    cli_data_root: str | None = None,
    reporter: Reporter | None = None,
) -> ProbeResult:
    from ebmctl.evaluation.linear_probes import linear_probe
    from ebmctl.evaluation.neighbours import confusion_png, nearest_neighbour_confusion
    from ebmctl.evaluation.probe import PROTOCOLS

    reporter = reporter or NullReporter()
    _check(opts)
    run = open_run(ref, device, Represents, ("method {method} offers no representation to probe",
                                             f"probe a run of {', '.join(_represented())}"))
    torch_device = run.device
    if run.info.kind != "image":
        raise UsageError(f"run {ref.run_dir.name} models 2D points; probe measures image representations",
                         "pass an image run with --run")
    protocol = PROTOCOLS[resolve_protocol(opts.protocol, run.spec.method.name)]
    started = time.perf_counter()
    names = [opts.dataset or run.spec.data.name] + ([opts.transfer] if opts.transfer else [])
    rows: list[dict[str, Any]] = []
    pictures: dict[str, bytes] = {}
    counts: dict[str, dict[str, int]] = {}
    files: dict[str, str] = {}
    for name in names:
        sets, names_of_classes, held_out, kept = _load_sets(run, name, opts, cli_data_root)
        label = f"{name} ({', '.join(kept)})" if kept else name
        counts[name] = {"train": len(sets["train"][1]), "test": len(sets["test"][1])}
        kinds = ["model", "pixels"] if opts.pixels else ["model"]
        for kind in kinds:
            feats = {split: _features(run, x, kind, opts, torch_device, reporter, f"{kind} features, {name} {split}")
                     for split, (x, _) in sets.items()}
            (tr_x, tr_y), (te_x, te_y) = (feats["train"], sets["train"][1]), (feats["test"], sets["test"][1])
            base = {"dataset": name, "features": kind, "protocol": protocol.name, "split": held_out,
                    "dim": int(tr_x.shape[1]), **({"classes": kept} if kept else {})}
            with reporter.progress(f"linear probe ({protocol.name}), {kind} features of {name}", len(opts.shots),
                                   unit="shot") as bar:
                for i, shots in enumerate(opts.shots):
                    for row in linear_probe(tr_x, tr_y, te_x, te_y, shots=[shots], seeds=opts.seeds,
                                            fit=protocol.fit_linear):
                        rows.append({**base, "probe": "linear", **row})
                    bar.update(i + 1)
            if opts.knn:
                acc = protocol.fit_knn(tr_x, tr_y, te_x, te_y, opts.knn)
                rows.append({**base, "probe": f"knn{opts.knn}", "shots": "full", "mean": acc, "std": 0.0, "runs": 1,
                             "accuracies": [acc]})
            # the confusion matrix covers the labels present (data.classes may leave some out)
            present, dense = np.unique(np.concatenate([tr_y, te_y]), return_inverse=True)
            matrix = nearest_neighbour_confusion(tr_x, dense[: len(tr_y)], te_x, dense[len(tr_y):], len(present))
            class_names = ([names_of_classes[k] for k in present] if len(names_of_classes) > present[-1]
                           else None)
            pictures[f"confusion-{name}-{kind}"] = confusion_png(matrix, class_names,
                                                                 f"1-NN confusion, {kind} features, {label}")
            rows.append({**base, "probe": "1nn", "shots": "full", "mean": float(np.trace(matrix) / len(present)),
                         "std": 0.0, "runs": 1, "accuracies": [], "note": "mean per-class recall"})
    out_dir = command_dir(output_base(ref), "probe", opts.out)  # only once everything is computed
    for key, png in pictures.items():
        write_bytes_atomic(out_dir / f"{key}.png", png)
        files[key] = str(out_dir / f"{key}.png")
    result = ProbeResult(out_dir, rows, counts, time.perf_counter() - started, files, protocol.describe())
    write_json(out_dir / "result.json", {"command": "probe", "run": str(ref.run_dir), **result.to_dict()})
    return result


def _load_sets(run: LoadedRun, name: str, opts: ProbeOptions,
               cli_data_root: str | None) -> tuple[dict[str, Any], list[str], str, list[str]]:
    """Train and held-out images of ``name`` at the run's image shape, with integer class labels.

    The held-out images (key ``test``) come from ``opts.split`` (for the first dataset only; a transfer dataset
    is always scored on its evaluation split), else the dataset's evaluation split, whose name comes third.
    Fourth come the classes kept (the run's data.classes on its own dataset; empty: all)."""
    root = data_root(run.spec.data.root, cli_data_root)
    shape = run.info.shape
    out: dict[str, Any] = {}
    class_names: list[str] = []
    held_out = dataset_entry(name).eval_split if name in dataset_names() else "test"
    if opts.split is not None and name == (opts.dataset or run.spec.data.name):
        _check_split(name, opts.split)
        held_out = opts.split
    # the run's own dataset is probed on the classes the run was trained on
    classes = run.spec.data.classes if name == run.spec.data.name else None
    for split, cap in (("train", opts.train_n), (held_out, opts.test_n)):
        data = DataSpec(name=name, verify_checksums=run.spec.data.verify_checksums, classes=classes)
        ds = dataset_from(data, split=split, root=root, image_size=shape[-1], channels=shape[0])
        if ds.info.num_classes < 2:
            raise UsageError(f"{name} has no class labels to probe with", "pick a labelled dataset, e.g. digits")
        n = len(ds) if cap is None else min(cap, len(ds))
        idx = torch.randperm(len(ds), generator=torch.Generator().manual_seed(0))[:n].sort().values
        x, y = ds.get_batch(idx)
        out["train" if split == "train" else "test"] = (x, np.asarray(y, dtype=np.int64).reshape(-1))
        class_names = list(ds.info.class_names)
    return out, class_names, held_out, list(ds.info.extra.get("classes", []))


def _check_split(name: str, split: str) -> None:
    """``split`` must be a held-out split of ``name`` (never its training split)."""
    splits = dataset_entry(name).splits if name in dataset_names() else ("test",)
    if split == "train" or split not in splits:
        held = [s for s in splits if s != "train"]
        raise UsageError(f"--split: {name} has no held-out split {split!r}", f"use one of: {', '.join(held)}")


def _features(run: LoadedRun, x: torch.Tensor, kind: str, opts: ProbeOptions, device: torch.device,
              reporter: Reporter, label: str) -> np.ndarray:
    if kind == "pixels":
        return to_float(x, dequantize=False).flatten(1).double().numpy()
    parts = []
    with reporter.progress(label, len(x), unit="image") as bar:
        done = 0
        for chunk in x.split(opts.batch_size):
            batch = to_float(chunk, dequantize=False).to(device)
            parts.append(run.method.representation(batch, ema=opts.ema).flatten(1).detach().cpu().double().numpy())
            done += len(chunk)
            bar.update(done)
    return np.concatenate(parts)


def _represented() -> list[str]:
    """The methods with a representation to probe."""
    return [name for name, recipe in RECIPES.items() if issubclass(recipe.method, Represents)]
