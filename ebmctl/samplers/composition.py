"""Energy combinators: new energies built from others, usable by every sampler in :mod:`langevin`.

Each energy maps a batch (B, ...) to per-sample energies (B,); per-scale energies (B, S) are summed over
scales first, so every combination returns (B,). Following Du et al. (2020, "Compositional visual generation
with energy based models"): a conjunction is a product of experts (a weighted sum of energies), a negation
divides by the negated models (subtracts their energies), and a disjunction is a mixture (a soft-min).
The results are plain functions: parameters of module energies stay trainable unless frozen by the caller
(:func:`ebmctl.samplers.langevin.frozen`); gradients with respect to the input are unaffected either way.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ebmctl.samplers.langevin import Energy


def _per_sample(e: Tensor) -> Tensor:
    """(B,) energies from (B,) or (B, S...) outputs."""
    return e.reshape(e.shape[0], -1).sum(dim=1) if e.dim() > 1 else e


def _as_list(energies: Energy | Sequence[Energy]) -> list[Energy]:
    return [energies] if callable(energies) else list(energies)


def conjunction(energies: Sequence[Energy], weights: Sequence[float] | None = None) -> Energy:
    """``sum_i w_i E_i(x)``: every concept at once (a product of experts; weights default to 1)."""
    energies = list(energies)
    if not energies:
        raise ValueError("a conjunction needs at least one energy")
    w = [1.0] * len(energies) if weights is None else [float(v) for v in weights]
    if len(w) != len(energies):
        raise ValueError(f"got {len(w)} weights for {len(energies)} energies")

    def energy(x: Tensor) -> Tensor:
        total = w[0] * _per_sample(energies[0](x))
        for wi, e in zip(w[1:], energies[1:], strict=True):
            total = total + wi * _per_sample(e(x))
        return total

    return energy


def negation(
    positive: Energy | Sequence[Energy], negatives: Energy | Sequence[Energy], alpha: float = 1.0
) -> Energy:
    """``sum_i E_pos_i(x) - alpha * sum_j E_neg_j(x)``: p(x | c1, not c2) ∝ p(x | c1) / p(x | c2)^alpha.

    At least one positive energy is required: the negated terms alone are unbounded below. With
    ``alpha < 1`` the result stays bounded below when the negated energies grow no faster than the
    positive ones."""
    pos, neg = _as_list(positive), _as_list(negatives)
    if not pos:
        raise ValueError(
            "a negation needs at least one positive energy (negated concepts alone have no mode)"
        )
    weights = [1.0] * len(pos) + [-float(alpha)] * len(neg)
    return conjunction(pos + neg, weights)


def disjunction(energies: Sequence[Energy], temperature: float = 1.0) -> Energy:
    """``-T * logsumexp_i(-E_i(x) / T)``: any of the concepts (a soft-min, the energy of a mixture).

    The mixture ``(1/n) sum_i exp(-E_i/T)`` has this energy plus the constant ``T log n``, which is omitted:
    it changes no gradient and no sample. The value lies in ``[min_i E_i - T log n, min_i E_i]``."""
    energies = list(energies)
    if not energies:
        raise ValueError("a disjunction needs at least one energy")
    if temperature <= 0:
        raise ValueError(f"the disjunction temperature must be > 0, got {temperature}")

    def energy(x: Tensor) -> Tensor:
        stacked = torch.stack([_per_sample(e(x)) for e in energies], dim=0)
        return -temperature * torch.logsumexp(-stacked / temperature, dim=0)

    return energy


def compose(terms: Sequence[tuple[Energy, int]], op: str = "and", alpha: float = 1.0) -> Energy:
    """Combine ``(energy, sign)`` terms (sign +1 or -1). ``op="and"``: the conjunction of the positive terms
    with the negative ones negated (weight ``alpha``); ``op="or"``: the disjunction of the terms, which must
    all be positive."""
    terms = list(terms)
    if not terms:
        raise ValueError("nothing to compose: give at least one term")
    if any(sign not in (1, -1) for _, sign in terms):
        raise ValueError(f"term signs must be +1 or -1, got {[sign for _, sign in terms]}")
    pos = [e for e, sign in terms if sign == 1]
    neg = [e for e, sign in terms if sign == -1]
    if op == "and":
        return negation(pos, neg, alpha) if neg else conjunction(pos)
    if op == "or":
        if neg:
            raise ValueError(
                "a negated term cannot be part of a disjunction (op='or'); use op='and' to negate"
            )
        return disjunction(pos)
    raise ValueError(f"unknown composition op {op!r}: use 'and' or 'or'")
