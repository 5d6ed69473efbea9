"""Fixtures of the browser tests: Debian's Chromium driven by Playwright (never ``playwright
install``). Without Chromium or the ``playwright`` package the tests skip — or fail under
``FRONTDESK_TEST_REQUIRE_SERVICES=1`` — and the run ends by saying how to install them (tests/peers.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests import peers
from tests.e2e.browser import CHROMIUM, CHROMIUM_ARGS


@pytest.fixture
def chromium() -> str:
    peers.require(
        peers.CHROMIUM,
        Path(CHROMIUM).exists(),
        f"Chromium not found at {CHROMIUM} (Debian package chromium, or set FRONTDESK_CHROMIUM)",
    )
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        peers.require(peers.PLAYWRIGHT, False, "the playwright Python package is missing")
    return CHROMIUM


@pytest.fixture
async def browser(chromium: str) -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            await b.close()
