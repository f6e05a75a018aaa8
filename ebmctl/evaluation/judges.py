"""The in-domain judge: a small CNN classifier trained on a dataset's class labels.

Its penultimate features stand in for Inception's when no Inception weights are available (FID, KID,
precision/recall on the dataset's own terms). It is cached as safetensors with a JSON meta document.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ebmctl.checkpoints import load_tensors, read_meta, save_tensors
from ebmctl.data.base import EbmDataset
from ebmctl.errors import CheckpointError, SpecError

ARCHITECTURE = "judge-cnn-v1"
FILE_KIND = "ebmctl-judge"
FEATURE_DIM = 96
DEFAULT_STEPS = 400
DEFAULT_BATCH_SIZE = 64
DEFAULT_LR = 3e-3
SHIFT_PIXELS = 2  # augmentation: random translation by up to this many pixels

Progress = Callable[[int, int, dict[str, float]], None]


def _conv(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class Judge(nn.Module):
    """Five 3x3 conv layers (24-48-64-64-96 channels, BatchNorm, three 2x max-poolings), global average
    pooling to 96-d features and a linear head (~131k parameters). Global pooling makes it work at any
    resolution from 16 px up.
    Inputs are float images in [0, 1] (B, C, H, W); uint8 images are scaled by 1/255."""

    def __init__(self, in_channels: int, num_classes: int, meta: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.body = nn.Sequential(
            *_conv(in_channels, 24),
            nn.MaxPool2d(2),
            *_conv(24, 48),
            nn.MaxPool2d(2),
            *_conv(48, 64),
            *_conv(64, 64),
            nn.MaxPool2d(2),
            *_conv(64, FEATURE_DIM),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(FEATURE_DIM, num_classes)
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.meta: dict[str, Any] = dict(meta or {})

    @property
    def feature_dim(self) -> int:
        return FEATURE_DIM

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.uint8:
            x = x.float() / 255.0
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"judge expects (B, {self.in_channels}, H, W) images, got {tuple(x.shape)}")
        device = next(self.parameters()).device
        return x.to(device=device, dtype=torch.float32)

    def penultimate(self, x: torch.Tensor) -> torch.Tensor:
        """Raw pooled features (B, 96), the input of the classification head."""
        return self.body(self._prepare(x))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.penultimate(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(x)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Class indices (B,)."""
        return self.logits(x).argmax(dim=1)

    @torch.no_grad()
    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features, L2-normalised and scaled by sqrt(d), as float64 (B, d).

        Every row then has norm sqrt(d), the scale KID's polynomial kernel (x.y/d + 1)^3 assumes."""
        h = self.penultimate(x).double()
        return F.normalize(h, dim=1) * math.sqrt(h.shape[1])

    def describe(self) -> str:
        """Short name used to label metrics, e.g. ``judge:shapes32 (4-class CNN, 96-d)``."""
        name = self.meta.get("dataset", "unnamed")
        return f"judge:{name} ({self.num_classes}-class CNN, {self.feature_dim}-d)"


def _labelled_image_sets() -> list[str]:
    from ebmctl.data.registry import DATASETS

    return [e.name for e in DATASETS.values() if e.kind == "image" and e.num_classes >= 2]


def _check_labelled(dataset: EbmDataset) -> torch.Tensor:
    info = dataset.info
    labels = dataset.labels()
    if info.kind != "image":
        raise SpecError(
            f"the in-domain judge needs an image dataset; {info.name!r} holds {info.kind}",
            "image metrics apply to image datasets only",
        )
    if info.num_classes < 2 or len(labels) == 0 or bool((labels < 0).any()):
        raise SpecError(
            f"the in-domain judge trains on class labels and dataset {info.name!r} has no class labels "
            f"(labelled image sets: {', '.join(_labelled_image_sets())})",
            "give eval.inception_weights=PATH (a local Inception-v3 weights file) instead",
        )
    if bool((labels >= info.num_classes).any()):
        raise SpecError(
            f"dataset {info.name!r} has labels outside 0..{info.num_classes - 1}",
            "check the dataset's num_classes",
        )
    return labels.long()


def judge_optimizer(module: nn.Module, lr: float, steps: int) -> tuple[torch.optim.Optimizer, Any]:
    """AdamW (weight decay 5e-4) with a linear warm-up over the first 5% of ``steps``, then cosine decay."""
    opt = torch.optim.AdamW(module.parameters(), lr=lr, weight_decay=5e-4)
    warmup = max(1, steps // 20)

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, schedule)


