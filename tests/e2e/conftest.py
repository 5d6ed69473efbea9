"""Fixtures of the browser tests: Debian's Chromium driven by Playwright (never ``playwright
install``). Without Chromium or the ``playwright`` package the tests skip — or fail under
``FRONTDESK_TEST_REQUIRE_SERVICES=1``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REQUIRE_SERVICES
from tests.e2e.browser import CHROMIUM, CHROMIUM_ARGS


def _missing(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (FRONTDESK_TEST_REQUIRE_SERVICES=1: the browser tests must run)")
    pytest.skip(reason)


@pytest.fixture
def chromium() -> str:
    if not Path(CHROMIUM).exists():
        _missing(f"Chromium not found at {CHROMIUM}: apt-get install -y chromium (or set FRONTDESK_CHROMIUM)")
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        _missing("the playwright Python package is missing: pip install -e '.[dev]'")
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
