"""Weights loaded into a built method, every mismatch a one-line error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ebmctl.errors import CheckpointError


def load_method_weights(method: Any, tensors: dict[str, torch.Tensor], source: Path) -> None:
    """Load weights, turning a key, shape or dtype mismatch, or non-finite weights, into a one-line error."""
    hint = "the checkpoint belongs to another net or method, or is damaged; pass the run it came from"
    expected = method.weight_tensors()  # the freshly built method's own tensors: the keys and dtypes it saves
    problems = [f"no tensor {k}" for k in sorted(set(expected) - set(tensors))]
    problems += [f"unexpected tensor {k}" for k in sorted(set(tensors) - set(expected))]
    problems += [f"{k} is {v.dtype}, not {expected[k].dtype}" for k, v in tensors.items()
                 if k in expected and v.dtype != expected[k].dtype]
    if problems:
        first, more = problems[0], len(problems) - 1
        raise CheckpointError(f"{source} does not match the model its spec describes ({first}"
                              + (f", and {more} more" if more else "") + ")", hint)
    bad = next((k for k, v in tensors.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())), None)
    if bad is not None:
        raise CheckpointError(f"{source} holds non-finite weights ({bad})", "the checkpoint is damaged; use an earlier "
                              "checkpoint or retrain")
    try:
        method.load_weights(tensors)
    except (RuntimeError, KeyError, ValueError, TypeError, IndexError) as exc:
        # torch's report opens with "Error(s) in loading state_dict for Net:"; the first mismatch is on the next line
        lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()] or [type(exc).__name__]
        first = next((line for line in lines if not line.endswith(":")), lines[0])[:160]
        raise CheckpointError(f"{source} does not match the model its spec describes ({first})", hint) from None
