"""The attribute judge: a multi-label classifier that says which binary attributes an image has.

It scores compositional generation the way Du et al. (2021, "Improved Contrastive Divergence", Table 4) do:
per requested attribute, the fraction of samples the judge classifies as having it. Two bodies: the small CNN
of the in-domain class judge (shapes32 and other small images) and a ResNet-18 (CelebA, as in the paper).
It is cached as safetensors with a JSON meta document.

A judge abstains on images it does not recognise, as the class judge reports its confident share: the
penultimate features of 2,000 training images are kept with it, and an image whose features lie further from
the nearest of them (cosine distance) than the dataset's held-out images do is not judged. (Pure noise lands
far from every training image there, while its features' mean and spread look ordinary, and the judge's
sigmoids may still be sure of an attribute.)
"""

from __future__ import annotations

import difflib
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ebmctl.checkpoints import load_tensors, read_meta, save_tensors
from ebmctl.data.base import DataInfo, EbmDataset
from ebmctl.errors import CheckpointError, SpecError, UsageError
from ebmctl.evaluation.judges import FEATURE_DIM, Progress, _conv, fit_judge

FILE_KIND = "ebmctl-attribute-judge"
ARCHITECTURES = ("cnn", "resnet18")
DEFAULT_LR = {"cnn": 3e-3, "resnet18": 1e-3}
DEFAULT_BATCH_SIZE = 64
SHIFT_PIXELS = 1  # shapes32's left/top halves are 2 px apart: a larger shift would blur those labels
SMALL_INPUT = 64  # ResNet-18 inputs up to this size get a 3x3 stride-1 stem and no max-pooling
REPORT_CHUNK = 256
RECOGNITION_BUFFERS = {"reference_features"}
CALIBRATION_IMAGES = 2000  # training images whose features the judge keeps, and held-out images that set ...
RECOGNITION_QUANTILE = 0.99  # ... the threshold: this quantile of their distances ...
RECOGNITION_MARGIN = 1.5  # ... times this margin is the largest distance the judge still recognises

# Words accepted for a dataset's attributes besides their own names: word -> (attribute, wanted present).
ATTRIBUTE_ALIASES: dict[str, dict[str, tuple[str, bool]]] = {
    "celeba": {
        "female": ("Male", False),
        "woman": ("Male", False),
        "man": ("Male", True),
        "old": ("Young", False),
    },
}


def _cnn(in_channels: int, num_outputs: int) -> nn.Sequential:
    """The class judge's body (five 3x3 convs, three poolings, 96-d global average) with a linear head."""
    return nn.Sequential(
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
        nn.Linear(FEATURE_DIM, num_outputs),
    )


def _resnet18(in_channels: int, image_size: int, num_outputs: int) -> nn.Module:
    """torchvision's ResNet-18 (random init); small inputs get a 3x3 stride-1 stem without max-pooling."""
    from torchvision.models import resnet18

    net = resnet18(weights=None, num_classes=num_outputs)
    if image_size <= SMALL_INPUT:
        net.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
    elif in_channels != 3:
        net.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
    return net


def _check_architecture(architecture: str) -> None:
    if architecture not in ARCHITECTURES:
        raise SpecError(
            f"unknown attribute judge architecture {architecture!r}",
            f"use one of: {', '.join(ARCHITECTURES)}",
        )


