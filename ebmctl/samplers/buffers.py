"""Replay buffers of chain states, one policy a class, so each paper's behaviour can be reproduced.

Images are stored as uint8 when ``quantize`` is on: ``q = floor(256 * x)`` (clipped to 0..255) and drawn back
as ``(q + U[0,1)) / 256``, the exact inverse of the data dequantisation, so a stored sample does not drift.
Draws are uniform with replacement, as in the released code.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import Tensor


class ReplayBuffer(ABC):
    """Fixed-capacity storage; subclasses decide where new samples go."""

    policy = "base"

    def __init__(
        self,
        capacity: int,
        *,
        quantize: bool = True,
        value_range: tuple[float, float] = (0.0, 1.0),
        device: torch.device | str = "cpu",
    ) -> None:
        if capacity < 1:
            raise ValueError("buffer capacity must be >= 1")
        self.capacity = capacity
        self.quantize = quantize
        self.value_range = value_range
        self.device = torch.device(device)
        self.storage: Tensor | None = None
        self.size = 0  # filled slots
        self.seen = 0  # samples ever offered

    def __len__(self) -> int:
        return self.size

    # ------------------------------------------------------------------ encoding

    def _encode(self, x: Tensor) -> Tensor:
        if not self.quantize:
            return x.detach().to(self.device, torch.float32)
        lo, hi = self.value_range
        unit = (x.detach() - lo) / (hi - lo)
        return (unit * 256).floor_().clamp_(0, 255).to(self.device, torch.uint8)

    def _decode(self, q: Tensor, generator: torch.Generator | None) -> Tensor:
        if not self.quantize:
            return q.clone()
        lo, hi = self.value_range
        u = torch.rand(q.shape, generator=generator, device=q.device)
        return (q.float() + u) / 256 * (hi - lo) + lo

    def _ensure_storage(self, x: Tensor) -> Tensor:
        if self.storage is None:
            dtype = torch.uint8 if self.quantize else torch.float32
            self.storage = torch.zeros((self.capacity, *x.shape[1:]), dtype=dtype, device=self.device)
        elif self.storage.shape[1:] != x.shape[1:]:
            raise ValueError(f"buffer holds {tuple(self.storage.shape[1:])}, got {tuple(x.shape[1:])}")
        return self.storage

    # ------------------------------------------------------------------ policy

    def add(self, x: Tensor, generator: torch.Generator | None = None) -> None:
        """Offer a batch of samples to the buffer."""
        storage = self._ensure_storage(x)
        slots = self._slots(len(x), generator)
        keep = slots >= 0
        if keep.any():
            storage[slots[keep].to(self.device)] = self._encode(x[keep.to(x.device)])
        self.seen += len(x)
        self.size = min(self.capacity, self.seen)

    @abstractmethod
    def _slots(self, n: int, generator: torch.Generator | None) -> Tensor:
        """Slot for each of ``n`` new samples (-1: dropped). Later samples win ties, as if added one by one."""

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Draw ``n`` stored samples uniformly with replacement, as floats."""
        if self.size == 0 or self.storage is None:
            raise ValueError("cannot sample from an empty buffer")
        idx = torch.randint(0, self.size, (n,), generator=generator)
        return self._decode(self.storage[idx.to(self.device)], generator)

    def reset(self) -> None:
        """Forget every stored chain (the buffer fills again from fresh chains)."""
        self.storage = None
        self.size = self.seen = 0

    def fill_with(self, chains: Tensor) -> None:
        """Hold exactly ``chains`` (one per slot, floats in the value range), stored as the buffer stores."""
        if len(chains) != self.capacity:
            raise ValueError(f"{len(chains)} chains for a buffer of {self.capacity}")
        self.storage = self._encode(chains)
        self.size = self.seen = self.capacity

    # ------------------------------------------------------------------ state

    def state_tensors(self, prefix: str = "buffer.") -> dict[str, Tensor]:
        if self.storage is None or self.size == 0:
            return {}
        return {f"{prefix}storage": self.storage[: self.size]}

    def state_meta(self) -> dict[str, Any]:
        return {"policy": self.policy, "capacity": self.capacity, "size": self.size, "seen": self.seen}

    def load_state(self, tensors: dict[str, Tensor], meta: dict[str, Any], prefix: str = "buffer.") -> None:
        if meta.get("policy") != self.policy or meta.get("capacity") != self.capacity:
            raise ValueError(
                f"saved buffer is {meta.get('policy')}/{meta.get('capacity')}, expected {self.policy}/{self.capacity}"
            )
        self.size, self.seen = int(meta["size"]), int(meta["seen"])
        stored = tensors.get(f"{prefix}storage")
        if stored is None:
            self.storage = None
            return
        self.storage = None
        storage = self._ensure_storage(stored)
        storage[: self.size] = stored.to(storage.device, storage.dtype)


class FifoBuffer(ReplayBuffer):
    """A ring: the newest samples replace the oldest (IGEBM)."""

    policy = "fifo"

    def _slots(self, n: int, generator: torch.Generator | None) -> Tensor:
        slots = (torch.arange(n) + self.seen) % self.capacity
        if n > self.capacity:  # only the last `capacity` samples survive
            slots[: n - self.capacity] = -1
        return slots


