"""Recipes: how each method is assembled from a run spec (:mod:`ebmctl.recipes.base`), one module per method, one
registry row each (:mod:`ebmctl.recipes.registry`), and the run spec they make up (:mod:`ebmctl.recipes.run_spec`)."""

from ebmctl.recipes.base import Recipe
from ebmctl.recipes.registry import (
    RECIPES,
    build_method,
    condition_of,
    generator_arch,
    method_names,
    recipe_named,
    recipe_of,
    register,
    unregister,
)
from ebmctl.recipes.run_spec import (
    MethodSpec,
    NetSpec,
    RunSpec,
    resolve_spec,
    spec_from_json,
    spec_to_json,
    validate_spec,
)

__all__ = [
    "RECIPES",
    "MethodSpec",
    "NetSpec",
    "Recipe",
    "RunSpec",
    "build_method",
    "condition_of",
    "generator_arch",
    "method_names",
    "recipe_named",
    "recipe_of",
    "register",
    "resolve_spec",
    "spec_from_json",
    "spec_to_json",
    "unregister",
    "validate_spec",
]
