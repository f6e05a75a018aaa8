"""The released-checkpoint tests drive ebmctl through its CLI and read its JSON answers."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest


@pytest.fixture
def cli_json(cli) -> Callable[..., tuple[int, dict]]:
    """``cli_json(*args)`` -> (exit code, the command's JSON answer or {}); the runs live in ``cli.runs``."""

    def invoke(*args: str) -> tuple[int, dict]:
        res = cli("--quiet", "--json", *args)
        invoke.err = res.err
        return res.code, (json.loads(res.out) if res.code == 0 else {})

    invoke.runs = cli.runs
    invoke.err = ""
    return invoke
