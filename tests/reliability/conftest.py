"""Reliability suite: every test records what it tried and observed (see observations.py)."""

from __future__ import annotations

import pytest

from tests.reliability import observations


@pytest.fixture(scope="session", autouse=True)
def _fresh_observations():
    observations.reset()
    yield
