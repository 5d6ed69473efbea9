"""The one way the browser tests and ``bench/desktop.py`` start Chromium: Debian's package (or
``FRONTDESK_CHROMIUM``) driven by Playwright, never a browser Playwright downloads. Only the
standard library at import time, so the bench can import it without the test dependencies."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

CHROMIUM = os.environ.get("FRONTDESK_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_missing() -> str | None:
    """Why Chromium cannot be found here, or None."""
    if Path(CHROMIUM).exists():
        return None
    return f"Chromium not found at {CHROMIUM} (Debian package chromium, or set FRONTDESK_CHROMIUM)"


def playwright_missing() -> str | None:
    """Why Playwright cannot be imported here, or None."""
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "the playwright Python package is missing"
    return None


@asynccontextmanager
async def launch_chromium() -> AsyncIterator[Any]:
    """A headless Chromium (a Playwright ``Browser``), closed when the block ends."""
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            await browser.close()
