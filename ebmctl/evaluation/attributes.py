"""Judging samples' attributes: the attributes a user names, resolved against the dataset's, and the share of
samples the attribute judge (:mod:`ebmctl.evaluation.attribute_judge`) finds with each, as Du et al. (2021,
"Improved Contrastive Divergence", Table 4) score compositional generation."""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from typing import Any

import torch

from ebmctl.errors import UsageError
from ebmctl.evaluation.attribute_judge import REPORT_CHUNK, AttributeJudge

# Words accepted for a dataset's attributes besides their own names: word -> (attribute, wanted present).
ATTRIBUTE_ALIASES: dict[str, dict[str, tuple[str, bool]]] = {
    "celeba": {
        "female": ("Male", False),
        "woman": ("Male", False),
        "man": ("Male", True),
        "old": ("Young", False),
    },
}


def _key(word: str) -> str:
    """Case-insensitive form in which underscores, dashes and spaces are the same separator."""
    return re.sub(r"[\s_-]+", "_", word.strip().lower())


def resolve_attributes(
    requested: Sequence[str],
    attribute_names: Sequence[str],
    aliases: dict[str, tuple[str, bool]] | None = None,
) -> list[tuple[str, int, bool]]:
    """Turn words such as ``smiling``, ``wavy-hair``, ``-smiling`` (absent) or an alias such as ``female``
    into ``(attribute name, index, wanted present)``. Unknown words and attributes named twice raise
    UsageError. ``aliases`` maps a word to ``(attribute, present)``, e.g. ``ATTRIBUTE_ALIASES["celeba"]``."""
    if not attribute_names:
        raise UsageError(
            "this dataset has no attributes to ask for", "use a dataset with attributes, e.g. celeba"
        )
    index = {_key(name): (name, i) for i, name in enumerate(attribute_names)}
    alias_keys = {
        _key(word): (index[_key(target)], present, word)
        for word, (target, present) in (aliases or {}).items()
        if _key(target) in index and _key(word) not in index
    }
    resolved: list[tuple[str, int, bool]] = []
    for word in requested:
        negated = word.strip().startswith("-")
        key = _key(word.strip()[1:] if negated else word)
        if key in index:
            (name, i), present = index[key], True
        elif key in alias_keys:
            (name, i), present, _ = alias_keys[key]
        else:
            shown = {k: name for k, (name, _) in index.items()} | {
                k: w for k, (_, _, w) in alias_keys.items()
            }
            close = difflib.get_close_matches(key, list(shown), n=1, cutoff=0.6)
            suggestion = f"; did you mean '{shown[close[0]]}'?" if close else ""
            raise UsageError(
                f"unknown attribute '{word}'{suggestion}",
                f"valid attributes: {', '.join(attribute_names)}"
                + (f"; aliases: {', '.join(w for _, _, w in alias_keys.values())}" if alias_keys else "")
                + "; prefix one with '-' to ask for its absence",
            )
        if any(j == i for _, j, _ in resolved):
            raise UsageError(
                f"attribute {name} is asked for twice (by '{word}')", "name each attribute at most once"
            )
        resolved.append((name, i, present != negated))
    return resolved


@torch.no_grad()
def _predictions(judge: AttributeJudge, samples: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The judge's bool (N, A) decisions on ``samples`` in chunks of 256, in eval mode, and whether it
    recognises each sample, bool (N,)."""
    if len(samples) == 0:
        raise ValueError("no samples to judge")
    was_training = judge.training
    judge.eval()
    try:
        chunks = samples.split(REPORT_CHUNK)
        return (torch.cat([judge.predict(chunk).cpu() for chunk in chunks]),
                torch.cat([judge.recognises(chunk).cpu() for chunk in chunks]))
    finally:
        judge.train(was_training)


def attribute_report(
    judge: AttributeJudge, samples: torch.Tensor, wanted: Sequence[tuple[str, int, bool]]
) -> list[dict[str, Any]]:
    """Per wanted ``(name, index, present)`` the fraction of ``samples`` judged to match it (to have the
    attribute when ``present``, to lack it otherwise), then a row named ``all``: the fraction matching every
    wanted attribute at once. Samples the judge does not recognise are not judged: they match nothing.

    Rows are ``{"name", "index", "present", "fraction", "fraction_of_judged", "abstained", "samples"}``
    (``all``: index and present None; ``fraction_of_judged``: among the recognised samples, None without
    any; ``abstained``: how many samples the judge did not recognise)."""
    if not wanted:
        raise ValueError("no attributes to report on")
    predicted, recognised = _predictions(judge, samples)
    matches = torch.stack([predicted[:, i] == present for _, i, present in wanted], dim=1)
    matches = torch.cat([matches, matches.all(1, keepdim=True)], dim=1) & recognised[:, None]
    judged = int(recognised.sum())
    names = [*wanted, ("all", None, None)]
    return [{"name": name, "index": i, "present": present, "fraction": matches[:, k].float().mean().item(),
             "fraction_of_judged": matches[:, k].sum().item() / judged if judged else None,
             "abstained": len(samples) - judged, "samples": len(samples)}
            for k, (name, i, present) in enumerate(names)]


def attribute_rates(judge: AttributeJudge, samples: torch.Tensor) -> dict[str, float]:
    """The fraction of ``samples`` judged to have each attribute (e.g. the unconditional baseline); samples
    the judge does not recognise have none."""
    predicted, recognised = _predictions(judge, samples)
    rates = (predicted & recognised[:, None]).float().mean(0)
    return {name: rates[i].item() for i, name in enumerate(judge.attribute_names)}
