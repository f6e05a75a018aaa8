"""The registry of methods: one row per recipe. A method's name is spelled here and in its own modules only."""

from __future__ import annotations

from typing import Any

import torch

from ebmctl.data import DataInfo
from ebmctl.errors import SpecError
from ebmctl.recipes import ae, cebm, clel, ebclr, hat, icd, igebm, simclr, sngan
from ebmctl.recipes.base import Recipe
from ebmctl.specs import GeneratorSpec, did_you_mean

RECIPES: dict[str, Recipe] = {recipe.name: recipe for recipe in (
    igebm.RECIPE,
    icd.RECIPE,
    clel.RECIPE,
    cebm.RECIPE,
    ebclr.RECIPE,
    sngan.RECIPE,
    hat.RECIPE,
    ae.RECIPE,
    simclr.RECIPE,
)}
DEFAULT_RECIPE = icd.RECIPE  # the method of a spec that names none


def register(recipe: Recipe) -> None:
    """Add the row of a method defined outside this package; run specs accept it from then on."""
    if RECIPES.get(recipe.name, recipe) is not recipe:
        raise ValueError(f"a method named {recipe.name!r} is registered already")
    RECIPES[recipe.name] = recipe


def unregister(name: str) -> None:
    """Remove a row added by :func:`register`."""
    RECIPES.pop(name, None)


def method_names() -> list[str]:
    return list(RECIPES)


def recipe_named(name: Any) -> Recipe:
    """The recipe of method ``name``; an unknown name is a one-line SpecError with the closest choice."""
    if not isinstance(name, str) or name not in RECIPES:
        raise SpecError(f"unknown method {name!r}", did_you_mean(str(name), method_names()))
    return RECIPES[name]


def recipe_of(spec: Any) -> Recipe:
    """The recipe of a run spec's method."""
    return RECIPES[spec.method.name]


def condition_of(spec: Any) -> str | None:
    """The label a conditional run is trained on: 'class', an attribute name, or None."""
    return recipe_of(spec).condition(spec)


def generator_arch(spec: Any) -> GeneratorSpec | None:
    """The generator a run trains (SN-GAN's G, the autoencoder's decoder, ...), or None."""
    return recipe_of(spec).generator_arch(spec)


def build_method(spec: Any, info: DataInfo, device: torch.device) -> Any:
    """The method of ``spec`` for data shaped like ``info``, on ``device``."""
    recipe = recipe_of(spec)
    recipe.check(spec)
    _check_foreign_sections(spec, recipe)
    return recipe.build(spec, info, device)


def _check_foreign_sections(spec: Any, recipe: Recipe) -> None:
    """A section another method owns stays at its defaults in this method's runs."""
    for owner in RECIPES.values():
        for key, (model, _) in owner.sections.items():
            if owner is recipe:
                continue
            section, default = getattr(spec, key), model()
            changed = next((f for f in model.model_fields if getattr(section, f) != getattr(default, f)), None)
            if changed is not None:
                raise SpecError(f"{key}.{changed} is for {owner.name} runs",
                                f"drop --set {key}.{changed} for a {recipe.name} run")
