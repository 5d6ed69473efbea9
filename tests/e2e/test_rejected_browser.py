"""Rejected inputs on the admin page, in a real browser (Debian's Chromium via Playwright).

The real server runs as a subprocess with its SMTP receiver on. What an admin would check: an
e-mail without a From: line, delivered over SMTP, is on the page with its reason; they download
the raw message (the bytes the sender sent) and discard it. An event of a batch that was refused
(its sender's clock ran ahead: "more than one day in the future") is replayed from the page: while
the cause holds it is refused again and says so; once it no longer holds, the replay stores it and
the item leaves the list. Both database backends; a screenshot lands in ``test-artifacts/``.
"""

from __future__ import annotations

import asyncio
import smtplib
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from frontdesk.db import Database
from tests.builders import make_token, make_user
from tests.conftest import truncate_all
from tests.e2e.browser import ServerProcess, shot
from tests.e2e.test_admin_wallboard_browser import WAIT_MS, clear_toasts, open_page
from tests.integration.webhook_sink import free_port

pytestmark = pytest.mark.slow

SECRET_KEY = "rejected-browser-test-secret-0123456789"
DOMAIN = "support.example.net"
AHEAD_SECONDS = 6  # how far past the one-day limit the sender's clock runs


class Site:
    def __init__(self, server: ServerProcess, smtp_port: int, admin_email: str, token: str) -> None:
        self.server = server
        self.base = server.base
        self.smtp_port = smtp_port
        self.admin_email = admin_email
        self.headers = {"Authorization": f"Bearer {token}"}

    async def call(self, method: str, path: str, body: Any = None, ok: tuple[int, ...] = (200, 201)) -> Any:
        async with httpx.AsyncClient(base_url=self.base, timeout=10) as client:
            r = await client.request(method, f"/api/v1{path}", json=body, headers=self.headers)
        assert r.status_code in ok, r.text
        return r.json() if r.content else None


@pytest.fixture
async def site(database_url: str, tmp_path: Path) -> AsyncIterator[Site]:
    db = Database(database_url)
    smtp_port = free_port()
    env = {"FRONTDESK_SMTP_LISTEN": f"127.0.0.1:{smtp_port}", "FRONTDESK_MAIL_DOMAIN": DOMAIN}
    server = ServerProcess(database_url, tmp_path / "var", tmp_path / "server.log", SECRET_KEY, env=env)
    try:
        admin = await make_user(db, role="admin", email="ada@example.com", name="Ada Admin")
        token = await make_token(db, admin)
        await server.start()
        yield Site(server, smtp_port, admin.email, token)
    finally:
        await server.stop()
        await truncate_all(db)
        await db.dispose()


def _send_mail(port: int, raw: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        smtp.sendmail("somebody@example.org", [f"help@{DOMAIN}"], raw)


async def test_an_admin_downloads_and_discards_a_mail_without_from_and_replays_a_fixed_event(
    browser: Any, site: Site
) -> None:
    from playwright.async_api import expect

    # A mail with no From: line comes in over SMTP.
    no_from = (
        f"To: help@{DOMAIN}\r\nSubject: Who wrote this?\r\nMessage-ID: <{uuid.uuid4().hex}@example.org>\r\n"
        "\r\nMy order 4711 never arrived.\r\n"
    ).encode()
    await asyncio.to_thread(_send_mail, site.smtp_port, no_from)
    # An event whose sender's clock runs a little more than a day ahead.
    ahead = datetime.now(UTC) + timedelta(days=1, seconds=AHEAD_SECONDS)
    valid_from = time.monotonic() + AHEAD_SECONDS
    event = {"type": "order.shipped", "identity": {"kind": "email", "value": "eve@example.com"},
             "occurred_at": ahead.isoformat()}  # fmt: skip
    batch = await site.call("POST", "/events/batch", {"events": [event]})
    assert [r["status"] for r in batch["results"]] == ["rejected"]

    context, page, errors = await open_page(browser, site, "/admin", site.admin_email)  # type: ignore[arg-type]
    await page.get_by_role("navigation", name="Admin sections").get_by_role("link", name="Rejected inputs").click()
    section = page.locator("fd-admin-rejected")
    await expect(section.get_by_role("heading", name="Rejected inputs")).to_be_visible(timeout=WAIT_MS)
    cards = section.get_by_role("listitem")
    await expect(cards).to_have_count(2)
    mail = cards.filter(has_text="no sender address (From)")
    await expect(mail.get_by_role("heading")).to_contain_text("E-mail (SMTP)")
    await mail.get_by_text("Preview").click()
    await expect(mail.locator("pre")).to_contain_text("My order 4711 never arrived.")
    await clear_toasts(page)
    await page.screenshot(path=shot("admin-rejected.png"))

    # Download: the very bytes the sender sent, as a file.
    async with page.expect_download() as info:
        await mail.get_by_role("link", name="Download").click()
    download = await info.value
    assert download.suggested_filename.endswith(".eml")
    data = Path(str(await download.path())).read_bytes()
    assert data.replace(b"\r\n", b"\n").rstrip() == no_from.replace(b"\r\n", b"\n").rstrip()

    # Discard (confirmed): gone from the page and from the server.
    mail_id = await mail.get_attribute("data-rejected-id")
    await mail.get_by_role("button", name="Discard").click()
    await page.get_by_role("dialog").get_by_role("button", name="Discard").click()
    await expect(page.locator(".toast").last).to_contain_text("Rejected input discarded.")
    await expect(cards).to_have_count(1)
    await site.call("GET", f"/rejected-inputs/{mail_id}", ok=(404,))

    # The event: refused again while its cause holds, stored once it no longer does.
    refused = cards.filter(has_text="more than one day in the future")
    await expect(refused.get_by_role("heading")).to_contain_text("Events API")
    if time.monotonic() < valid_from - 1:  # still early: the replay is refused and says so
        await refused.get_by_role("button", name="Replay").click()
        await expect(page.locator(".toast").last).to_contain_text("Replayed: refused again")
        await expect(refused).to_contain_text("Replays refused: 1")
    await asyncio.sleep(max(0.0, valid_from - time.monotonic()) + 0.5)  # the sender's clock is right now
    await refused.get_by_role("button", name="Replay").click()
    await expect(page.locator(".toast").last).to_contain_text("Replayed: stored.")
    await expect(section.get_by_text("Nothing was refused.")).to_be_visible()
    assert (await site.call("GET", "/rejected-inputs"))["items"] == []
    found = await site.call("GET", "/customers?identity=email:eve@example.com")
    events = await site.call("GET", f"/customers/{found['items'][0]['id']}/events")
    assert [e["type"] for e in events["items"]] == ["order.shipped"]
    assert errors == []
    await context.close()
