"""What a command may ask of a method, as types. A command checks ``isinstance(method, Samples)`` (and so on)
before it asks; a method has a capability by having its members, and a method without it gets the command's
one-line error. Nothing outside a method reads its attributes by name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from torch import Tensor

from ebmctl.methods.chains import ChainSource
from ebmctl.samplers.buffers import ReplayBuffer
from ebmctl.samplers.hat import HatLangevinParams
from ebmctl.samplers.langevin import LangevinParams


@runtime_checkable
class Samples(Protocol):
    """Draws images: ``ebmctl sample``."""

    def sample(self, n: int, *args: Any, **kwargs: Any) -> Tensor: ...


@runtime_checkable
class HasEnergy(Protocol):
    """A per-sample energy of images: conditional sampling and composition run chains on it."""

    def energy(self, x: Tensor, y: Tensor | None = None, ema: bool = True) -> Tensor: ...


@runtime_checkable
class SamplesPool(Protocol):
    """Samples with ICD's pool schedule."""

    def sample_pool(self, *args: Any, **kwargs: Any) -> Any: ...


@runtime_checkable
class ScoresOod(Protocol):
    """Scores images for out-of-distribution detection from its energy: ``ebmctl ood``."""

    def ood_scores(self, x: Tensor, names: list[str], ema: bool = True) -> dict[str, Tensor]: ...


@runtime_checkable
class Represents(Protocol):
    """Maps images to features: ``ebmctl probe`` and ``ood --scores latent_nn``."""

    def representation(self, x: Tensor, ema: bool = True) -> Tensor: ...


@runtime_checkable
class HasLatents(Protocol):
    """An encoder's latents that steer its energy: class and attribute latents, ``compose``, the joint OOD score."""

    def pooled_latent(self, x: Tensor, ema: bool = True) -> Tensor: ...

    def conditional_energy(self, *args: Any, **kwargs: Any) -> Callable[[Tensor], Tensor]: ...


@runtime_checkable
class Refines(Protocol):
    """Refines a generator's samples by joint Langevin chains: ``ebmctl refine``."""

    def latents(self, n: int) -> Tensor: ...

    def run_chains(self, z: Tensor, *args: Any, **kwargs: Any) -> Any: ...

    def decode(self, z: Tensor) -> Tensor: ...


@runtime_checkable
class BuildsOnGenerator(Protocol):
    """Stands on a generator another run trained."""

    def load_generator(self, tensors: dict[str, Tensor]) -> None: ...


@runtime_checkable
class HasChains(Protocol):
    """Starts training chains from a :class:`ChainSource` (None: keeps no chains)."""

    chains: ChainSource | None


@runtime_checkable
class LangevinTrained(Protocol):
    """Trains with Langevin chains whose step size the divergence guard may shrink."""

    sampler: LangevinParams | HatLangevinParams


@runtime_checkable
class KeepsNegatives(Protocol):
    """Keeps the negatives of its last training step (the guard measures their diversity)."""

    last_negatives: Tensor | None


@runtime_checkable
class WideBatches(Protocol):
    """Reads more images per step than ``train.batch_size`` (CLEL's encoder batch)."""

    data_batch_size: int


@runtime_checkable
class PerturbsOodInputs(Protocol):
    """Scores inputs perturbed by Gaussian noise of this std (0: none), seeded per scored set."""

    ood_noise: float


@runtime_checkable
class KeepsReplayBuffers(Protocol):
    """Keeps replay buffers (a rollback of the divergence guard may empty them)."""

    def replay_buffers(self) -> list[ReplayBuffer]: ...


def chain_buffer(method: object) -> ReplayBuffer | None:
    """The replay buffer a method's training chains start from (None: it keeps none)."""
    chains = method.chains if isinstance(method, HasChains) else None
    return chains.buffer if chains is not None else None