class ReservoirBuffer(ReplayBuffer):
    """Reservoir sampling: a uniform sample of every negative ever offered (ICD).

    The t-th sample (0-based) fills slot t while the buffer has room; afterwards it replaces a uniformly
    chosen slot with probability capacity / (t + 1).
    """

    policy = "reservoir"

    def _slots(self, n: int, generator: torch.Generator | None) -> Tensor:
        t = torch.arange(n, dtype=torch.float64) + self.seen
        draw = (torch.rand(n, generator=generator, dtype=torch.float64) * (t + 1)).floor().long()
        slots = torch.where(t < self.capacity, t.long(), torch.where(draw < self.capacity, draw, -1))
        # Two new samples aimed at the same slot: the later one wins.
        seen: set[int] = set()
        for i in range(n - 1, -1, -1):
            s = int(slots[i])
            if s >= 0:
                if s in seen:
                    slots[i] = -1
                seen.add(s)
        return slots


class SlotBuffer(ReplayBuffer):
    """Fixed slots that chains are drawn from and written back to (CLEL; EBCLR adds visit counts).

    The buffer starts full of uniform noise. :meth:`draw` picks distinct slots at random, :meth:`write` puts
    the advanced chains back into the same slots and counts the visit. :meth:`add` (new samples without a
    slot) overwrites uniformly chosen slots.
    """

    policy = "slots"

    def __init__(self, capacity: int, **kwargs: Any) -> None:
        super().__init__(capacity, **kwargs)
        self.visits: Tensor | None = None

    def _fill(self, shape: tuple[int, ...], generator: torch.Generator | None) -> Tensor:
        if self.storage is None:
            lo, hi = self.value_range
            noise = torch.rand((self.capacity, *shape), generator=generator) * (hi - lo) + lo
            self.storage = self._encode(noise)
            self.visits = torch.zeros(self.capacity, dtype=torch.long)
            self.size = self.seen = self.capacity
        return self.storage

    def draw(self, n: int, shape: tuple[int, ...], generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """``n`` distinct random slots and their states (as floats)."""
        storage = self._fill(shape, generator)
        if n > self.capacity:
            raise ValueError(f"cannot draw {n} chains from a buffer of {self.capacity} slots")
        idx = torch.randperm(self.capacity, generator=generator)[:n]
        return idx, self._decode(storage[idx.to(self.device)], generator)

    def write(self, idx: Tensor, x: Tensor) -> None:
        """Put the states ``x`` back into the slots ``idx`` and count the visit."""
        storage = self._fill(tuple(x.shape[1:]), None)
        storage[idx.to(self.device)] = self._encode(x)
        assert self.visits is not None
        self.visits[idx.cpu()] += 1

    def reset(self) -> None:
        """Forget every chain: the slots are refilled with uniform noise on the next draw."""
        super().reset()
        self.visits = None

    def fill_with(self, chains: Tensor) -> None:
        super().fill_with(chains)
        self.visits = torch.zeros(self.capacity, dtype=torch.long)

    def restart(self, idx: Tensor) -> None:
        """Forget the visits of the slots ``idx`` (their chains start afresh)."""
        if self.visits is not None:
            self.visits[idx.cpu()] = 0

    def counts(self, idx: Tensor) -> Tensor:
        """How often each slot of ``idx`` has been written."""
        return torch.zeros(len(idx), dtype=torch.long) if self.visits is None else self.visits[idx.cpu()]

    def _slots(self, n: int, generator: torch.Generator | None) -> Tensor:
        slots = torch.randint(0, self.capacity, (n,), generator=generator)
        for i in range(n - 1):  # a later sample aimed at the same slot wins
            if bool((slots[i + 1 :] == slots[i]).any()):
                slots[i] = -1
        return slots

    def add(self, x: Tensor, generator: torch.Generator | None = None) -> None:
        self._fill(tuple(x.shape[1:]), generator)
        super().add(x, generator)
        self.size = self.capacity

    def state_tensors(self, prefix: str = "buffer.") -> dict[str, Tensor]:
        out = super().state_tensors(prefix)
        if self.visits is not None:
            out[f"{prefix}visits"] = self.visits
        return out

    def load_state(self, tensors: dict[str, Tensor], meta: dict[str, Any], prefix: str = "buffer.") -> None:
        super().load_state(tensors, meta, prefix)
        visits = tensors.get(f"{prefix}visits")
        self.visits = None if visits is None else visits.to(torch.long).clone()


BUFFERS: dict[str, type[ReplayBuffer]] = {"fifo": FifoBuffer, "reservoir": ReservoirBuffer, "slots": SlotBuffer}


def make_buffer(policy: str, capacity: int, **kwargs: Any) -> ReplayBuffer | None:
    """Build the buffer of a policy name; ``"none"`` gives None (chains restart from noise)."""
    if policy == "none":
        return None
    return BUFFERS[policy](capacity, **kwargs)
