"""The divergence guard: notice a run going wrong, roll it back to its last good checkpoint, apply a remedy.

A step is unhealthy when a metric is non-finite (loss, energies, or the negatives themselves, which make the
``diversity`` metric non-finite), when |E+| or |E-| passes ``guard.max_energy``, when |E+ - E-| passes
``guard.max_gap``, or when the negatives' spread across the batch falls below ``guard.min_diversity`` times
the data batch's (a collapse). The trainer then restores the last checkpoint and applies the remedy recorded
in :class:`GuardState`: every learning rate times ``lr_factor``, the step size times ``step_size_factor``,
optionally empty replay buffers. The state travels in the checkpoints, so a resumed run keeps its remedies.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch
from torch import Tensor

from ebmctl.methods.capabilities import KeepsNegatives, KeepsReplayBuffers, LangevinTrained
from ebmctl.methods.replication import Replicated
from ebmctl.samplers.hat import HatLangevinParams
from ebmctl.samplers.langevin import LangevinParams
from ebmctl.specs import GuardSpec

# Fewer chains than this say too little about their spread for a collapse to be called.
MIN_SPREAD_BATCH = 8


def diversity(negatives: Tensor, data: Tensor) -> float | None:
    """Mean per-coordinate standard deviation of ``negatives`` across the batch over that of ``data``
    (non-finite when a negative is; None when a batch has fewer than two samples)."""
    if len(negatives) < 2 or len(data) < 2:
        return None
    neg = negatives.detach().float().flatten(1)
    ref = data.detach().float().flatten(1)
    if neg.shape[1] != ref.shape[1]:
        return None
    spread = ref.std(dim=0).mean().clamp_min(1e-12)
    return float(neg.std(dim=0).mean() / spread)


def problem(metrics: dict[str, float], spec: GuardSpec) -> str | None:
    """Why these (process-averaged) metrics show a diverging run, or None when they look healthy."""
    bad = [k for k, v in metrics.items() if not math.isfinite(v)]
    if "diversity" in bad:
        return "non-finite negative samples"
    if bad:
        return "non-finite " + ", ".join(f"{k}={metrics[k]}" for k in bad)
    if spec.max_energy is not None:
        for key, name in (("e_pos", "E+"), ("e_neg", "E-")):
            if key in metrics and abs(metrics[key]) > spec.max_energy:
                return f"|{name}| = {abs(metrics[key]):.4g} > guard.max_energy = {spec.max_energy:g}"
    if spec.max_gap is not None and "gap" in metrics and abs(metrics["gap"]) > spec.max_gap:
        return f"|E+ - E-| = {abs(metrics['gap']):.4g} > guard.max_gap = {spec.max_gap:g}"
    if spec.min_diversity > 0 and "diversity" in metrics and metrics["diversity"] < spec.min_diversity:
        return f"negatives collapsed: diversity {metrics['diversity']:.4g} < guard.min_diversity = {spec.min_diversity:g}"
    return None


@dataclass
class GuardState:
    """What the guard has done to a run so far (saved in the state checkpoint's metadata)."""

    rollbacks: int = 0
    lr_scale: float = 1.0
    step_scale: float = 1.0
    events: list[dict[str, Any]] = field(default_factory=list)

    def to_meta(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_meta(cls, doc: dict[str, Any] | None) -> GuardState:
        doc = doc or {}
        return cls(int(doc.get("rollbacks", 0)), float(doc.get("lr_scale", 1.0)), float(doc.get("step_scale", 1.0)),
                   list(doc.get("events", [])))

    def after_rollback(self, spec: GuardSpec, event: dict[str, Any]) -> GuardState:
        return GuardState(self.rollbacks + 1, self.lr_scale * spec.lr_factor, self.step_scale * spec.step_size_factor,
                          [*self.events, event])


class Remedies:
    """Applies a :class:`GuardState`'s scales to a method, relative to the settings it was built with."""

    def __init__(self, method: Any) -> None:
        self.method = method
        self.models = method.trained_models() if isinstance(method, Replicated) else []
        self.base_lrs = [m.base_lr for m in self.models]
        self.base_sampler = method.sampler if isinstance(method, LangevinTrained) else None

    def apply(self, state: GuardState) -> None:
        for model, lr in zip(self.models, self.base_lrs, strict=True):
            model.base_lr = lr * state.lr_scale
        sampler, s = self.base_sampler, state.step_scale
        if isinstance(sampler, LangevinParams):
            self.method.sampler = replace(sampler, step_size=sampler.step_size * s)
        elif isinstance(sampler, HatLangevinParams):
            self.method.sampler = replace(sampler, epsilon=sampler.epsilon * s,
                                          epsilon_latent=sampler.epsilon_latent * s)

    def step_size(self) -> float | None:
        sampler = self.method.sampler if isinstance(self.method, LangevinTrained) else None
        if isinstance(sampler, LangevinParams):
            return sampler.step_size
        if isinstance(sampler, HatLangevinParams):
            return sampler.epsilon
        return None

    def empty_buffers(self) -> int:
        """Empty every replay buffer of the method; returns how many there were."""
        buffers = self.method.replay_buffers() if isinstance(self.method, KeepsReplayBuffers) else []
        for buffer in buffers:
            buffer.reset()
        return len(buffers)


def negatives_diversity(method: Any, x: Tensor) -> dict[str, float]:
    """The ``diversity`` metric of the step just taken ({} when the method kept no negatives)."""
    neg = method.last_negatives if isinstance(method, KeepsNegatives) else None
    if not isinstance(neg, torch.Tensor) or len(neg) < MIN_SPREAD_BATCH:
        return {}
    value = diversity(neg, x)
    return {} if value is None else {"diversity": value}
