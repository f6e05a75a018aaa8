"""One cache of judges for the end-to-end tests that opt in, so each judge trains once per session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def judge_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("judge-cache")


@pytest.fixture
def shared_judges(_isolated_env, judge_cache, monkeypatch):
    """EBMCTL_CACHE points at the session's judge cache (after the per-test isolation has set it)."""
    monkeypatch.setenv("EBMCTL_CACHE", str(judge_cache))
    return judge_cache
