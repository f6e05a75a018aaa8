"""What a method needs to train as one of several data-parallel processes: its place among them and the
wrapping of every net it trains."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor, nn

from ebmctl.methods.energy_model import EnergyModel


@dataclass(frozen=True)
class Replicas:
    """One process's place in data-parallel training: process ``rank`` of ``world``, each holding a replica of
    every trained net and its share of every batch.

    ``wrap`` turns a module into its gradient-averaging wrapper (DistributedDataParallel); ``gather`` stacks a
    tensor's rows from every process in rank order, gradients flowing back to each process's own rows."""

    rank: int
    world: int
    wrap: Callable[[nn.Module], nn.Module]
    gather: Callable[[Tensor], Tensor]

    def share(self, n: int) -> int:
        """This process's part of ``n`` items that every process keeps for itself (buffer slots, bank pairs):
        ceil(n / world), so that the processes together hold at least ``n``."""
        return -(-n // self.world)

    def split(self, n: int) -> int:
        """This process's part of a global batch of ``n`` (which must split evenly)."""
        if n % self.world:
            raise ValueError(f"a batch of {n} does not split evenly over {self.world} processes")
        return n // self.world


class Replicated:
    """A method that trains as one of several data-parallel processes (see :class:`Replicas`).

    :meth:`replicate` wraps every trained model; subclasses also take their process's share of what each
    process keeps for itself (replay buffers, banks) and of batch sizes they hold."""

    replicas: Replicas | None = None

    def trained_models(self) -> list[EnergyModel]:
        """The models this method's training step updates: every :class:`EnergyModel` it holds."""
        return [v for v in vars(self).values() if isinstance(v, EnergyModel)]

    def replicate(self, replicas: Replicas) -> None:
        self.replicas = replicas
        for model in self.trained_models():
            model.replicate(replicas.wrap)

    def gather(self, x: Tensor) -> Tensor:
        """``x`` stacked over every process (a loss over the global batch); ``x`` itself on one process."""
        return x if self.replicas is None else self.replicas.gather(x)
