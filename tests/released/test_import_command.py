"""What `ebmctl import` refuses before reading anything: a method it reads no release of, with the ones it reads."""

from __future__ import annotations

import pytest

from ebmctl.services.import_release import importable


@pytest.mark.parametrize("method", ["nope", "sngan"])
def test_unsupported_formats_are_refused_with_the_formats_that_are(cli, tmp_path, method):
    res = cli("import", "--from", method, str(tmp_path / "x.ckpt"))
    assert res.code == 2 and f"does not import {method!r} checkpoints" in res.err
    assert "--from takes igebm, icd, clel, cebm, ebclr, hat" in res.err and "\n" not in res.err.strip()


def test_the_supported_formats_are_the_recipes_that_read_one():
    assert importable() == ["igebm", "icd", "clel", "cebm", "ebclr", "hat"]
