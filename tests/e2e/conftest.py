"""Fixtures of the browser tests: Debian's Chromium driven by Playwright (never ``playwright
install``). Without Chromium or the ``playwright`` package the tests skip — or fail under
``FRONTDESK_TEST_REQUIRE_SERVICES=1`` — and the run ends by saying how to install them (tests/peers.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests import peers
from tests.e2e.chromium import CHROMIUM, chromium_missing, launch_chromium, playwright_missing


@pytest.fixture
def chromium() -> str:
    found = chromium_missing()
    peers.require(peers.CHROMIUM, found is None, found or "")
    missing = playwright_missing()
    peers.require(peers.PLAYWRIGHT, missing is None, missing or "")
    return CHROMIUM


@pytest.fixture
async def browser(chromium: str) -> AsyncIterator[Any]:
    async with launch_chromium() as b:
        yield b
