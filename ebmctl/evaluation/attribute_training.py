"""Training an attribute judge on a dataset's labels, calibrating what it recognises, and caching it on disk."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ebmctl.checkpoints import load_tensors, read_meta, save_tensors
from ebmctl.data.base import EbmDataset
from ebmctl.errors import CheckpointError, SpecError
from ebmctl.evaluation.attribute_judge import (
    ARCHITECTURES,
    CALIBRATION_IMAGES,
    DEFAULT_BATCH_SIZE,
    DEFAULT_LR,
    FILE_KIND,
    RECOGNITION_BUFFERS,
    RECOGNITION_MARGIN,
    RECOGNITION_QUANTILE,
    REPORT_CHUNK,
    SHIFT_PIXELS,
    AttributeJudge,
    check_architecture,
    default_architecture,
    default_steps,
)
from ebmctl.evaluation.judges import Progress, fit_judge


def _check_attributes(dataset: EbmDataset) -> torch.Tensor:
    info = dataset.info
    attributes = dataset.attributes()
    if info.kind != "image":
        raise SpecError(
            f"the attribute judge needs an image dataset; {info.name!r} holds {info.kind}",
            "attribute scores apply to image datasets only",
        )
    if attributes is None or not info.attribute_names:
        raise SpecError(
            f"dataset {info.name!r} has no binary attributes to train an attribute judge on",
            "attribute scores need a dataset with attributes, such as shapes32 or celeba",
        )
    if tuple(attributes.shape) != (len(dataset), len(info.attribute_names)) or bool((attributes > 1).any()):
        raise SpecError(
            f"dataset {info.name!r} has attributes of shape {tuple(attributes.shape)} (expected "
            f"{len(dataset)} x {len(info.attribute_names)} values of 0 or 1)",
            "check the dataset's attribute file",
        )
    return attributes


@torch.no_grad()
def attribute_accuracy(judge: AttributeJudge, dataset: EbmDataset, batch_size: int = 500) -> list[float]:
    """Per-attribute fraction of ``dataset`` the judge classifies correctly (eval mode)."""
    attributes = _check_attributes(dataset).bool()
    was_training = judge.training
    judge.eval()
    correct = torch.zeros(judge.num_attributes, dtype=torch.long)
    n = len(dataset)
    for start in range(0, n, batch_size):
        idx = torch.arange(start, min(start + batch_size, n))
        x, _ = dataset.get_batch(idx)
        correct += (judge.predict(x).cpu() == attributes[idx]).sum(0)
    judge.train(was_training)
    return [float(c) / max(n, 1) for c in correct]


def train_attribute_judge(
    dataset: EbmDataset,
    *,
    test_dataset: EbmDataset | None = None,
    architecture: str | None = None,
    steps: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    lr: float | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: Progress | None = None,
) -> AttributeJudge:
    """Train an attribute judge on ``dataset``'s attributes (BCE with logits, AdamW, warm-up then cosine
    decay, random shifts). ``architecture``, ``steps`` and ``lr`` default to the dataset's defaults.

    ``progress(step, total, {"loss", "acc", "lr"})`` is called after every step. The global RNG state is
    left as it was. ``meta["test_accuracy"]`` (per attribute) and ``meta["mean_test_accuracy"]`` are
    measured on ``test_dataset`` (None without one)."""
    attributes = _check_attributes(dataset)
    info = dataset.info
    architecture = architecture or default_architecture(info)
    check_architecture(architecture)
    steps = default_steps(info) if steps is None else steps
    lr = DEFAULT_LR[architecture] if lr is None else lr
    if steps < 1 or batch_size < 1 or lr <= 0:
        raise SpecError(
            f"attribute judge training needs steps >= 1, batch_size >= 1, lr > 0 (got {steps}, {batch_size}, {lr})"
        )
    gen = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        judge = AttributeJudge(info.shape, info.attribute_names, architecture).to(device)
    fit_judge(judge, dataset, attributes.float(), F.binary_cross_entropy_with_logits,
              lambda out, y: ((out > 0) == y.bool()).float().mean().item(), steps=steps, batch_size=batch_size,
              lr=lr, shift=SHIFT_PIXELS, generator=gen, device=device, progress=progress)
    accuracy = attribute_accuracy(judge, test_dataset) if test_dataset is not None else None
    recognition = calibrate_recognition(judge, dataset, test_dataset)
    judge.meta = {
        "kind": FILE_KIND,
        "architecture": architecture,
        "dataset": info.name,
        "split": info.split,
        "shape": list(info.shape),
        "attribute_names": list(info.attribute_names),
        "test_accuracy": accuracy,
        "mean_test_accuracy": sum(accuracy) / len(accuracy) if accuracy else None,
        "steps": steps,
        "batch_size": batch_size,
        "lr": lr,
        "seed": seed,
        "train_seconds": round(time.perf_counter() - start, 2),
        **recognition,
    }
    return judge


def _images(dataset: EbmDataset, n: int, seed: int) -> torch.Tensor:
    idx = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:n]
    return dataset.get_batch(idx.sort().values)[0]


@torch.no_grad()
def calibrate_recognition(judge: AttributeJudge, dataset: EbmDataset, held_out: EbmDataset | None = None,
                          n: int = CALIBRATION_IMAGES) -> dict[str, Any]:
    """Keep the features of up to ``n`` training images in the judge and set its recognition threshold from as
    many held-out images (other training images when there are none): their RECOGNITION_QUANTILE distance
    times RECOGNITION_MARGIN. Returns the meta entries to keep."""
    was_training = judge.training
    judge.eval()
    try:
        order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(1))
        kept = dataset.get_batch(order[:n].sort().values)[0]
        feats = torch.cat([judge.features(c).float() for c in kept.split(REPORT_CHUNK)])
        judge.reference_features = F.normalize(feats, dim=1)
        if held_out is not None and len(held_out) > 0:
            reference, probe = "held-out", _images(held_out, n, seed=2)
        else:  # training images not among the kept ones (the kept ones are at distance 0)
            rest = order[n : 2 * n]
            reference, probe = "training", dataset.get_batch(rest.sort().values)[0] if len(rest) else kept
        distance = torch.cat([judge.recognition_distance(c).cpu() for c in probe.split(REPORT_CHUNK)])
    finally:
        judge.train(was_training)
    quantile = float(torch.quantile(distance.double(), RECOGNITION_QUANTILE))
    return {"recognition_threshold": quantile * RECOGNITION_MARGIN, "recognition_quantile": RECOGNITION_QUANTILE,
            "recognition_margin": RECOGNITION_MARGIN,
            "recognition_reference": reference}


def save_attribute_judge(judge: AttributeJudge, path: str | Path) -> None:
    """Write the judge's weights and meta as one safetensors file (atomically)."""
    meta = {
        **judge.meta,
        "kind": FILE_KIND,
        "architecture": judge.architecture,
        "shape": list(judge.shape),
        "attribute_names": list(judge.attribute_names),
    }
    save_tensors(Path(path), judge.state_dict(), meta)


