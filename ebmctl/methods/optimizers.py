"""Optimisers that torch does not ship: IGEBM's Adam, which clips each gradient element before the update."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor


class ClippedAdam(torch.optim.Optimizer):
    """Adam as IGEBM's released code runs it (TensorFlow's Adam with a per-element gradient clip).

    At update ``t`` (1-based), before the moments see the gradient ``g``::

        bound = 3 sqrt(v_{t-1} / (1 - beta2^t)) + 0.1        # v of the previous update, t's correction
        g     = clamp(g, -bound, bound)
        m_t   = beta1 m_{t-1} + (1 - beta1) g
        v_t   = beta2 v_{t-1} + (1 - beta2) g^2
        p    -= lr sqrt(1 - beta2^t) / (1 - beta1^t) * m_t / (sqrt(v_t) + eps)

    so the first update clips every element to +-0.1. ``eps`` is TensorFlow's "epsilon hat" (added to
    sqrt(v_t), not to the bias-corrected root as torch's Adam does). ``weight_decay`` adds ``wd * p`` to the
    gradient before the clip, as torch's Adam does (the released code has none).
    """

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        clip_scale: float = 3.0,
        clip_floor: float = 0.1,
    ) -> None:
        if lr <= 0 or eps < 0 or weight_decay < 0 or clip_scale < 0 or clip_floor < 0:
            raise ValueError("lr must be positive; eps, weight_decay, clip_scale and clip_floor non-negative")
        if not all(0 <= b < 1 for b in betas):
            raise ValueError(f"betas must lie in [0, 1), got {betas}")
        defaults = {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay,
                    "clip_scale": clip_scale, "clip_floor": clip_floor}
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                if group["weight_decay"]:
                    g = g.add(p, alpha=group["weight_decay"])
                state = self.state[p]
                if not state:
                    state["step"] = torch.tensor(0.0)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                t = float(state["step"])
                m, v = state["exp_avg"], state["exp_avg_sq"]
                correction2 = 1 - beta2**t
                bound = (v / correction2).sqrt_().mul_(group["clip_scale"]).add_(group["clip_floor"])
                g = torch.maximum(torch.minimum(g, bound), -bound)
                m.mul_(beta1).add_(g, alpha=1 - beta1)
                v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
                step_size = group["lr"] * correction2**0.5 / (1 - beta1**t)
                p.addcdiv_(m, v.sqrt().add_(group["eps"]), value=-step_size)
        return loss
