"""Capabilities are types: each method has exactly the ones its commands rely on, checked by isinstance."""

import pytest

from ebmctl.methods.capabilities import (
    HasEnergy,
    HasLatents,
    KeepsReplayBuffers,
    Refines,
    Represents,
    Samples,
    SamplesPool,
    ScoresOod,
)
from ebmctl.recipes import RECIPES

CAPABILITIES = {"sample": Samples, "ood_scores": ScoresOod, "representation": Represents, "latents": HasLatents,
                "refine": Refines}
# What each method offered before capabilities were types (then named by strings), plus its energy and pool.
EXPECTED = {
    "igebm": {"sample", "ood_scores", "representation"},
    "icd": {"sample", "ood_scores", "representation"},
    "cebm": {"sample", "ood_scores", "representation"},
    "clel": {"sample", "ood_scores", "representation", "latents"},
    "ebclr": {"representation"},
    "simclr": {"representation"},
    "sngan": {"sample"},
    "ae": {"sample", "representation"},
    "hat": {"sample", "ood_scores", "representation", "refine"},
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_method_has_exactly_its_capabilities(name):
    method = RECIPES[name].method
    assert {cap for cap, proto in CAPABILITIES.items() if issubclass(method, proto)} == EXPECTED[name]


def test_persistent_chain_ebms_have_an_energy_a_pool_and_replay_buffers():
    chain_ebms = {"igebm", "icd", "cebm", "clel"}
    for name, recipe in RECIPES.items():
        assert issubclass(recipe.method, SamplesPool) == (name in chain_ebms)
        assert issubclass(recipe.method, KeepsReplayBuffers) == (name in chain_ebms | {"ebclr"})
    assert all(issubclass(RECIPES[n].method, HasEnergy) for n in chain_ebms | {"hat"})


def test_the_registry_covers_every_method_tested_here():
    assert set(RECIPES) == set(EXPECTED)
