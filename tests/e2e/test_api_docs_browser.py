"""/docs (Swagger UI) and /redoc (ReDoc) render in real Chromium that may reach nothing but this
server: no CDN, no fonts or validators from elsewhere, nothing the page's CSP refuses."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.e2e.browser import VIEWPORT, ServerProcess, shot

pytestmark = pytest.mark.parametrize("backend", ["sqlite"])


@pytest.fixture
async def server(database_url: str, tmp_path: Path):
    srv = ServerProcess(
        database_url, tmp_path / "var", tmp_path / "server.log", "api-docs-test-secret-0123456789",
        env={"FRONTDESK_RUN_LOOPS": "false"},
    )  # fmt: skip
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


@pytest.fixture
async def offline_page(browser, server):
    """A page whose every request to a host other than the server is blocked (and noted)."""
    context = await browser.new_context(viewport=VIEWPORT)
    page = await context.new_page()
    outside: list[str] = []
    problems: list[str] = []
    own = urlsplit(server.base).netloc

    async def only_local(route):  # type: ignore[no-untyped-def]
        url = route.request.url
        if urlsplit(url).scheme in ("data", "blob") or urlsplit(url).netloc == own:
            await route.continue_()
        else:
            outside.append(url)
            await route.abort()

    await context.route("**/*", only_local)
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    try:
        yield page, outside, problems
    finally:
        await context.close()


async def test_swagger_ui_lists_the_operations_offline(offline_page, server):
    page, outside, problems = offline_page
    response = await page.goto(f"{server.base}/docs")
    assert response is not None
    assert response.status == 200
    await page.wait_for_selector(".opblock-summary", timeout=30_000)
    assert "script-src 'self'" in response.headers["content-security-policy"]
    # Swagger UI keeps only the tags near the viewport on the page: read them scrolling down.
    seen: set[str] = set()
    for _ in range(300):
        paths = await page.locator(".opblock-summary-path").all_inner_texts()
        seen.update(p.replace("\u200b", "") for p in paths)
        if await page.evaluate("window.innerHeight + window.scrollY >= document.body.scrollHeight - 2"):
            break
        await page.mouse.wheel(0, 600)
        await page.wait_for_timeout(50)
    assert "/api/v1/messages/inbound" in seen
    assert len(seen) > 50, sorted(seen)
    await page.evaluate("window.scrollTo(0, 0)")
    assert "Frontdesk" in await page.locator(".info .title").first.inner_text()
    await page.screenshot(path=shot("api-docs-swagger.png"))
    assert outside == []
    assert problems == []


async def test_redoc_renders_offline(offline_page, server):
    page, outside, problems = offline_page
    response = await page.goto(f"{server.base}/redoc")
    assert response is not None
    assert response.status == 200
    await page.wait_for_selector("h1", timeout=30_000)
    assert "Frontdesk" in await page.locator("h1").first.inner_text()
    operation = page.locator("h2", has_text="Receive an inbound customer message")
    await operation.first.wait_for(timeout=30_000)
    assert await page.locator("[data-section-id^='operation/']").count() > 50
    await page.screenshot(path=shot("api-docs-redoc.png"))
    assert outside == []
    assert problems == []


async def test_viewer_files_are_cached_for_good(server):
    async with httpx.AsyncClient(base_url=server.base) as client:
        page = (await client.get("/docs")).text
        bundle = next(part.split('"')[0] for part in page.split('src="')[1:] if "swagger-ui-bundle.js" in part)
        assert bundle.startswith("/docs-assets/")
        r = await client.get(bundle)
        assert r.status_code == 200
        assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert "javascript" in r.headers["content-type"]
        assert (await client.get("/openapi.json")).status_code == 200
