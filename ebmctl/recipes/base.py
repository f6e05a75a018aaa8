"""What a recipe is: everything about one method that the commands need, in one place.

A recipe names its method, holds its ``[method]`` spec section and its released code's settings (the layer between
field defaults and presets), says which net it needs, and builds the method from a run spec. Commands never ask
for a method by name: they ask its recipe, or the built method for a capability (:mod:`ebmctl.methods.capabilities`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar, Literal

import torch

from ebmctl.data import DataInfo
from ebmctl.errors import SpecError
from ebmctl.released.base import Imported
from ebmctl.specs import GeneratorSpec, NetSection, Section


class Recipe(ABC):
    """How one method is assembled from a run spec. Subclasses set the class variables and :meth:`build`."""

    name: ClassVar[str]
    spec: ClassVar[type[Section]]  # the [method] section; its ``name`` field is a Literal of ``name``
    method: ClassVar[type[Any]]  # the class it builds
    defaults: ClassVar[dict[str, Any]] = {}  # the released code's settings, section by section
    net: ClassVar[type[NetSection] | None] = None  # the net it needs (None: any plain energy net)
    nets: ClassVar[tuple[type[NetSection], ...]] = ()  # nets it adds to the choices of ``net.name``
    sections: ClassVar[dict[str, tuple[type[Section], str]]] = {}  # top-level sections it owns: (model, description)
    slots: ClassVar[bool] = False  # keeps its chains in fixed slots of the buffer
    probe_protocol: ClassVar[str] = "standard"  # the protocol `probe --protocol paper` means for it
    langevin: ClassVar[bool] = True  # trains with Langevin chains (its sampler.steps matter)
    local_state: ClassVar[tuple[str, ...]] = ("buffer.",)  # state keys each of several processes keeps for itself
    # Reads a checkpoint the authors' released code wrote (ebmctl.released.<name>.convert), or None; with the
    # globals besides tensors and plain values its format needs rebuilt (say an options object).
    release: ClassVar[Callable[..., Imported] | None] = None  # (doc, path, preset, **companion paths)
    release_globals: ClassVar[tuple[Any, ...]] = ()
    # "torch": a torch.save pickle, read weights-only; "tensorflow": a tensor bundle, handed over as a Bundle.
    release_format: ClassVar[Literal["torch", "tensorflow"]] = "torch"
    # Files its release keeps apart from the checkpoint, each given as --<name> (hat: generator; cebm: buffer).
    release_companions: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def build(self, spec: Any, info: DataInfo, device: torch.device) -> Any:
        """The method of ``spec`` for data shaped like ``info``, on ``device`` (checks come first)."""

    def check(self, spec: Any) -> None:
        """Refuse, in one line, settings this method cannot run with (before anything is built)."""
        check_net(self, spec)
        if self.slots:
            check_slots(spec)

    def condition(self, spec: Any) -> str | None:
        """The label a conditional run is trained on: 'class', an attribute name, or None."""
        return None

    def generator_arch(self, spec: Any) -> GeneratorSpec | None:
        """The generator a run of this method trains (written as its generator file), or None."""
        return None

    def generator_to_build_on(self, spec: Any) -> str | None:
        """Where the generator a run builds on comes from (a run, latest:PRESET or a file), or None."""
        return None

    def with_generator(self, spec: Any, arch: GeneratorSpec) -> Any:
        """``spec`` recording the architecture of the generator it builds on."""
        return spec

    def sample_settings(self, spec: Any) -> dict[str, Any]:
        """Sampler settings `ebmctl sample` records in place of the SGLD step size and noise ({}: those)."""
        return {}

    def global_batches(self, spec: Any) -> dict[str, int]:
        """The global batch sizes a data-parallel run splits over its processes, by spec key."""
        return {"train.batch_size": spec.train.batch_size}


def check_net(recipe: Recipe, spec: Any) -> None:
    """A method gets a net it can use; a net with a ``role`` serves the method that asks for it only."""
    net = spec.net
    if recipe.net is not None and not isinstance(net, recipe.net):
        wanted = recipe.net.model_fields["name"].default
        raise SpecError(f"{recipe.name} needs the {wanted} net, not {net.name!r}", f"set net.name={wanted}")
    if recipe.net is None and net.role is not None:
        raise SpecError(f"the {net.name} net {net.role}; {recipe.name} needs an energy net",
                        "pick an energy net, e.g. small_conv")


def check_slots(spec: Any) -> None:
    """Methods that draw chains from fixed slots need that policy and at least a batch of slots."""
    if spec.buffer.policy != "slots":
        raise SpecError(f"{spec.method.name} keeps its chains in fixed slots", "set buffer.policy=slots")
    if spec.buffer.size < spec.train.batch_size:
        raise SpecError(f"buffer.size {spec.buffer.size} is smaller than the batch {spec.train.batch_size}",
                        "raise buffer.size or lower train.batch_size")

