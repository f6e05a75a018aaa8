"""Resumable batch streams, and the uint8 -> float conversion the trainers use.

A stream is a pure function of (seed, step): epoch ``e`` visits the data in the order
``torch.randperm(N, generator=Generator().manual_seed(epoch_seed(seed, e)))``, cut into consecutive
batches with the remainder dropped. Resuming at step ``t`` therefore gives exactly the batches ``t, t+1, ...``
an uninterrupted stream would have given, with or without worker processes. With several data-parallel
processes, process ``r`` of ``n`` reads the ``r``-th of ``n`` equal slices of each of those batches, so together
they read exactly the batches of one process.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, get_worker_info

from ebmctl.data.base import EbmDataset
from ebmctl.errors import EbmctlError, SpecError

Batch = tuple[torch.Tensor, torch.Tensor]


def epoch_seed(seed: int, epoch: int) -> int:
    """A 63-bit seed mixing (seed, epoch), so that nearby pairs never share a permutation."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


class IndexPlan:
    """Which dataset indices make up batch ``step``; the permutation of the current epoch is kept.

    ``part = (r, n)`` keeps the ``r``-th of ``n`` equal slices of each batch (``batch_size`` is the whole batch)."""

    def __init__(self, n: int, batch_size: int, seed: int, part: tuple[int, int] = (0, 1)) -> None:
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.batches_per_epoch = n // batch_size
        self._epoch, self._perm = -1, torch.empty(0, dtype=torch.long)
        rank, parts = part
        share = batch_size // parts
        self._slice = slice(rank * share, (rank + 1) * share)

    def indices(self, step: int) -> torch.Tensor:
        epoch, position = divmod(step, self.batches_per_epoch)
        if epoch != self._epoch:
            generator = torch.Generator().manual_seed(epoch_seed(self.seed, epoch))
            self._epoch, self._perm = epoch, torch.randperm(self.n, generator=generator)
        return self._perm[position * self.batch_size : (position + 1) * self.batch_size][self._slice]


class _PlanBatchSampler(Sampler[torch.Tensor]):
    """Yields the index batches of steps ``start, start+1, ...`` forever."""

    def __init__(self, plan: IndexPlan, start: int) -> None:
        self.plan, self.start = plan, start

    def __iter__(self) -> Iterator[torch.Tensor]:
        step = self.start
        while True:
            yield self.plan.indices(step)
            step += 1


class _BatchView(Dataset):
    """The dataset seen by worker processes: a whole batch of indices is fetched with one ``get_batch``.

    DataLoader hands a batch sampler's indices to ``__getitems__`` when a dataset defines it.
    """

    def __init__(self, dataset: EbmDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.dataset[index]

    def __getitems__(self, indices: torch.Tensor | list[int]) -> Batch | _Failure:
        try:
            return self.dataset.get_batch(torch.as_tensor(indices, dtype=torch.long))
        except EbmctlError as exc:
            if get_worker_info() is None:
                raise
            return _Failure(type(exc), exc.message, exc.hint)


@dataclass(frozen=True)
class _Failure:
    """An EbmctlError raised in a worker process, sent back as a value: DataLoader would raise it again with the
    worker's traceback as its message and without its hint."""

    error: type[EbmctlError]
    message: str
    hint: str | None


def _identity(batch: Batch) -> Batch:
    return batch


class BatchStream:
    """An infinite iterator of ``(x, y)`` batches: x as stored (uint8 images or float points), y int64.

    ``step`` is the index of the next batch. ``workers > 0`` builds batches in a DataLoader's worker processes
    from the same index plan, so the batches are identical to those of ``workers=0``. ``part = (r, n)`` yields
    process ``r``'s slice of each batch of ``batch_size`` (which ``n`` must divide).
    """

    def __init__(
        self, dataset: EbmDataset, batch_size: int, seed: int, start_step: int = 0, workers: int = 0,
        part: tuple[int, int] = (0, 1),
    ) -> None:
        n = len(dataset)
        if batch_size < 1:
            raise SpecError(
                f"batch size must be >= 1, got {batch_size}", hint="set train.batch_size to e.g. 64"
            )
        if n < batch_size:
            raise SpecError(
                f"batch size {batch_size} is larger than the dataset ({n} items)",
                hint=f"lower train.batch_size to at most {n}",
            )
        if start_step < 0 or workers < 0:
            raise SpecError("start_step and workers must be >= 0", hint="use 0 to start from the beginning")
        rank, parts = part
        if parts < 1 or not 0 <= rank < parts or batch_size % parts:
            raise SpecError(f"a batch of {batch_size} does not split into {parts} equal parts",
                            hint=f"use a batch size that is a multiple of {parts}")
        self.dataset = dataset
        self.batch_size = batch_size
        self.step = start_step
        self.plan = IndexPlan(n, batch_size, seed, part)
        self._loader: Iterator[Batch] | None = None
        if workers > 0:
            loader = DataLoader(
                _BatchView(dataset),
                batch_sampler=_PlanBatchSampler(IndexPlan(n, batch_size, seed, part), start_step),
                num_workers=workers,
                collate_fn=_identity,
                generator=torch.Generator().manual_seed(seed),  # leaves the global RNG untouched
            )
            self._loader = iter(loader)

    @property
    def batches_per_epoch(self) -> int:
        return self.plan.batches_per_epoch

    def __iter__(self) -> BatchStream:
        return self

    def __next__(self) -> Batch:
        if self._loader is not None:
            batch = next(self._loader)
            if isinstance(batch, _Failure):
                raise batch.error(batch.message, batch.hint)
            x, y = batch
        else:
            x, y = self.dataset.get_batch(self.plan.indices(self.step))
        self.step += 1
        return x, y.long()

    def close(self) -> None:
        """Stop the worker processes, if any."""
        self._loader = None


def to_float(x: torch.Tensor, dequantize: bool, generator: torch.Generator | None = None) -> torch.Tensor:
    """uint8 images to float32 in [0, 1]: ``(x + U[0, 1)) / 256`` when dequantizing, else ``x / 255``.

    The dequantized form is the released IGEBM/ICD codes' ``x * 255/256 + U(0, 1/256)``. Float tensors (2D
    points) are returned unchanged.
    """
    if x.is_floating_point():
        return x
    if x.dtype != torch.uint8:
        raise TypeError(f"to_float expects uint8 images or float points, got {x.dtype}")
    xf = x.to(torch.float32)
    if not dequantize:
        return xf / 255.0
    device = generator.device if generator is not None else x.device
    noise = torch.rand(x.shape, generator=generator, device=device).to(x.device)
    return (xf + noise) / 256.0
