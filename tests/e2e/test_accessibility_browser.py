"""What a keyboard user and a reader with low vision would check on every page, in a real browser
(Debian's Chromium driven by Playwright), on the demo data: every visible text meets WCAG
contrast (4.5:1, large text 3:1) in English and Russian, and every element the Tab key reaches
shows where the focus is.

Needs ``apt-get install -y chromium`` and the ``playwright`` Python package (never ``playwright
install``). Without them the test skips — or fails under ``FRONTDESK_TEST_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from frontdesk import demo
from frontdesk.db import Database
from tests.conftest import truncate_all
from tests.e2e.browser import VIEWPORT, ServerProcess

pytestmark = pytest.mark.slow

CONTRAST_JS = Path(__file__).with_name("contrast.js").read_text(encoding="utf-8")
FOCUSED_JS = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  const s = getComputedStyle(el);
  const outlined = s.outlineStyle !== "none" && parseFloat(s.outlineWidth) >= 2;
  const ringed = s.boxShadow !== "" && s.boxShadow !== "none";
  const name = (el.getAttribute("aria-label") || el.textContent || el.name || el.id || "").trim().slice(0, 40);
  return { element: `${el.tagName.toLowerCase()} ${name}`, visible: outlined || ringed };
}"""
TABS = 40
WAIT_MS = 20_000

# (who signs in, password, page, marker the page sets once its data is on screen)
PAGES = [
    (None, None, "/", "form"),
    (demo.AGENTS[0][1] + "@" + demo.DOMAIN, demo.AGENT_PASSWORD, "/desk", 'body[data-inbox-ready="1"]'),
    (f"supervisor@{demo.DOMAIN}", demo.SUPERVISOR_PASSWORD, "/wallboard", "table tbody tr"),
    (demo.ADMIN_EMAIL, demo.ADMIN_PASSWORD, "/admin", "table tbody tr"),
    # The routing sections (a queue's editor is opened below, to check its form too).
    (demo.ADMIN_EMAIL, demo.ADMIN_PASSWORD, "/admin#queues", "fd-admin-queues table tbody tr"),
    (demo.ADMIN_EMAIL, demo.ADMIN_PASSWORD, "/admin#skills", "fd-admin-skills form"),
    (demo.ADMIN_EMAIL, demo.ADMIN_PASSWORD, "/admin#agents", "fd-admin-profiles form.profile-editor"),
    (demo.ADMIN_EMAIL, demo.ADMIN_PASSWORD, "/admin#rules", "fd-admin-rules ol.rules li"),
]


@pytest.fixture
async def server(database_url: str, tmp_path: Path) -> AsyncIterator[ServerProcess]:
    db = Database(database_url)
    secret = "a11y-browser-test-secret-0123456789"
    process = ServerProcess(database_url, tmp_path / "var", tmp_path / "server.log", secret)
    try:
        await demo.load(db, customers=150)
        await process.start()
        yield process
    finally:
        await process.stop()
        await truncate_all(db)
        await db.dispose()


async def open_page(browser: Any, base: str, who: str | None, password: str | None, path: str, lang: str) -> Any:
    context = await browser.new_context(viewport=VIEWPORT, locale="ru-RU" if lang == "ru" else "en-GB")
    if who is not None:
        r = await context.request.post(f"{base}/api/v1/auth/login", data={"email": who, "password": password})
        assert r.ok, await r.text()
        csrf = (await r.json())["csrf_token"]
        r = await context.request.patch(f"{base}/api/v1/auth/me", data={"locale": lang}, headers={"X-CSRF-Token": csrf})
        assert r.ok, await r.text()
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    await page.goto(f"{base}{path}")
    assert await page.get_attribute("html", "lang") == lang
    page.errors = errors
    return page


async def test_text_contrast_and_visible_focus_on_every_page(browser: Any, server: ServerProcess) -> None:
    problems: list[str] = []
    for lang in ("en", "ru"):
        for who, password, path, marker in PAGES:
            page = await open_page(browser, server.base, who, password, path, lang)
            await page.locator(marker).first.wait_for(state="attached", timeout=WAIT_MS)
            states = [path]
            if path == "/desk":  # and a conversation open beside the list, with the customer's sidebar
                r = await page.context.request.get(f"{server.base}/api/v1/conversations?limit=1")
                conversation_id = (await r.json())["items"][0]["id"]
                await page.goto(f"{server.base}/desk#/c/{conversation_id}")
                ready = page.locator(f'body[data-conversation-ready="{conversation_id}"]')
                await ready.wait_for(state="attached", timeout=WAIT_MS)
                states.append("/desk with a conversation")
            if path == "/admin#queues":
                await page.locator("fd-admin-queues tbody tr button[data-focus-key^='edit-']").first.click()
                await page.locator("fd-admin-queues form.queue-editor").wait_for(timeout=WAIT_MS)
                states.append("/admin#queues with a queue's editor")
            result = await page.evaluate(CONTRAST_JS)
            assert result["checked"] > 5, f"{path} ({lang}) shows almost no text"
            problems += [f"{lang} {states[-1]}: {failure}" for failure in result["failures"]]
            if lang == "en":
                await page.locator("body").focus()
                reached = 0
                for _ in range(TABS):
                    await page.keyboard.press("Tab")
                    focused = await page.evaluate(FOCUSED_JS)
                    if focused is None:
                        continue
                    reached += 1
                    if not focused["visible"]:
                        problems.append(f"{path}: no visible focus on {focused['element']}")
                assert reached >= 10, f"Tab reaches only {reached} elements on {path}"
            assert page.errors == [], (path, lang, page.errors)
            await page.context.close()
    assert problems == [], "\n".join(problems)
