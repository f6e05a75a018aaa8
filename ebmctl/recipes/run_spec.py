"""The whole run spec, assembled from the registry: the shared sections, the union of the recipes' method
sections and nets, and the sections recipes own. Resolving one follows the precedence of
:mod:`ebmctl.specs.overrides`, with the method's released-code defaults between field defaults and presets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Union

from pydantic import Field, create_model, model_validator

from ebmctl.errors import SpecError
from ebmctl.recipes.base import Recipe
from ebmctl.recipes.registry import DEFAULT_RECIPE, RECIPES, method_names, recipe_named
from ebmctl.specs import SHARED_NETS, Section, deep_merge, layered, read_preset, sections, validated
from ebmctl.specs.nets import IcdResNetSpec
from ebmctl.specs.overrides import expand_names


class _RunSpecBase(Section):
    @model_validator(mode="before")
    @classmethod
    def _shorthands(cls, data: Any) -> Any:
        return expand_names(data) if isinstance(data, dict) else data


def _union(members: tuple[type[Section], ...]) -> Any:
    return Annotated[Union[members], Field(discriminator="name")]  # noqa: UP007 (a union built from a tuple)


def _assemble(recipes: tuple[Recipe, ...]) -> type[Section]:
    """The RunSpec model of ``recipes``: their method sections, their nets beside the shared ones, their sections."""
    owned = {key: (model, Field(default_factory=model, description=text))
             for recipe in recipes for key, (model, text) in recipe.sections.items()}
    return create_model(
        "RunSpec",
        __base__=_RunSpecBase,
        __doc__="Everything a training run needs; saved as spec.json and inside every checkpoint.",
        preset=(str | None, Field(None, description="Name of the preset this spec came from.")),
        seed=(int, Field(0, ge=0, le=2**31 - 1, description="Seed of every random draw of the run.")),
        method=(_union(tuple(recipe.spec for recipe in recipes)),
                Field(default_factory=DEFAULT_RECIPE.spec, description="Training method and its loss terms.")),
        data=(sections.DataSpec, Field(default_factory=sections.DataSpec)),
        net=(_union((*SHARED_NETS, *(net for recipe in recipes for net in recipe.nets))),
             Field(default_factory=IcdResNetSpec, description="Energy network.")),
        sampler=(sections.SamplerSpec, Field(default_factory=sections.SamplerSpec)),
        buffer=(sections.BufferSpec, Field(default_factory=sections.BufferSpec)),
        augment=(sections.AugmentSpec, Field(default_factory=sections.AugmentSpec)),
        train=(sections.TrainSpec, Field(default_factory=sections.TrainSpec)),
        sample=(sections.SampleSpec, Field(default_factory=sections.SampleSpec)),
        eval=(sections.EvalSpec, Field(default_factory=sections.EvalSpec)),
        **owned,
        guard=(sections.GuardSpec, Field(default_factory=sections.GuardSpec, description="Divergence guard of training.")),
    )


_MODELS: dict[tuple[Recipe, ...], type[Section]] = {}


def run_spec_model() -> type[Section]:
    """The RunSpec model of the methods registered now (rebuilt only when the registry changed)."""
    recipes = tuple(RECIPES.values())
    if recipes not in _MODELS:
        _MODELS[recipes] = _assemble(recipes)
    return _MODELS[recipes]


RunSpec = run_spec_model()  # the model of the methods this package ships
MethodSpec = RunSpec.model_fields["method"].annotation
NetSpec = RunSpec.model_fields["net"].annotation


def resolve_spec(
    preset: str | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    extra: dict[str, Any] | None = None,
) -> Any:
    """Build a RunSpec from a preset, ``--set`` strings and dedicated options (highest precedence), on top of the
    method's released-code defaults."""
    tree: dict[str, Any] = read_preset(preset) if preset else {}
    if preset:
        tree.setdefault("preset", Path(preset).stem if preset.endswith(".toml") else preset)
    tree = layered(tree, overrides, extra)
    method = tree.setdefault("method", {})
    if not isinstance(method, dict):
        raise SpecError(f"method must be a method name or a [method] table, not {json.dumps(method, default=str)}",
                        f"choices: {', '.join(method_names())}")
    method.setdefault("name", DEFAULT_RECIPE.name)
    return validate_spec(deep_merge(recipe_named(method["name"]).defaults, tree))


def validate_spec(tree: dict[str, Any]) -> Any:
    """Validate a merged dict into a RunSpec, turning pydantic's report into one line."""
    return validated(run_spec_model(), tree)


def spec_from_json(doc: dict[str, Any]) -> Any:
    """Rebuild a spec saved in spec.json or a checkpoint's metadata."""
    return validate_spec(doc)


def spec_to_json(spec: Any) -> dict[str, Any]:
    return spec.model_dump(mode="json")


__all__ = ["MethodSpec", "NetSpec", "RunSpec", "resolve_spec", "spec_from_json", "spec_to_json",
           "validate_spec"]