def load_attribute_judge(path: str | Path, device: str | torch.device = "cpu") -> AttributeJudge:
    """Load a judge written by :func:`save_attribute_judge`; a foreign or mismatched file raises
    CheckpointError."""
    tensors, meta = load_tensors(Path(path))
    if meta.get("kind") != FILE_KIND or meta.get("architecture") not in ARCHITECTURES:
        raise CheckpointError(
            f"{path} is not an ebmctl attribute judge",
            "delete the file to let ebmctl train a new attribute judge, or give another path",
        )
    try:
        judge = AttributeJudge(meta["shape"], meta["attribute_names"], meta["architecture"], meta)
        if "reference_features" in tensors:
            judge.reference_features = torch.empty_like(tensors["reference_features"])
        missing, unexpected = judge.load_state_dict(tensors, strict=False)
        if unexpected or set(missing) - RECOGNITION_BUFFERS:  # a judge saved before recognition lacks those
            raise RuntimeError(f"missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]}")
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(
            f"{path} does not match the attribute judge it describes ({str(exc).splitlines()[0][:100]})",
            "delete the file to let ebmctl train a new attribute judge",
        ) from exc
    return judge.to(device).eval()


def step_seconds(dataset: EbmDataset, architecture: str | None = None, batch_size: int = DEFAULT_BATCH_SIZE,
                 device: str | torch.device = "cpu", steps: int = 1) -> float:
    """Seconds one training step of an attribute judge takes on ``device``: the mean of ``steps`` steps of a
    throwaway judge after one warm-up step (the global RNG is left as it was)."""
    attributes = _check_attributes(dataset)
    architecture = architecture or default_architecture(dataset.info)
    stamps: list[float] = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        judge = AttributeJudge(dataset.info.shape, dataset.info.attribute_names, architecture).to(device)
        fit_judge(judge, dataset, attributes.float(), F.binary_cross_entropy_with_logits, lambda out, y: 0.0,
                  steps=steps + 1, batch_size=batch_size, lr=DEFAULT_LR[architecture], shift=SHIFT_PIXELS,
                  generator=torch.Generator().manual_seed(0), device=device,
                  progress=lambda step, total, m: stamps.append(time.perf_counter()))
    return (stamps[-1] - stamps[0]) / steps


def cached_judge_matches(path: str | Path, dataset: EbmDataset, architecture: str | None = None) -> bool:
    """Whether :func:`load_or_train_attribute_judge` would reuse the judge cached at ``path``."""
    path = Path(path)
    try:
        return path.is_file() and _cache_matches(read_meta(path), dataset,
                                                 architecture or default_architecture(dataset.info))
    except CheckpointError:
        return False


def _cache_matches(meta: dict[str, Any], dataset: EbmDataset, architecture: str) -> bool:
    info = dataset.info
    return (
        meta.get("kind") == FILE_KIND
        and meta.get("architecture") == architecture
        and meta.get("dataset") == info.name
        and meta.get("shape") == list(info.shape)
        and meta.get("attribute_names") == list(info.attribute_names)
    )


def load_or_train_attribute_judge(
    path: str | Path,
    dataset: EbmDataset,
    test_dataset: EbmDataset | None = None,
    **kwargs: Any,
) -> tuple[AttributeJudge, bool]:
    """Reuse the judge cached at ``path`` when it was trained on the same dataset (name, shape, attribute
    names) with the same architecture; otherwise (no file, a mismatch, an unreadable file) train one, save
    it there and return ``(judge, True)``. ``kwargs`` go to :func:`train_attribute_judge` (``device`` also
    to :func:`load_attribute_judge`)."""
    path = Path(path)
    architecture = kwargs.get("architecture") or default_architecture(dataset.info)
    if path.is_file():
        try:
            if _cache_matches(read_meta(path), dataset, architecture):
                judge = load_attribute_judge(path, kwargs.get("device", "cpu"))
                if judge.recognition_threshold is None:  # cached before judges abstained: calibrate it once
                    judge.meta.update(calibrate_recognition(judge, dataset, test_dataset))
                    save_attribute_judge(judge, path)
                return judge, False
        except CheckpointError:
            pass  # an unreadable cache is replaced below
    judge = train_attribute_judge(dataset, test_dataset=test_dataset, **kwargs)
    save_attribute_judge(judge, path)
    return judge, True
