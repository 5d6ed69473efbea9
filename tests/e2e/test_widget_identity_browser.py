"""The widget, in a real browser, when a visitor gives an address another customer has (issue 9, item 1).

Victoria chatted before, signed in on the shop. On a new device, not signed in, she types her
address into the widget: the widget does NOT show her history — anyone could type it — but says
it e-mailed her a link. The mail arrives at a real SMTP peer; she opens the link, confirms on the
page, and the widget she left open shows her earlier conversation.

Needs ``apt-get install -y chromium`` and the ``playwright`` Python package (never ``playwright
install``). Without them the test skips — or fails under ``FRONTDESK_TEST_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from frontdesk.channels.webchat.visitor import user_hash
from frontdesk.conversations.ingest import InboundMessage, receive
from frontdesk.db import Database
from tests.builders import make_token, make_user
from tests.conftest import truncate_all
from tests.e2e.browser import ServerProcess, serve_page, shot
from tests.e2e.test_widget_browser import host_page
from tests.integration.test_email_outbound import SmtpSink

pytestmark = pytest.mark.slow

WAIT_MS = 20_000
IDENTITY_SECRET = "acme-identity-secret"
VICTORIA = "victoria@example.org"
EARLIER = "Where is my teapot, order 77?"
ANSWER = "It left our workshop today, Victoria."


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    s = SmtpSink().start()
    yield s
    s.stop()


@pytest.fixture
async def world(
    database_url: str, tmp_path: Path, sink: SmtpSink
) -> AsyncIterator[tuple[Database, ServerProcess, str]]:
    db = Database(database_url)
    server = ServerProcess(
        database_url,
        tmp_path / "var",
        tmp_path / "server.log",
        "widget-identity-secret-0123456789",
        env={"FRONTDESK_SMTP_RELAY": f"smtp://127.0.0.1:{sink.port}", "FRONTDESK_MAIL_FROM": "help@acme.example"},
    )
    server.extra_env["FRONTDESK_PUBLIC_URL"] = server.base  # the port is chosen before it starts
    try:
        admin = await make_token(db, await make_user(db, role="admin"))
        await server.start()
        yield db, server, admin
    finally:
        await server.stop()
        await truncate_all(db)
        await db.dispose()


async def test_a_claimed_address_gets_a_link_and_the_link_brings_the_history(
    browser: Any, world: tuple[Database, ServerProcess, str], sink: SmtpSink
) -> None:
    from playwright.async_api import expect

    db, server, admin = world
    headers = {"Authorization": f"Bearer {admin}"}
    async with httpx.AsyncClient(base_url=server.base, timeout=10, headers=headers) as api:
        r = await api.post(
            "/api/v1/inboxes",
            json={
                "name": "Shop chat",
                "channel": "webchat",
                "config": {"title": "Acme support", "identity_secret": IDENTITY_SECRET},
            },
        )
        assert r.status_code == 201, r.text
        inbox = r.json()
        r = await api.post(
            "/api/v1/customers",
            json={
                "name": "Victoria",
                "identities": [{"kind": "email", "value": VICTORIA}, {"kind": "external_id", "value": "77"}],
            },
        )
        assert r.status_code == 201, r.text
        # Victoria chatted before, signed in on the shop; an agent answered.
        r = await api.post(
            "/api/v1/widget/sessions",
            json={"inbox": inbox["public_token"], "user_id": "77", "user_hash": user_hash(IDENTITY_SECRET, "77")},
        )
        assert r.status_code == 200, r.text
        async with db.transaction() as s:
            earlier = await receive(
                s,
                InboundMessage(
                    identity_kind="webchat_visitor",
                    identity_value=r.json()["visitor_id"],
                    channel="webchat",
                    inbox_id=uuid.UUID(inbox["id"]),
                    external_id=f"{r.json()['visitor_id']}:{uuid.uuid4()}",
                    text=EARLIER,
                ),
            )
        r = await api.post(f"/api/v1/conversations/{earlier.conversation_id}/messages", json={"text": ANSWER})
        assert r.status_code == 201, r.text

    with serve_page(host_page(server.base, inbox["public_token"])) as site:
        context = await browser.new_context(locale="en-US", viewport={"width": 1100, "height": 820})
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        await page.goto(site)
        await page.get_by_role("button", name="Open chat").click()
        panel = page.get_by_role("dialog", name="Acme support")
        await panel.get_by_label("Leave your email so we can reply:").fill(VICTORIA)
        await panel.get_by_role("button", name="Save").click()
        note = panel.locator(".confirm-note")
        await expect(note).to_contain_text(f"We sent a link to {VICTORIA} to confirm it's you", timeout=WAIT_MS)
        await expect(note.get_by_role("button", name="Send the link again")).to_be_visible()
        await page.screenshot(path=shot("widget-confirm-link.png"))
        assert await panel.locator(".msg", has_text=EARLIER).count() == 0, "a typed address shows nobody's history"

        deadline = asyncio.get_running_loop().time() + 20
        while not any(VICTORIA in c.rcpt_tos for c in sink.received):
            assert asyncio.get_running_loop().time() < deadline, "the link was not mailed"
            await asyncio.sleep(0.1)
        (mail,) = [c.message() for c in sink.received if VICTORIA in c.rcpt_tos]
        body = mail.get_body(preferencelist=("plain",))
        assert body is not None
        found = re.search(re.escape(server.base) + r"/confirm-email/\S+", body.get_content())
        assert found, body.get_content()

        link_page = await context.new_page()
        await link_page.goto(found.group(0))
        await expect(link_page.get_by_role("heading")).to_have_text("Confirm your e-mail address")
        await link_page.get_by_role("button", name="Yes, this is my address").click()
        await expect(link_page.get_by_role("heading")).to_have_text(f"Thank you, {VICTORIA} is confirmed")

        await expect(note).to_contain_text(f"Thank you, {VICTORIA} is confirmed.", timeout=WAIT_MS)
        await expect(panel.locator(".msg", has_text=EARLIER)).to_be_visible(timeout=WAIT_MS)
        await expect(panel.locator(".msg", has_text=ANSWER)).to_be_visible()
        await page.screenshot(path=shot("widget-confirmed.png"))
        assert errors == []
        await context.close()
