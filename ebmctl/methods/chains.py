"""Where training chains start: replay-buffer draws, restarts from uniform noise, an augmentation; and each
process's share of a buffer."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ebmctl.methods.replication import Replicas
from ebmctl.samplers.buffers import ReplayBuffer, SlotBuffer
from ebmctl.samplers.transitions import Transition


def init_chains(
    n: int,
    shape: tuple[int, ...],
    *,
    buffer: ReplayBuffer | None,
    reinit: float,
    init_range: tuple[float, float],
    transition: Transition | None,
    device: torch.device,
) -> Tensor:
    """Starting states of ``n`` chains: buffer draws (augmented by ``transition``), each restarted from
    uniform noise with probability ``reinit``; all noise until the buffer holds ``n`` samples."""
    lo, hi = init_range
    if buffer is None or len(buffer) < n:
        return torch.rand((n, *shape), device=device) * (hi - lo) + lo
    x = buffer.sample(n).to(device)
    if transition is not None:
        x = transition(x)
    restart = torch.rand(n, device=device) < reinit
    if restart.any():
        x[restart] = torch.rand((int(restart.sum()), *shape), device=device) * (hi - lo) + lo
    return x


@dataclass
class ChainSource:
    """Where training chains start: a replay buffer, restarts from uniform noise, an augmentation."""

    shape: tuple[int, ...]
    buffer: ReplayBuffer | None
    reinit: float
    init_range: tuple[float, float] = (0.0, 1.0)
    transition: Transition | None = None

    def draw(self, n: int, device: torch.device) -> Tensor:
        return init_chains(
            n,
            self.shape,
            buffer=self.buffer,
            reinit=self.reinit,
            init_range=self.init_range,
            transition=self.transition,
            device=device,
        )

    def noise(self, n: int, device: torch.device) -> Tensor:
        lo, hi = self.init_range
        return torch.rand((n, *self.shape), device=device) * (hi - lo) + lo

    def draw_slots(self, n: int, device: torch.device) -> tuple[Tensor, Tensor]:
        """``n`` chains from distinct slots of a :class:`SlotBuffer` (each restarted from noise with probability
        ``reinit``, then augmented); returns the slot indices to write the advanced chains back to."""
        buffer = self.buffer
        if not isinstance(buffer, SlotBuffer):
            raise ValueError("this method keeps its chains in a slots buffer (buffer.policy = 'slots')")
        idx, x = buffer.draw(n, self.shape)
        x = x.to(device)
        restart = torch.rand(n, device=device) < self.reinit
        if restart.any():
            x[restart] = self.noise(int(restart.sum()), device)
        if self.transition is not None:
            x = self.transition(x)
        return idx, x


def buffer_share(buffer: ReplayBuffer, replicas: Replicas) -> ReplayBuffer:
    """An empty buffer like ``buffer`` holding this process's share of its slots: with several processes
    each keeps its own chains, and together they hold the configured size."""
    if len(buffer):
        raise ValueError("a buffer is shared out before training starts")
    return type(buffer)(replicas.share(buffer.capacity), quantize=buffer.quantize, value_range=buffer.value_range,
                        device=buffer.device)
