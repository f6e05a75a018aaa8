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
from ebmctl.methods.capabilities import HasLatents, PerturbsOodInputs, Represents, ScoresOod
from ebmctl.runs import RunRef, command_dir, output_base, write_json
from ebmctl.services.runtime.datasets import data_root, dataset_from
from ebmctl.services.runtime.loading import open_run
from ebmctl.services.runtime.ood_sets import ScoredSet, ood_sets
from ebmctl.services.runtime.reporting import NullReporter, Reporter

SCORES = ("energy", "grad_norm", "joint", "latent_nn")
NN_REFERENCES = 10_000  # training images whose representations the latent_nn score compares with


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
    sets: list[dict[str, Any]]  # label, dataset, classes (None: all), split and n of the in-set, then each out-set

    def to_dict(self) -> dict[str, Any]:
        return {"out": str(self.out_dir), "convention": self.convention, "results": self.rows, "sets": self.sets,
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
    run = open_run(ref, device)
    torch_device = run.device
    if run.info.kind != "image":
        raise SpecError(f"run {ref.run_dir.name} models 2D points; OOD detection here is for images",
                        "pass an image run with --run")
    has_latents = isinstance(run.method, HasLatents)
    scores_ood, represents = isinstance(run.method, ScoresOod), isinstance(run.method, Represents)
    if opts.scores is None:
        if scores_ood:
            opts = replace(opts, scores=["energy", "joint"] if has_latents else ["energy"])
        else:
            opts = replace(opts, scores=["latent_nn"] if represents else [])
    if not scores_ood and any(s != "latent_nn" for s in opts.scores or ["energy"]):
        raise CapabilityError(f"method {run.spec.method.name} has no energy to score with",
                              "use --score latent_nn (distance to the nearest training representation)"
                              if represents else "use a run of an energy-based method")
    if "latent_nn" in opts.scores and not represents:
        raise CapabilityError(f"method {run.spec.method.name} has no representation for the latent_nn score",
                              "use --score energy,grad_norm")
    if not has_latents and ("joint" in opts.scores or opts.beta is not None):
        raise UsageError(f"the joint score (and --beta) needs latent variables; {run.spec.method.name} has none",
                         "use --score energy,grad_norm, or a clel run")
    root = data_root(run.spec.data.root, cli_data_root)
    started = time.perf_counter()
    verify = opts.verify_checksums and run.spec.data.verify_checksums
    in_set, out_sets = ood_sets(run, opts.in_name, opts.out_names, split=opts.split, root=root, verify=verify)
    scores: dict[str, dict[str, np.ndarray]] = {}
    counts: dict[str, int] = {}
    references = None
    if "latent_nn" in opts.scores:
        references = _reference_latents(run, in_set, opts, root, torch_device, reporter)
    for s in [in_set, *out_sets]:
        ds = s.dataset
        n = len(ds) if opts.n is None else min(opts.n, len(ds))
        idx = torch.randperm(len(ds), generator=torch.Generator().manual_seed(0))[:n]
        scores[s.key] = _score_set(run.method, ds, idx, opts, torch_device, reporter, s.label, references)
        counts[s.label] = n
    rows = []
    for out_set in out_sets:
        for score in opts.scores:
            m = ood_metrics(scores[in_set.key][score], scores[out_set.key][score])
            rows.append({"in": in_set.label, "out": out_set.label, "score": score, **m})
    labels = {s.key: s.label for s in [in_set, *out_sets]}
    out_dir = command_dir(output_base(ref), "ood", opts.out)
    files = {}
    for score in opts.scores:
        hist = score_histogram_png({labels[k]: v[score] for k, v in scores.items()}, f"{score} ({SIGN_CONVENTION})")
        roc = roc_png({o.label: (scores[in_set.key][score], scores[o.key][score]) for o in out_sets},
                      f"ROC, {score}, in = {in_set.label}")
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
    sets = [s.describe(opts.split, counts[s.label]) for s in [in_set, *out_sets]]
    result = OodResult(out_dir, SIGN_CONVENTION, rows, counts, time.perf_counter() - started, files, sets)
    write_json(out_dir / "result.json", {"command": "ood", "run": str(ref.run_dir), **result.to_dict()})
    return result


def _reference_latents(run: Any, in_set: ScoredSet, opts: OodOptions, root: Path | None, device: torch.device,
                       reporter: Reporter) -> torch.Tensor:
    """Representations of up to NN_REFERENCES training images of the in-distribution set."""
    shape = run.info.shape
    ds = dataset_from(in_set.data, split="train", root=root, image_size=shape[-1], channels=shape[0])
    idx = torch.randperm(len(ds), generator=torch.Generator().manual_seed(1))[:NN_REFERENCES]
    parts = []
    with reporter.progress(f"latents of {in_set.label} train", len(idx), unit="image") as bar:
        for chunk in idx.split(opts.batch_size):
            x = to_float(ds.get_batch(chunk)[0], dequantize=False).to(device)
            parts.append(run.method.representation(x, ema=opts.ema).flatten(1).double().cpu())
            bar.update(sum(len(p) for p in parts))
    return torch.cat(parts)


def latent_nn_score(latents: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
    """-min_j ||latent - reference_j||_2: near the training representations = in-distribution."""
    # float64 and the direct form: close latents would cancel to 0 in the matrix-product shortcut
    dist = torch.cdist(latents.double(), references.double(), compute_mode="donot_use_mm_for_euclid_dist")
    return -dist.min(dim=1).values


def _score_set(method: Any, ds: Any, idx: torch.Tensor, opts: OodOptions, device: torch.device, reporter: Reporter,
               name: str, references: torch.Tensor | None = None) -> dict[str, np.ndarray]:
    parts: dict[str, list[np.ndarray]] = {s: [] for s in opts.scores}
    energy_scores = [s for s in opts.scores if s != "latent_nn"]
    # input noise of a method that scores perturbed inputs (CEBM's method.ood_noise): one seeded stream per set
    noise = {"generator": torch.Generator().manual_seed(0)} if isinstance(method, PerturbsOodInputs) and method.ood_noise > 0 else {}
    with reporter.progress(f"score {name}", len(idx), unit="image") as bar:
        done = 0
        for chunk in idx.split(opts.batch_size):
            x = to_float(ds.get_batch(chunk)[0], dequantize=False).to(device)
            extra = noise if opts.beta is None else {"beta": opts.beta, **noise}
            if energy_scores:
                for k, v in method.ood_scores(x, energy_scores, ema=opts.ema, **extra).items():
                    parts[k].append(v.detach().cpu().double().numpy())
            if references is not None:
                z = method.representation(x, ema=opts.ema).flatten(1).cpu()
                parts["latent_nn"].append(latent_nn_score(z, references).double().numpy())
            done += len(chunk)
            bar.update(done)
    return {k: np.concatenate(v) for k, v in parts.items()}
