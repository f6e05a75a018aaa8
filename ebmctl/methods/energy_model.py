"""A trained net with its optimiser (Adam, IGEBM's clipped Adam, or SGD), warm-up and cosine schedules,
gradient clipping and EMA: what every method trains its nets through."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from ebmctl.methods.optimizers import ClippedAdam
from ebmctl.methods.state import load_optimizer, optimizer_meta, optimizer_tensors, prefixed, unprefixed


class _Entry(nn.Module):
    """The module a gradient-averaging wrapper holds: ``forward(*args, entry=name)`` calls ``net.<name>(*args)``,
    so a loss can reach any method of the net (``f_and_latent``) through the wrapper."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, *args: Any, entry: str | None = None, **kwargs: Any) -> Any:
        return (self.net if entry is None else getattr(self.net, entry))(*args, **kwargs)


CLIP_MODES = ("total", "per_tensor")


@torch.no_grad()
def clip_grad_norm_per_tensor(params: list[nn.Parameter], max_norm: float) -> Tensor:
    """Scale each parameter's gradient g to ``g * max_norm / max(||g||, max_norm)`` on its own (TensorFlow's
    ``clip_by_norm`` applied tensor by tensor); return the norm of all gradients together before clipping."""
    norms = torch.stack([p.grad.norm() for p in params])
    for p, norm in zip(params, norms, strict=True):
        p.grad.mul_(max_norm / torch.clamp(norm, min=max_norm))
    return torch.linalg.vector_norm(norms)


