"""FID, KID and precision/recall through torch-fidelity, never downloading anything.

Two feature extractors: the in-domain judge (registered once per process under ``ebmctl-judge``) or
torch-fidelity's Inception-v3 from a local weights file. Every result names the extractor it came from.
"""

from __future__ import annotations

import copy
import threading
from pathlib import Path
from typing import Any

import torch
import torch_fidelity
from torch.utils.data import Dataset
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor

from ebmctl.errors import CheckpointError, DeviceError, SpecError
from ebmctl.evaluation.judges import Judge

JUDGE_EXTRACTOR = "ebmctl-judge"
INCEPTION_EXTRACTOR = "inception-v3-compat"
INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
MIN_IMAGES = 4  # precision/recall looks at the 3rd nearest neighbour
DEFAULT_KID_SUBSET = 1000

# torch-fidelity builds the extractor itself (from its class and the calculate_metrics keywords), so the
# judge reaches it through this slot, set only while _SLOT_LOCK is held by image_metrics.
_SLOT_LOCK = threading.Lock()
_active_judge: Judge | None = None


class _JudgeExtractor(FeatureExtractorBase):
    """torch-fidelity view of a judge: one feature, the normalised penultimate layer (float64)."""

    def __init__(self, name: str, features_list: list[str], **kwargs: Any) -> None:
        super().__init__(name, features_list)
        if _active_judge is None:
            raise RuntimeError(f"the {JUDGE_EXTRACTOR!r} extractor is only built inside image_metrics()")
        # a private copy: torch-fidelity freezes and moves its extractor, the caller's judge stays as it is
        self.judge = copy.deepcopy(_active_judge).eval()

    @staticmethod
    def get_provided_features_list() -> tuple[str, ...]:
        return ("judge",)

    @staticmethod
    def get_default_feature_layer_for_metric(metric: str) -> str:
        return "judge"

    @staticmethod
    def can_be_compiled() -> bool:
        return False

    @staticmethod
    def get_dummy_input_for_compile() -> torch.Tensor:
        return torch.zeros(1, 3, 32, 32)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor]:
        return (self.judge.features(x),)


def _ensure_judge_extractor() -> None:
    """Register the judge extractor once per process (torch-fidelity's registry refuses duplicates)."""
    current = FEATURE_EXTRACTORS_REGISTRY.get(JUDGE_EXTRACTOR)
    if current is None:
        register_feature_extractor(JUDGE_EXTRACTOR, _JudgeExtractor)
    elif current is not _JudgeExtractor:  # this module was reloaded: point the name at the live class
        FEATURE_EXTRACTORS_REGISTRY[JUDGE_EXTRACTOR] = _JudgeExtractor


class _ImageItems(Dataset):
    """Bare-tensor items for torch-fidelity: float [0, 1] (judge) or uint8 3xHxW (Inception)."""

    def __init__(self, images: torch.Tensor, inception: bool) -> None:
        self.images = images
        self.inception = inception

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> torch.Tensor:
        x = self.images[index].clamp(0.0, 1.0)
        if not self.inception:
            return x
        x = (x * 255.0).round().to(torch.uint8)
        return x.expand(3, -1, -1).contiguous() if x.shape[0] == 1 else x


def inception_available(path: str | Path | None) -> bool:
    """True when ``path`` names an existing file (the weights are checked when they are used)."""
    return path is not None and Path(path).is_file()


def _check_inception_weights(path: Path) -> None:
    """Fail early, with a hint, on a missing file or one that is not a plain Inception state dict.

    Loading with ``weights_only=True`` first means torch-fidelity's own load only ever sees plain tensors."""
    hint = (
        f"give eval.inception_weights=PATH of a local copy of torch-fidelity's {INCEPTION_FILE}, "
        "or leave it unset to measure with the in-domain judge"
    )
    if not path.is_file():
        raise CheckpointError(f"Inception weights file not found: {path}", hint)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unpickling failure means: not a plain state dict
        raise CheckpointError(
            f"{path} is not a plain PyTorch state dict ({type(exc).__name__})", hint
        ) from exc
    fc = state.get("fc.weight") if isinstance(state, dict) else None
    if not isinstance(fc, torch.Tensor) or tuple(fc.shape) != (1008, 2048):
        raise CheckpointError(f"{path} does not hold torch-fidelity's Inception-v3 weights", hint)


def _check_images(x: torch.Tensor, name: str) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] not in (1, 3):
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name}: expected a float tensor (N, 1|3, H, W), got {shape}")
    if not x.is_floating_point():
        raise ValueError(f"{name}: expected floats in [0, 1], got {x.dtype}")
    if len(x) < MIN_IMAGES:
        raise ValueError(f"{name}: need at least {MIN_IMAGES} images, got {len(x)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name}: images contain NaN or infinite values")


