"""Judging samples a command made: FID/KID and precision/recall against the dataset's held-out images (a
local Inception or the in-domain judge), and the class judge's accuracy and confidence."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from ebmctl.data import to_float
from ebmctl.data.classes import set_label
from ebmctl.data.registry import dataset_entry, dataset_names
from ebmctl.errors import SpecError, UsageError
from ebmctl.services.runtime.datasets import data_root, dataset_from, every_class
from ebmctl.services.runtime.loading import LoadedRun
from ebmctl.services.runtime.reporting import Reporter
from ebmctl.specs import DataSpec


def cache_dir() -> Path:
    return Path(os.environ.get("EBMCTL_CACHE", Path.home() / ".cache" / "ebmctl")).expanduser()


def check_fid_count(n: int, without: str) -> None:
    """Refuse, before sampling, fewer samples than FID/KID and precision/recall can be computed on."""
    from ebmctl.evaluation.fid import MIN_IMAGES

    if n < MIN_IMAGES:
        raise UsageError(f"FID/KID and precision/recall need at least {MIN_IMAGES} samples; --n is {n}",
                         f"raise --n (e.g. --n 1000), or {without}")


def class_judge(run: LoadedRun, *, cli_data_root: str | None, device: torch.device, reporter: Reporter) -> Any:
    """The in-domain class judge of the run's dataset (trained on first use, then cached)."""
    from ebmctl.evaluation.judges import load_or_train_judge

    spec = run.spec
    root = data_root(spec.data.root, cli_data_root)
    shape = run.info.shape
    data = every_class(spec.data)  # the judge is the dataset's, shared by every run on it through the cache
    test = _reference_split(data, root, shape)
    train_ds = dataset_from(data, root=root, split=data.split, image_size=shape[-1], channels=shape[0])
    path = cache_dir() / "judges" / f"{spec.data.name}-{shape[0]}x{shape[1]}x{shape[2]}.safetensors"
    with reporter.progress(f"judge for {spec.data.name}", spec.eval.judge_steps) as bar:
        judge, trained = load_or_train_judge(
            path, train_ds, test, steps=spec.eval.judge_steps, device=str(device),
            progress=lambda step, total, m: bar.update(step),
        )
    if trained:
        reporter.info(f"trained the {spec.data.name} judge ({path})")
    return judge


def class_accuracy(run: LoadedRun, samples: torch.Tensor | Iterable[torch.Tensor], target: int, *,
                   cli_data_root: str | None, device: torch.device, reporter: Reporter) -> dict[str, Any]:
    """The share of class-conditional samples (a tensor, or its chunks in order) the class judge assigns to the
    requested class."""
    judge = class_judge(run, cli_data_root=cli_data_root, device=device, reporter=reporter).to(device).eval()
    chunks = samples.split(256) if isinstance(samples, torch.Tensor) else samples
    with torch.no_grad():
        pred = torch.cat([judge.logits(c.to(device)).argmax(1).cpu() for c in chunks])
    names = list(judge.meta.get("class_names") or [])
    return {"class_accuracy": float((pred == target).float().mean()), "target_class": names[target] if names else target,
            "judge_test_accuracy": judge.meta.get("test_accuracy")}


def fid_metrics(
    run: LoadedRun, samples: torch.Tensor, *, cli_data_root: str | None, device: torch.device, reporter: Reporter
) -> dict[str, Any]:
    """FID/KID/precision/recall of ``samples`` against the run's dataset, with the extractor named."""
    from ebmctl.evaluation.fid import image_metrics

    spec = run.spec
    root = data_root(spec.data.root, cli_data_root)
    shape = run.info.shape
    ref, split = _fid_reference(spec, root, shape)
    n = len(samples)
    idx = torch.randperm(len(ref), generator=torch.Generator().manual_seed(0))[:n]
    reference = to_float(ref.get_batch(idx)[0], dequantize=False)
    weights = spec.eval.inception_weights
    out: dict[str, Any] = {}
    judge = None
    if weights is None or ref.info.num_classes > 0:
        judge = class_judge(run, cli_data_root=cli_data_root, device=device, reporter=reporter)
        out.update(judge_report(judge, samples, device))
    reporter.info(f"computing FID/KID/PR on {n} samples vs {len(reference)} {set_label(ref.info)} {split} images")
    out["fid_reference"] = f"{set_label(ref.info)} {split}, {len(reference)} images"
    metrics = image_metrics(samples, reference, judge=None if weights else judge, inception_weights=weights)
    out.update(metrics)
    return out


def _fid_reference(spec: Any, root: Path | None, shape: tuple[int, ...]) -> tuple[Any, str]:
    """The images --fid compares with and their split: the one ``eval.fid_reference`` names (the held-out split
    of a dataset that has none is its training split)."""
    name = spec.data.name
    split = "train" if spec.eval.fid_reference == "train" else (
        dataset_entry(name).eval_split if name in dataset_names() else "test")
    try:
        return dataset_from(spec.data, root=root, split=split, image_size=shape[-1], channels=shape[0]), split
    except SpecError:
        if split == "train":
            raise
    fallback = spec.data.split
    return dataset_from(spec.data, root=root, split=fallback, image_size=shape[-1], channels=shape[0]), fallback


def _reference_split(data: DataSpec, root: Path | None, shape: tuple[int, ...]):
    try:
        return dataset_from(data, root=root, split="test", image_size=shape[-1], channels=shape[0])
    except SpecError:
        return dataset_from(data, root=root, split=data.split, image_size=shape[-1], channels=shape[0])


def judge_report(judge: Any, samples: torch.Tensor, device: torch.device, threshold: float = 0.9) -> dict[str, Any]:
    """How the judge sees the samples: the share it classifies with confidence >= ``threshold`` and the
    share of each class among its predictions (coverage)."""
    judge = judge.to(device).eval()
    probs = []
    with torch.no_grad():
        for chunk in samples.split(256):
            probs.append(torch.softmax(judge.logits(chunk.to(device)), dim=1).cpu())
    p = torch.cat(probs)
    conf, cls = p.max(dim=1)
    names = list(judge.meta.get("class_names") or range(p.shape[1]))
    counts = torch.bincount(cls, minlength=p.shape[1]).tolist()
    return {
        "judge_confident": float((conf >= threshold).float().mean()),
        "judge_threshold": threshold,
        "judge_test_accuracy": judge.meta.get("test_accuracy"),
        "judge_class_share": {str(names[i]): counts[i] / len(cls) for i in range(len(counts))},
    }