class EnergyModel:
    """A trained net with its optimiser, learning-rate schedule, gradient-norm clipping and optional EMA.

    ``optimizer`` is Adam (``betas``), IGEBM's released Adam that clips each gradient element first
    (``adam_clip``, :class:`ClippedAdam`) or SGD (``momentum``, ``weight_decay``). The learning rate warms up
    linearly over ``warmup`` updates and then follows a cosine decay to 0 over ``cosine_steps`` updates when
    that is set (CLEL's encoder), as torch's LambdaLR and CosineAnnealingLR would. The EMA copies the weights
    outright for the first ``ema_start`` updates, then averages with decay ``ema``. ``grad_clip_mode`` "total"
    bounds the norm of all gradients together by ``grad_clip``, "per_tensor" that of each parameter tensor.
    """

    def __init__(
        self,
        net: nn.Module,
        *,
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        grad_clip: float | None = None,
        grad_clip_mode: str = "total",
        ema: float | None = None,
        optimizer: str = "adam",
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        warmup: int = 0,
        cosine_steps: int | None = None,
        ema_start: int = 0,
    ) -> None:
        self.net = net
        if optimizer == "adam":
            self.optimizer: torch.optim.Optimizer = torch.optim.Adam(
                net.parameters(), lr=lr, betas=betas, weight_decay=weight_decay
            )
        elif optimizer == "adam_clip":
            self.optimizer = ClippedAdam(net.parameters(), lr=lr, betas=betas, weight_decay=weight_decay)
        elif optimizer == "sgd":
            self.optimizer = torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
        else:
            raise ValueError(f"unknown optimizer {optimizer!r}")
        if grad_clip_mode not in CLIP_MODES:
            raise ValueError(f"unknown grad_clip_mode {grad_clip_mode!r}; choose from {', '.join(CLIP_MODES)}")
        self.grad_clip_mode = grad_clip_mode
        self.base_lr = lr
        self.warmup = warmup
        self.cosine_steps = cosine_steps
        self.grad_clip = grad_clip
        self.ema_decay = ema
        self.ema_start = ema_start
        self.updates = 0
        self.ema_net: nn.Module | None = None
        if ema is not None:
            self.ema_net = copy.deepcopy(net).eval()
            self.ema_net.requires_grad_(False)
        self.entry: nn.Module = _Entry(net)

    def replicate(self, wrap: Callable[[nn.Module], nn.Module]) -> None:
        """Train as one of several processes: the loss's passes go through ``wrap`` (DistributedDataParallel),
        which makes every replica start from the same weights and averages the gradients in ``backward``."""
        self.entry = wrap(self.entry)
        if self.ema_net is not None and self.updates == 0:
            self.ema_net.load_state_dict(self.net.state_dict())  # the wrapper may have replaced the weights

    def forward(self, *args: Any, entry: str | None = None, **kwargs: Any) -> Any:
        """The net on a loss's inputs: ``net(*args)``, or ``net.<entry>(*args)``.

        Every pass whose output a loss backpropagates into the net's parameters goes through here, so that it
        reaches the gradient-averaging wrapper when one is installed; samplers, which freeze the parameters,
        call ``net`` itself."""
        return self.entry(*args, entry=entry, **kwargs)

    def lr_at(self, update: int) -> float:
        """The learning rate of update number ``update`` (0-based)."""
        lr = self.base_lr
        if self.warmup > 0 and update < self.warmup:
            lr *= (update + 1) / self.warmup
        if self.cosine_steps:
            lr *= 0.5 * (1.0 + math.cos(math.pi * min(update, self.cosine_steps) / self.cosine_steps))
        return lr

    def step(self, loss: Tensor) -> float:
        """Backpropagate ``loss``, clip, take an optimiser step, update the EMA; return the gradient norm."""
        self.zero_grad()
        loss.backward()
        return self.update()

    def zero_grad(self) -> None:
        """Clear the gradients of the optimiser's parameters (set them to None)."""
        self.optimizer.zero_grad(set_to_none=True)

    def update(self) -> float:
        """Clip the gradients already accumulated, take an optimiser step and update the EMA.

        :meth:`step` without the backward pass: models sharing one loss zero their gradients, call
        ``loss.backward()`` once, then ``update()`` each. Returns the gradient norm before clipping.
        """
        params = [p for p in self.net.parameters() if p.grad is not None]
        if self.grad_clip is not None and params and self.grad_clip_mode == "per_tensor":
            norm = clip_grad_norm_per_tensor(params, self.grad_clip)
        elif self.grad_clip is not None:
            norm = torch.nn.utils.clip_grad_norm_(params, self.grad_clip)
        else:
            norm = torch.linalg.vector_norm(torch.stack([p.grad.detach().norm() for p in params])) if params else None
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr_at(self.updates)
        self.optimizer.step()
        self.updates += 1
        self.update_ema()
        return float(norm) if norm is not None else 0.0

    @torch.no_grad()
    def update_ema(self) -> None:
        if self.ema_net is None or self.ema_decay is None:
            return
        copying = 0 < self.updates <= self.ema_start  # the first ema_start updates copy the weights
        d = 0.0 if copying else self.ema_decay
        for p_ema, p in zip(self.ema_net.parameters(), self.net.parameters(), strict=True):
            p_ema.mul_(d).add_(p.detach(), alpha=1 - d)
        for b_ema, b in zip(self.ema_net.buffers(), self.net.buffers(), strict=True):
            b_ema.copy_(b)

    def eval_net(self, ema: bool = True) -> nn.Module:
        """The net used for sampling and evaluation (EMA weights where kept), in eval mode."""
        net = self.ema_net if (ema and self.ema_net is not None) else self.net
        return net.eval()

    # ------------------------------------------------------------------ state

    def weight_tensors(self) -> dict[str, Tensor]:
        out = prefixed("model.", self.net.state_dict())
        if self.ema_net is not None:
            out.update(prefixed("ema.", self.ema_net.state_dict()))
        return out

    def load_weights(self, tensors: dict[str, Tensor]) -> None:
        self.net.load_state_dict(unprefixed("model.", tensors))
        if self.ema_net is not None:
            ema = unprefixed("ema.", tensors)
            self.ema_net.load_state_dict(ema if ema else self.net.state_dict())

    def state_tensors(self) -> dict[str, Tensor]:
        return {**self.weight_tensors(), **optimizer_tensors(self.optimizer, "optim.")}

    def state_meta(self) -> dict[str, Any]:
        return {"optimizer": optimizer_meta(self.optimizer), "updates": self.updates}

    def load_state(self, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
        self.load_weights(tensors)
        load_optimizer(self.optimizer, tensors, meta["optimizer"], "optim.")
        self.updates = int(meta.get("updates", 0))
