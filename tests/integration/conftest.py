"""Fixtures of the integration tests beyond those in ``tests/conftest.py``."""

from __future__ import annotations

import pytest

from tests.builders import auth_headers


@pytest.fixture
async def agent(app):
    """Headers that act as a new agent."""
    return await auth_headers(app, "agent")


@pytest.fixture
async def supervisor(app):
    """Headers that act as a new supervisor."""
    return await auth_headers(app, "supervisor")
