"""Conditions for sampling: an instance (``--like``), a class (``--class``), attribute latents (compose).

A condition turns into a sampler energy built on a run's own nets: CLEL's E(x|z) with latents from its
encoder, or E(x|y) of a net trained conditionally on labels.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ebmctl.data import EbmDataset, to_float
from ebmctl.data.classes import class_indices, class_name
from ebmctl.errors import CapabilityError, DataError, UsageError
from ebmctl.methods.capabilities import HasLatents
from ebmctl.recipes import condition_of
from ebmctl.services.runtime.datasets import data_root, dataset_from, every_class
from ebmctl.services.runtime.loading import LoadedRun
from ebmctl.specs import DataSpec

Energy = Callable[[Tensor], Tensor]
EnergyFor = Callable[[int, int], Energy]  # (first chain, number of chains) -> energy of those chains


@dataclass
class Condition:
    """How chains are conditioned: an energy per chunk of chains, what it means, and what a judge should see."""

    energy_for: EnergyFor
    description: str
    target_class: int | None = None
    reference: Tensor | None = None


def run_dataset(run: LoadedRun, split: str, cli_data_root: str | None, *, all_classes: bool = False) -> EbmDataset:
    """The run's dataset at the run's image size and channels: the classes it was trained on (``data.classes``),
    or with ``all_classes`` every class (what the cached judges of the dataset see)."""
    shape = run.info.shape
    root = data_root(run.spec.data.root, cli_data_root)
    data = every_class(run.spec.data) if all_classes else run.spec.data
    return dataset_from(data, split=split, root=root, image_size=shape[-1], channels=shape[0])


def seeded_subset(indices: Tensor, k: int, seed: int = 0) -> Tensor:
    """At most ``k`` of ``indices``, drawn reproducibly."""
    order = torch.randperm(len(indices), generator=torch.Generator().manual_seed(seed))
    return indices[order[:k]]


def examples_latent(method: Any, ds: EbmDataset, members: Tensor, *, seed: int = 0, ema: bool = True) -> tuple[Tensor, int]:
    """CLEL's latent of a set of labelled examples: up to ``method.latent_examples`` of ``members`` (indices of
    ``ds``), drawn reproducibly, through :meth:`pooled_latent`. Returns the latent and how many were used."""
    chosen = seeded_subset(members, method.latent_examples, seed=seed)
    x = to_float(ds.get_batch(chosen)[0], dequantize=False)
    return method.pooled_latent(x, ema=ema), len(chosen)


# ------------------------------------------------------------------------------------------------ --class


def class_index(info_names: tuple[str, ...], num_classes: int, label: str) -> int:
    """A class given by name (case-insensitive) or index."""
    names = [n.lower() for n in info_names]
    if label.lower() in names:
        return names.index(label.lower())
    if label.isdigit() and int(label) < num_classes:
        return int(label)
    shown = ", ".join(info_names) if info_names else f"0..{num_classes - 1}"
    raise UsageError(f"unknown class {label!r}", f"choose one of: {shown}")


def trained_classes(run: LoadedRun) -> tuple[int, ...] | None:
    """The indices of the classes the run was trained on (``data.classes``); None: all of them."""
    return None if run.spec.data.classes is None else class_indices(run.info, run.spec.data.classes)


def trained_class(run: LoadedRun, label: str) -> int:
    """A class given by name or index that the run was trained on."""
    info = run.info
    k = class_index(info.class_names, info.num_classes, label)
    kept = trained_classes(run)
    if kept is not None and k not in kept:
        names = ", ".join(class_name(info, c) for c in kept)
        raise UsageError(f"run {run.ref.run_dir.name} was trained without class {class_name(info, k)!r} "
                         f"(data.classes: {names})", f"choose one of: {names}")
    return k


def class_condition(run: LoadedRun, label: str, cli_data_root: str | None, ema: bool = True,
                    beta: float | None = None) -> Condition:
    """Sample class ``label``: CLEL's class latent (the normalised sum of the encoder's latents of that class's
    training examples, section 4.3), or the label of a class-conditional net."""
    info = run.info
    if info.num_classes < 2:
        raise UsageError(f"{info.name} has no class labels", "use --like IMAGE, or `ebmctl compose --attrs`")
    k = trained_class(run, label)
    name = class_name(info, k)
    method = run.method
    if isinstance(method, HasLatents):
        ds = run_dataset(run, run.spec.data.split, cli_data_root)
        members = torch.nonzero(ds.labels() == k).flatten()
        if len(members) == 0:
            raise DataError(f"no training example of class {name!r} in {info.name}", "pick another class")
        z, used = examples_latent(method, ds, members, ema=ema)
        energy = method.conditional_energy(z[None], beta=beta, ema=ema)
        return Condition(lambda start, count: energy, f"class {name} (latent of {used} examples)", k)
    if condition_of(run.spec) == "class":
        energy = method.label_energy(torch.tensor(k), ema=ema)
        return Condition(lambda start, count: energy, f"class {name} (conditional net)", k)
    raise CapabilityError(
        f"run {run.ref.run_dir.name} ({run.spec.method.name}) cannot sample a class",
        "use a clel run, or train with --set method.condition=class",
    )


# ------------------------------------------------------------------------------------------------- --like

_DATASET_ITEM = re.compile(r"^(?P<name>[A-Za-z0-9_-]+):(?:(?P<split>[A-Za-z]+):)?(?P<index>\d+)$")


def load_like(run: LoadedRun, like: str, cli_data_root: str | None) -> Tensor:
    """The reference image of ``--like``: an image file, or ``DATASET:INDEX`` / ``DATASET:SPLIT:INDEX`` (test
    split by default), as a float (1, C, H, W) at the run's shape."""
    shape = run.info.shape
    path = Path(like).expanduser()
    if path.is_file():
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as img:
                img = img.convert("L" if shape[0] == 1 else "RGB").resize((shape[2], shape[1]), Image.BICUBIC)
                data = torch.tensor(bytearray(img.tobytes()), dtype=torch.uint8)
        except (UnidentifiedImageError, OSError) as exc:
            raise UsageError(f"cannot read {path} as an image ({exc})", "give a PNG or JPEG file") from None
        x = data.view(shape[1], shape[2], shape[0]).permute(2, 0, 1)
        return to_float(x[None], dequantize=False)
    match = _DATASET_ITEM.match(like)
    if match is None:
        raise UsageError(f"--like {like!r} is neither an image file nor DATASET:INDEX",
                         "e.g. --like photo.png or --like shapes32:12 (test split) or --like cifar10:train:5")
    root = data_root(run.spec.data.root, cli_data_root)
    data = DataSpec(name=match["name"], verify_checksums=run.spec.data.verify_checksums)
    ds = dataset_from(data, split=match["split"] or "test", root=root, image_size=shape[-1], channels=shape[0])
    index = int(match["index"])
    if index >= len(ds):
        raise UsageError(f"{match['name']} has {len(ds)} images in that split; index {index} is out of range",
                         f"use an index below {len(ds)}")
    return to_float(ds.get_batch(torch.tensor([index]))[0], dequantize=False)


def instance_condition(run: LoadedRun, like: str, n: int, cli_data_root: str | None, ema: bool = True,
                       beta: float | None = None) -> Condition:
    """Sample like one image: each chain gets its own draw z ~ p_data(z|x) = h(t(x))/|h(t(x))| (section 4.3)."""
    method = run.method
    if not isinstance(method, HasLatents):
        raise CapabilityError(f"run {run.ref.run_dir.name} ({run.spec.method.name}) has no latent variables",
                              "instance-conditional sampling needs a clel run")
    x = load_like(run, like, cli_data_root)
    z = method.encode(x.expand(n, -1, -1, -1), ema=ema)  # one augmentation draw per chain

    def energy_for(start: int, count: int) -> Energy:
        return method.conditional_energy(z[start : start + count, None, :], beta=beta, ema=ema)

    return Condition(energy_for, f"like {like}", reference=x)