def fit_judge(
    judge: nn.Module,
    dataset: EbmDataset,
    targets: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    accuracy_fn: Callable[[torch.Tensor, torch.Tensor], float],
    *,
    steps: int,
    batch_size: int,
    lr: float,
    shift: int,
    generator: torch.Generator,
    device: str | torch.device,
    progress: Progress | None,
) -> None:
    """The judges' training loop: random batches (images scaled to [0, 1], shifted by up to ``shift`` pixels)
    against ``targets[idx]``, :func:`judge_optimizer`; leaves the judge in eval mode."""
    n = len(dataset)
    opt, sched = judge_optimizer(judge, lr, steps)
    judge.train()
    for step in range(1, steps + 1):
        idx = torch.randint(0, n, (min(batch_size, n),), generator=generator)
        x, _ = dataset.get_batch(idx)
        y = targets[idx].to(device)
        x = x.to(device).float() / 255.0
        if shift and min(x.shape[-2:]) > 4 * shift:
            x = _random_shift(x, shift, generator)
        out = judge.logits(x)
        loss = loss_fn(out, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if progress is not None:
            progress(step, steps, {"loss": loss.item(), "acc": accuracy_fn(out, y), "lr": opt.param_groups[0]["lr"]})
    judge.eval()


def _random_shift(x: torch.Tensor, pad: int, gen: torch.Generator) -> torch.Tensor:
    """Translate each image by its own random offset in [-pad, pad]^2 (edges replicated)."""
    b, _, h, w = x.shape
    xp = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    oy = torch.randint(0, 2 * pad + 1, (b, 1), generator=gen)
    ox = torch.randint(0, 2 * pad + 1, (b, 1), generator=gen)
    rows = (oy + torch.arange(h)).to(x.device)  # (B, H)
    cols = (ox + torch.arange(w)).to(x.device)  # (B, W)
    bi = torch.arange(b, device=x.device)[:, None, None]
    out = xp.permute(0, 2, 3, 1)[bi, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
    return out.permute(0, 3, 1, 2).contiguous()


@torch.no_grad()
def judge_accuracy(judge: Judge, dataset: EbmDataset, batch_size: int = 500) -> float:
    """Fraction of ``dataset`` the judge classifies correctly (eval mode)."""
    was_training = judge.training
    judge.eval()
    correct = 0
    n = len(dataset)
    for start in range(0, n, batch_size):
        x, y = dataset.get_batch(torch.arange(start, min(start + batch_size, n)))
        correct += int((judge.predict(x).cpu() == y).sum())
    judge.train(was_training)
    return correct / max(n, 1)


def train_judge(
    dataset: EbmDataset,
    *,
    test_dataset: EbmDataset | None = None,
    steps: int = DEFAULT_STEPS,
    batch_size: int = DEFAULT_BATCH_SIZE,
    lr: float = DEFAULT_LR,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: Progress | None = None,
) -> Judge:
    """Train a judge on ``dataset``'s class labels (AdamW, warm-up then cosine decay, random shifts).

    ``progress(step, total, {"loss", "acc", "lr"})`` is called after every step. The global RNG state is
    left as it was. ``meta["test_accuracy"]`` is measured on ``test_dataset`` (None without one)."""
    labels = _check_labelled(dataset)
    if steps < 1 or batch_size < 1 or lr <= 0:
        raise SpecError(
            f"judge training needs steps >= 1, batch_size >= 1, lr > 0 (got {steps}, {batch_size}, {lr})"
        )
    info = dataset.info
    gen = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        judge = Judge(info.shape[0], info.num_classes).to(device)
    fit_judge(judge, dataset, labels, F.cross_entropy, lambda out, y: (out.argmax(1) == y).float().mean().item(),
              steps=steps, batch_size=batch_size, lr=lr, shift=SHIFT_PIXELS, generator=gen, device=device,
              progress=progress)
    judge.meta = {
        "kind": FILE_KIND,
        "architecture": ARCHITECTURE,
        "dataset": info.name,
        "split": info.split,
        "shape": list(info.shape),
        "num_classes": info.num_classes,
        "class_names": list(info.class_names),
        "feature_dim": FEATURE_DIM,
        "test_accuracy": judge_accuracy(judge, test_dataset) if test_dataset is not None else None,
        "steps": steps,
        "batch_size": batch_size,
        "lr": lr,
        "seed": seed,
        "train_seconds": round(time.perf_counter() - start, 2),
    }
    return judge


def save_judge(judge: Judge, path: str | Path) -> None:
    """Write the judge's weights and meta as one safetensors file (atomically)."""
    save_tensors(Path(path), judge.state_dict(), judge.meta)


def load_judge(path: str | Path, device: str | torch.device = "cpu") -> Judge:
    """Load a judge written by :func:`save_judge`; a foreign or mismatched file raises CheckpointError."""
    tensors, meta = load_tensors(Path(path))
    if meta.get("kind") != FILE_KIND or meta.get("architecture") != ARCHITECTURE:
        raise CheckpointError(
            f"{path} is not an ebmctl judge ({ARCHITECTURE})",
            "delete the file to let ebmctl train a new judge, or give another path",
        )
    judge = Judge(int(meta["shape"][0]), int(meta["num_classes"]), meta)
    try:
        judge.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(
            f"{path} does not match the judge architecture ({str(exc).splitlines()[0][:100]})",
            "delete the file to let ebmctl train a new judge",
        ) from exc
    return judge.to(device).eval()


def _cache_matches(meta: dict[str, Any], dataset: EbmDataset) -> bool:
    info = dataset.info
    return (
        meta.get("kind") == FILE_KIND
        and meta.get("architecture") == ARCHITECTURE
        and meta.get("dataset") == info.name
        and meta.get("shape") == list(info.shape)
        and meta.get("num_classes") == info.num_classes
    )


def load_or_train_judge(
    path: str | Path,
    dataset: EbmDataset,
    test_dataset: EbmDataset | None = None,
    **kwargs: Any,
) -> tuple[Judge, bool]:
    """Reuse the judge cached at ``path`` when it was trained on the same dataset (name, shape, classes);
    otherwise (no file, another dataset, an unreadable file) train one, save it there and return
    ``(judge, True)``. ``kwargs`` go to :func:`train_judge` (``device`` also to :func:`load_judge`)."""
    path = Path(path)
    if path.is_file():
        try:
            if _cache_matches(read_meta(path), dataset):
                return load_judge(path, kwargs.get("device", "cpu")), False
        except CheckpointError:
            pass  # an unreadable cache is replaced below
    judge = train_judge(dataset, test_dataset=test_dataset, **kwargs)
    save_judge(judge, path)
    return judge, True