class AttributeJudge(nn.Module):
    """One logit per attribute (sigmoid: the probability of having it) for images of shape (C, H, W).

    Inputs are float images in [0, 1] (B, C, H, W); uint8 images are scaled by 1/255."""

    def __init__(
        self,
        shape: Sequence[int],
        attribute_names: Sequence[str],
        architecture: str = "cnn",
        meta: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        _check_architecture(architecture)
        if len(shape) != 3 or not attribute_names:
            raise ValueError(f"an attribute judge needs a (C, H, W) shape and attributes, got {tuple(shape)}")
        self.shape = tuple(int(s) for s in shape)
        self.attribute_names = tuple(attribute_names)
        self.architecture = architecture
        channels, height, width = self.shape
        if architecture == "cnn":
            self.net = _cnn(channels, len(self.attribute_names))
        else:
            self.net = _resnet18(channels, max(height, width), len(self.attribute_names))
        self.meta: dict[str, Any] = dict(meta or {})
        width = FEATURE_DIM if architecture == "cnn" else self.net.fc.in_features
        self.register_buffer("reference_features", torch.zeros(0, width))  # unit-norm features of training images

    @property
    def num_attributes(self) -> int:
        return len(self.attribute_names)

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        if self.architecture == "cnn":
            return self.net[:-1](x)
        net = self.net
        x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
        x = net.layer4(net.layer3(net.layer2(net.layer1(x))))
        return torch.flatten(net.avgpool(x), 1)

    @torch.no_grad()
    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features (B, D), the input of the linear head."""
        return self._features(self._prepare(x))

    @torch.no_grad()
    def recognition_distance(self, x: torch.Tensor) -> torch.Tensor:
        """How far each image's features lie from the nearest kept training image's: the Euclidean distance of
        unit-norm features (B,)."""
        if len(self.reference_features) == 0:
            raise ValueError("this judge keeps no training features: calibrate_recognition first")
        f = F.normalize(self.features(x).float(), dim=1)
        return torch.cdist(f, self.reference_features).min(dim=1).values

    @property
    def recognition_threshold(self) -> float | None:
        value = self.meta.get("recognition_threshold")
        return float(value) if value is not None else None

    @torch.no_grad()
    def recognises(self, x: torch.Tensor) -> torch.Tensor:
        """Whether the judge recognises each image as one of its dataset's, bool (B,) (all, uncalibrated)."""
        threshold = self.recognition_threshold
        if threshold is None:
            return torch.ones(len(x), dtype=torch.bool)
        return self.recognition_distance(x).cpu() <= threshold

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.uint8:
            x = x.float() / 255.0
        if x.dim() != 4 or x.shape[1] != self.shape[0]:
            raise ValueError(
                f"attribute judge expects (B, {self.shape[0]}, H, W) images, got {tuple(x.shape)}"
            )
        device = next(self.parameters()).device
        return x.to(device=device, dtype=torch.float32)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Raw logits (B, A)."""
        return self.net(self._prepare(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(x)

    @torch.no_grad()
    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """Probability of having each attribute (B, A)."""
        return torch.sigmoid(self.logits(x))

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Whether each image has each attribute, bool (B, A): probability above 0.5."""
        return self.logits(x) > 0

    def describe(self) -> str:
        """Short label, e.g. ``attribute-judge:celeba (resnet18, 40 attributes)``."""
        name = self.meta.get("dataset", "unnamed")
        return f"attribute-judge:{name} ({self.architecture}, {self.num_attributes} attributes)"


def default_architecture(info: DataInfo) -> str:
    """ResNet-18 for CelebA (as in Du et al. 2021), the small CNN otherwise."""
    return "resnet18" if info.name == "celeba" else "cnn"


def default_steps(info: DataInfo) -> int:
    """Training steps of the default schedule for ``info``'s dataset."""
    return 4000 if default_architecture(info) == "resnet18" else 1000


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
    _check_architecture(architecture)
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


ARCHITECTURE_NAMES = {"cnn": "small CNN", "resnet18": "ResNet-18"}


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


def _key(word: str) -> str:
    """Case-insensitive form in which underscores, dashes and spaces are the same separator."""
    return re.sub(r"[\s_-]+", "_", word.strip().lower())


def resolve_attributes(
    requested: Sequence[str],
    attribute_names: Sequence[str],
    aliases: dict[str, tuple[str, bool]] | None = None,
) -> list[tuple[str, int, bool]]:
    """Turn words such as ``smiling``, ``wavy-hair``, ``-smiling`` (absent) or an alias such as ``female``
    into ``(attribute name, index, wanted present)``. Unknown words and attributes named twice raise
    UsageError. ``aliases`` maps a word to ``(attribute, present)``, e.g. ``ATTRIBUTE_ALIASES["celeba"]``."""
    if not attribute_names:
        raise UsageError(
            "this dataset has no attributes to ask for", "use a dataset with attributes, e.g. celeba"
        )
    index = {_key(name): (name, i) for i, name in enumerate(attribute_names)}
    alias_keys = {
        _key(word): (index[_key(target)], present, word)
        for word, (target, present) in (aliases or {}).items()
        if _key(target) in index and _key(word) not in index
    }
    resolved: list[tuple[str, int, bool]] = []
    for word in requested:
        negated = word.strip().startswith("-")
        key = _key(word.strip()[1:] if negated else word)
        if key in index:
            (name, i), present = index[key], True
        elif key in alias_keys:
            (name, i), present, _ = alias_keys[key]
        else:
            shown = {k: name for k, (name, _) in index.items()} | {
                k: w for k, (_, _, w) in alias_keys.items()
            }
            close = difflib.get_close_matches(key, list(shown), n=1, cutoff=0.6)
            suggestion = f"; did you mean '{shown[close[0]]}'?" if close else ""
            raise UsageError(
                f"unknown attribute '{word}'{suggestion}",
                f"valid attributes: {', '.join(attribute_names)}"
                + (f"; aliases: {', '.join(w for _, _, w in alias_keys.values())}" if alias_keys else "")
                + "; prefix one with '-' to ask for its absence",
            )
        if any(j == i for _, j, _ in resolved):
            raise UsageError(
                f"attribute {name} is asked for twice (by '{word}')", "name each attribute at most once"
            )
        resolved.append((name, i, present != negated))
    return resolved


@torch.no_grad()
def _predictions(judge: AttributeJudge, samples: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The judge's bool (N, A) decisions on ``samples`` in chunks of 256, in eval mode, and whether it
    recognises each sample, bool (N,)."""
    if len(samples) == 0:
        raise ValueError("no samples to judge")
    was_training = judge.training
    judge.eval()
    try:
        chunks = samples.split(REPORT_CHUNK)
        return (torch.cat([judge.predict(chunk).cpu() for chunk in chunks]),
                torch.cat([judge.recognises(chunk).cpu() for chunk in chunks]))
    finally:
        judge.train(was_training)


def attribute_report(
    judge: AttributeJudge, samples: torch.Tensor, wanted: Sequence[tuple[str, int, bool]]
) -> list[dict[str, Any]]:
    """Per wanted ``(name, index, present)`` the fraction of ``samples`` judged to match it (to have the
    attribute when ``present``, to lack it otherwise), then a row named ``all``: the fraction matching every
    wanted attribute at once. Samples the judge does not recognise are not judged: they match nothing.

    Rows are ``{"name", "index", "present", "fraction", "fraction_of_judged", "abstained", "samples"}``
    (``all``: index and present None; ``fraction_of_judged``: among the recognised samples, None without
    any; ``abstained``: how many samples the judge did not recognise)."""
    if not wanted:
        raise ValueError("no attributes to report on")
    predicted, recognised = _predictions(judge, samples)
    matches = torch.stack([predicted[:, i] == present for _, i, present in wanted], dim=1)
    matches = torch.cat([matches, matches.all(1, keepdim=True)], dim=1) & recognised[:, None]
    judged = int(recognised.sum())
    names = [*wanted, ("all", None, None)]
    return [{"name": name, "index": i, "present": present, "fraction": matches[:, k].float().mean().item(),
             "fraction_of_judged": matches[:, k].sum().item() / judged if judged else None,
             "abstained": len(samples) - judged, "samples": len(samples)}
            for k, (name, i, present) in enumerate(names)]


def attribute_rates(judge: AttributeJudge, samples: torch.Tensor) -> dict[str, float]:
    """The fraction of ``samples`` judged to have each attribute (e.g. the unconditional baseline); samples
    the judge does not recognise have none."""
    predicted, recognised = _predictions(judge, samples)
    rates = (predicted & recognised[:, None]).float().mean(0)
    return {name: rates[i].item() for i, name in enumerate(judge.attribute_names)}
