"""Which split `ebmctl sample --fid` compares with: eval.fid_reference."""

from __future__ import annotations

import pytest

from ebmctl.errors import SpecError
from ebmctl.recipes import resolve_spec
from ebmctl.services.runtime import judging


@pytest.fixture
def splits(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the split of every dataset the reference is read from (datasets without a split refuse it)."""
    asked: list[str] = []

    def fake(data, *, split=None, **_):
        asked.append(split)
        if data.name == "cifar10" and split not in ("train", "test"):
            raise SpecError(f"no split {split}", "")
        return f"{data.name}:{split}"

    monkeypatch.setattr(judging, "dataset_from", fake)
    return asked


@pytest.mark.parametrize(
    ("preset", "sets", "expected"),
    [
        ("clel-base", [], ("cifar10:train", "train")),  # the paper's reference: the training set
        ("clel-base", ["eval.fid_reference=held_out"], ("cifar10:test", "test")),
        ("clel-imagenet32", [], ("imagenet32:val", "val")),  # ImageNet's held-out split is val
        ("icd-cifar10", [], ("cifar10:test", "test")),  # the default
    ],
)
def test_the_reference_split_follows_eval_fid_reference(splits, preset, sets, expected):
    spec = resolve_spec(preset, sets)
    assert judging._fid_reference(spec, None, (3, 32, 32)) == expected