def _check_judge_shape(judge: Judge, shape: tuple[int, ...]) -> None:
    expected = judge.meta.get("shape")
    if shape[0] != judge.in_channels or (expected is not None and tuple(expected) != shape):
        raise CheckpointError(
            f"the judge was trained on images of shape {tuple(expected or (judge.in_channels,))}, "
            f"these are {shape}",
            "use the judge of the dataset the model was trained on",
        )


def image_metrics(
    samples: torch.Tensor,
    reference: torch.Tensor,
    *,
    judge: Judge | None = None,
    inception_weights: str | Path | None = None,
    kid_subset_size: int | None = None,
    kid_subsets: int = 100,
    precision_recall: bool = True,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    seed: int = 2020,
) -> dict[str, Any]:
    """FID, KID and (optionally) precision/recall of ``samples`` against ``reference``.

    Both are float images in [0, 1], (N, C, H, W) with the same C, H, W (values are clamped to [0, 1], as
    when saving pictures). Features come from ``judge`` or from Inception-v3 loaded from the local file
    ``inception_weights``; exactly one must be given (else ValueError). ``kid_subset_size`` defaults to
    min(N // 2, M // 2, 1000) (subsets of all N images would all be equal, making kid_std 0). CUDA is used
    only when ``device`` is a CUDA device or the inputs live on one.

    Returns fid, kid_mean, kid_std, precision, recall (None when not computed), extractor (a description
    of the feature extractor), n_samples, n_reference, kid_subset_size."""
    if (judge is None) == (inception_weights is None):
        raise ValueError("image_metrics needs exactly one of judge= or inception_weights=")
    _check_images(samples, "samples")
    _check_images(reference, "reference")
    if samples.shape[1:] != reference.shape[1:]:
        raise ValueError(
            f"samples are {tuple(samples.shape[1:])}, reference images {tuple(reference.shape[1:])}"
        )
    n, m = len(samples), len(reference)
    subset = min(min(n, m) // 2, DEFAULT_KID_SUBSET) if kid_subset_size is None else int(kid_subset_size)
    if not 2 <= subset <= min(n, m):
        raise SpecError(
            f"kid_subset_size={subset} must lie in 2..{min(n, m)} (the smaller of the two image counts)",
            "lower eval.kid_subset_size or evaluate more samples",
        )
    cuda = _use_cuda(device, samples, reference)
    inception = judge is None
    kwargs: dict[str, Any] = {
        "input1": _ImageItems(samples.detach().cpu(), inception),
        "input2": _ImageItems(reference.detach().cpu(), inception),
        "fid": True,
        "kid": True,
        "prc": precision_recall,
        "kid_subset_size": subset,
        "kid_subsets": kid_subsets,
        "batch_size": batch_size,
        "rng_seed": seed,
        "cuda": cuda,
        "save_cpu_ram": True,
        "cache": False,
        "verbose": False,
        "datasets_download": False,
    }
    if judge is not None:
        _check_judge_shape(judge, tuple(samples.shape[1:]))
        out = _with_judge(judge, kwargs)
        extractor = judge.describe()
    else:
        path = Path(inception_weights).expanduser()
        _check_inception_weights(path)
        out = torch_fidelity.calculate_metrics(
            feature_extractor=INCEPTION_EXTRACTOR, feature_extractor_weights_path=str(path), **kwargs
        )
        extractor = f"{INCEPTION_EXTRACTOR} (local weights {path})"
    return {
        "fid": float(out[torch_fidelity.KEY_METRIC_FID]),
        "kid_mean": float(out[torch_fidelity.KEY_METRIC_KID_MEAN]),
        "kid_std": float(out[torch_fidelity.KEY_METRIC_KID_STD]),
        "precision": float(out[torch_fidelity.KEY_METRIC_PRECISION]) if precision_recall else None,
        "recall": float(out[torch_fidelity.KEY_METRIC_RECALL]) if precision_recall else None,
        "extractor": extractor,
        "n_samples": n,
        "n_reference": m,
        "kid_subset_size": subset,
    }


def _with_judge(judge: Judge, kwargs: dict[str, Any]) -> dict[str, float]:
    """Run calculate_metrics with the judge extractor; the lock keeps concurrent calls from mixing judges."""
    global _active_judge
    with _SLOT_LOCK:
        _ensure_judge_extractor()
        _active_judge = judge
        try:
            return torch_fidelity.calculate_metrics(feature_extractor=JUDGE_EXTRACTOR, **kwargs)
        finally:
            _active_judge = None


def _use_cuda(device: str | torch.device | None, *tensors: torch.Tensor) -> bool:
    wanted = torch.device(device).type == "cuda" if device is not None else any(t.is_cuda for t in tensors)
    if wanted and not torch.cuda.is_available():
        raise DeviceError("CUDA was asked for but is not available", "use --device cpu")
    return wanted
