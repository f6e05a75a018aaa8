"""Energy combinators on quadratic energies, where every value and minimum is known by hand."""

from __future__ import annotations

import math

import pytest
import torch

from ebmctl.samplers.composition import compose, conjunction, disjunction, negation
from ebmctl.samplers.langevin import input_grad, sgld


def quadratic(centre: tuple[float, ...]):
    """E(x) = ||x - centre||^2 / 2 per sample."""
    mu = torch.tensor(centre, dtype=torch.float64)

    def energy(x: torch.Tensor) -> torch.Tensor:
        return 0.5 * ((x - mu) ** 2).sum(dim=1)

    return energy


E1, E2 = quadratic((1.0, 0.0)), quadratic((-1.0, 2.0))
X = torch.tensor([[0.0, 0.0], [1.0, 1.0], [2.0, -1.0]], dtype=torch.float64)


def descend(energy, x: torch.Tensor, steps: int = 300) -> torch.Tensor:
    return sgld(energy, x, steps=steps, step_size=0.1, noise=0.0, pixel_clamp=None)


def test_conjunction_values_and_weights():
    # E1 at X: 0.5, 0.5, 1.0; E2 at X: 2.5, 2.5, 9.0
    assert torch.allclose(conjunction([E1, E2])(X), torch.tensor([3.0, 3.0, 10.0], dtype=torch.float64))
    assert torch.allclose(
        conjunction([E1, E2], weights=[2.0, 0.5])(X), torch.tensor([2.25, 2.25, 6.5], dtype=torch.float64)
    )
    with pytest.raises(ValueError, match="weights"):
        conjunction([E1, E2], weights=[1.0])
    with pytest.raises(ValueError, match="at least one"):
        conjunction([])


def test_conjunction_minimum_is_the_mean_of_the_centres():
    start = torch.randn(5, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 3
    out = descend(conjunction([E1, E2]), start)
    assert torch.allclose(out, torch.tensor([0.0, 1.0], dtype=torch.float64).expand(5, 2), atol=1e-8)
    # weights 3 and 1: the weighted mean (3 * mu1 + mu2) / 4
    out = descend(conjunction([E1, E2], weights=[3.0, 1.0]), start)
    assert torch.allclose(out, torch.tensor([0.5, 0.5], dtype=torch.float64).expand(5, 2), atol=1e-8)


def test_per_scale_energies_are_summed():
    def two_scales(x: torch.Tensor) -> torch.Tensor:
        return torch.stack([E1(x), 2 * E1(x)], dim=1)  # (B, 2)

    assert torch.allclose(conjunction([two_scales, E2])(X), 3 * E1(X) + E2(X))
    assert disjunction([two_scales, E2])(X).shape == (3,)


def test_disjunction_is_a_soft_min():
    far1, far2 = quadratic((-10.0, 0.0)), quadratic((10.0, 0.0))
    near = torch.tensor([[-10.0, 0.0], [-9.5, 0.3], [10.2, -0.1]], dtype=torch.float64)
    smaller = torch.minimum(far1(near), far2(near))
    for t in (0.5, 1.0, 2.0):
        # the other energy is ~100 higher: exp(-100 / T) is below double precision
        assert torch.allclose(disjunction([far1, far2], temperature=t)(near), smaller, atol=1e-12)
    # halfway, both energies are 50: the soft-min is 50 - T log 2
    mid = torch.tensor([[0.0, 0.0]], dtype=torch.float64)
    for t in (0.5, 1.0, 2.0):
        value = disjunction([far1, far2], temperature=t)(mid)
        assert value.item() == pytest.approx(50.0 - t * math.log(2.0), abs=1e-12)
    # everywhere within [min - T log n, min]
    x = torch.randn(50, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 5
    value, low = disjunction([E1, E2])(x), torch.minimum(E1(x), E2(x))
    assert bool((value <= low + 1e-12).all()) and bool((value >= low - math.log(2.0) - 1e-12).all())
    with pytest.raises(ValueError, match="temperature"):
        disjunction([E1, E2], temperature=0.0)


def test_disjunction_keeps_both_modes():
    far1, far2 = quadratic((-5.0, 0.0)), quadratic((5.0, 0.0))
    start = torch.tensor([[-3.0, 1.0], [4.0, -2.0]], dtype=torch.float64)
    out = descend(disjunction([far1, far2]), start)
    assert torch.allclose(out, torch.tensor([[-5.0, 0.0], [5.0, 0.0]], dtype=torch.float64), atol=1e-6)


def test_negation_value_and_gradient():
    mu1, mu2 = torch.tensor([1.0, 0.0], dtype=torch.float64), torch.tensor([-1.0, 2.0], dtype=torch.float64)
    for alpha in (1.0, 0.5):
        energy = negation(E1, [E2], alpha=alpha)
        assert torch.allclose(energy(X), E1(X) - alpha * E2(X))
        expected = (X - mu1) - alpha * (X - mu2)  # grad E1 - alpha grad E2
        assert torch.allclose(input_grad(energy, X), expected)
    with pytest.raises(ValueError, match="positive"):
        negation([], [E2])


def test_negation_with_alpha_below_one_pushes_away_from_the_negated_centre():
    # E1 - E2 / 2 = |x - mu1|^2 / 2 - |x - mu2|^2 / 4: minimum at 2 mu1 - mu2 = (3, -2)
    start = torch.zeros(3, 2, dtype=torch.float64)
    out = descend(negation(E1, E2, alpha=0.5), start, steps=600)
    assert torch.allclose(out, torch.tensor([3.0, -2.0], dtype=torch.float64).expand(3, 2), atol=1e-8)


def test_compose_dispatches_and_checks():
    assert torch.allclose(compose([(E1, 1), (E2, 1)])(X), E1(X) + E2(X))
    assert torch.allclose(compose([(E1, 1), (E2, -1)], alpha=0.5)(X), E1(X) - 0.5 * E2(X))
    assert torch.allclose(compose([(E1, 1), (E2, 1)], op="or")(X), disjunction([E1, E2])(X))
    with pytest.raises(ValueError, match="disjunction"):
        compose([(E1, 1), (E2, -1)], op="or")
    with pytest.raises(ValueError, match="positive"):
        compose([(E1, -1)])
    with pytest.raises(ValueError, match="sign"):
        compose([(E1, 2)])
    with pytest.raises(ValueError, match="op"):
        compose([(E1, 1)], op="xor")
    with pytest.raises(ValueError, match="at least one term"):
        compose([])
