"""`ebmctl ood`: score an in-distribution test set and OOD sets with a run; AUROC, AUPR, FPR@95."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ebmctl.checkpoints import write_bytes_atomic, write_with
from ebmctl.data import to_float
from ebmctl.errors import CapabilityError, SpecError, UsageError
from ebmctl.runs import RunRef, command_dir, write_json
from ebmctl.services.build import data_root, dataset_from, resolve_device
from ebmctl.services.loading import load_run
from ebmctl.services.reporting import NullReporter, Reporter
from ebmctl.specs import DataSpec

SCORES = ("energy", "grad_norm", "joint")


@dataclass
class OodOptions:
    in_name: str
    out_names: list[str]
    scores: list[str] | None = None  # None: the method's default scores
    n: int | None = None  # per set; None = the whole test split
    batch_size: int = 256
    ema: bool = True
    split: str = "test"
    out: str | None = None
    verify_checksums: bool = True
    beta: float | None = None  # beta of CLEL's joint score (None: the run's method.ood_beta)


@dataclass
class OodResult:
    out_dir: Path
    convention: str
    rows: list[dict[str, Any]]
    counts: dict[str, int]
    seconds: float
    files: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return {"out": str(self.out_dir), "convention": self.convention, "results": self.rows,
                "counts": self.counts, "seconds": round(self.seconds, 2), "files": self.files}


def _check(opts: OodOptions) -> None:
    unknown = [s for s in opts.scores or [] if s not in SCORES]
    if unknown:
        raise UsageError(f"unknown score {unknown[0]!r}", f"choose from {', '.join(SCORES)}")
    if not opts.out_names:
        raise UsageError("--out names no dataset", "e.g. --out svhn,cifar100")
    if opts.n is not None and opts.n < 1:
        raise UsageError("--n must be at least 1", "leave it out to use the whole test split")


def ood(
    ref: RunRef,
    opts: OodOptions,
    *,
    device: str = "auto",
    cli_data_root: str | None = None,
    reporter: Reporter | None = None,
) -> OodResult:
    from ebmctl.evaluation.ood import SIGN_CONVENTION, ood_metrics, roc_png, score_histogram_png

    reporter = reporter or NullReporter()
    _check(opts)
    torch_device = resolve_device(device)
    run = load_run(ref, torch_device)
    if "ood_scores" not in run.method.CAPABILITIES:
        raise CapabilityError(f"method {run.spec.method.name} offers no OOD score", "use a run of igebm or icd")
    if run.info.kind != "image":
        raise SpecError(f"run {ref.run_dir.name} models 2D points; OOD detection here is for images",
                        "pass an image run with --run")
    has_latents = "latents" in run.method.CAPABILITIES
    if opts.scores is None:
        opts = replace(opts, scores=["energy", "joint"] if has_latents else ["energy"])
    if not has_latents and ("joint" in opts.scores or opts.beta is not None):
        raise UsageError(f"the joint score (and --beta) needs latent variables; {run.spec.method.name} has none",
                         "use --score energy,grad_norm, or a clel run")
    root = data_root(run.spec.data.root, cli_data_root)
    shape = run.info.shape
    started = time.perf_counter()
    scores: dict[str, dict[str, np.ndarray]] = {}
    counts: dict[str, int] = {}
    for name in [opts.in_name, *opts.out_names]:
        data = DataSpec(name=name, verify_checksums=opts.verify_checksums and run.spec.data.verify_checksums)
        ds = dataset_from(data, split=opts.split, root=root, image_size=shape[-1], channels=shape[0])
        n = len(ds) if opts.n is None else min(opts.n, len(ds))
        idx = torch.randperm(len(ds), generator=torch.Generator().manual_seed(0))[:n]
        scores[name] = _score_set(run.method, ds, idx, opts, torch_device, reporter, name)
        counts[name] = n
    rows = []
    for out_name in opts.out_names:
        for score in opts.scores:
            m = ood_metrics(scores[opts.in_name][score], scores[out_name][score])
            rows.append({"in": opts.in_name, "out": out_name, "score": score, **m})
    out_dir = command_dir(ref.run_dir, "ood", opts.out)
    files = {}
    for score in opts.scores:
        hist = score_histogram_png({k: v[score] for k, v in scores.items()}, f"{score} ({SIGN_CONVENTION})")
        roc = roc_png({o: (scores[opts.in_name][score], scores[o][score]) for o in opts.out_names},
                      f"ROC, {score}, in = {opts.in_name}")
        for kind, png in (("hist", hist), ("roc", roc)):
            path = out_dir / f"{kind}-{score}.png"
            write_bytes_atomic(path, png)
            files[f"{kind}-{score}"] = str(path)
    arrays = {f"{k}__{s}": v for k, d in scores.items() for s, v in d.items()}

    def save_npz(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)

    write_with(out_dir / "scores.npz", save_npz)
    files["scores"] = str(out_dir / "scores.npz")
    result = OodResult(out_dir, SIGN_CONVENTION, rows, counts, time.perf_counter() - started, files)
    write_json(out_dir / "result.json", {"command": "ood", "run": str(ref.run_dir), **result.to_dict()})
    return result


def _score_set(method: Any, ds: Any, idx: torch.Tensor, opts: OodOptions, device: torch.device, reporter: Reporter,
               name: str) -> dict[str, np.ndarray]:
    parts: dict[str, list[np.ndarray]] = {s: [] for s in opts.scores}
    with reporter.progress(f"score {name}", len(idx), unit="image") as bar:
        done = 0
        for chunk in idx.split(opts.batch_size):
            x = to_float(ds.get_batch(chunk)[0], dequantize=False).to(device)
            extra = {} if opts.beta is None else {"beta": opts.beta}
            for k, v in method.ood_scores(x, opts.scores, ema=opts.ema, **extra).items():
                parts[k].append(v.detach().cpu().double().numpy())
            done += len(chunk)
            bar.update(done)
    return {k: np.concatenate(v) for k, v in parts.items()}
