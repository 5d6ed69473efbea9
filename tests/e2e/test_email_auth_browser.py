"""The desk marks an email whose sender is not proven, in English and in Russian.

The real server runs as a subprocess with its SMTP receiver and a local DNS server that
publishes ``p=reject`` DMARC for ``good.example`` and authorises only 192.0.2.10 to send for it.
A DKIM-signed message from the verified customer carries no mark; a forged one (same From, sent
from 127.0.0.1, unsigned) lands on a customer of its own and is marked *Unverified sender* /
*Отправитель не подтверждён*, with the SPF/DKIM/DMARC results in its tooltip.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from frontdesk.db import Database
from frontdesk.models import Customer, Identity, Message
from tests.builders import DEFAULT_PASSWORD, make_user
from tests.builders.mail import DkimKey, as_bytes, deliver, dkim_key, dkim_sign, message
from tests.conftest import truncate_all
from tests.e2e.browser import VIEWPORT, ServerProcess, shot
from tests.integration.dns_server import DnsServer
from tests.integration.webhook_sink import free_port

SECRET_KEY = "email-auth-browser-secret-0123456789"
MAIL_DOMAIN = "support.example.net"
HELP = f"help@{MAIL_DOMAIN}"
WAIT_MS = 20_000
GENUINE = "My order 42 has not arrived."
FORGED = "Please send my refund to this new card number."


class Setup:
    def __init__(self, db: Database, server: ServerProcess, smtp_port: int, key: DkimKey) -> None:
        self.db, self.server, self.smtp_port, self.key = db, server, smtp_port, key

    async def message(self, text: str) -> Message | None:
        async with self.db.transaction() as s:
            return (await s.scalars(select(Message).where(Message.text == text))).first()

    async def eventually(self, check: Any, what: str, timeout: float = 20) -> Any:
        deadline = asyncio.get_running_loop().time() + timeout
        while not (found := await check()):
            assert asyncio.get_running_loop().time() < deadline, what
            await asyncio.sleep(0.1)
        return found


@pytest.fixture
async def setup(database_url: str, tmp_path: Path) -> AsyncIterator[Setup]:
    key = dkim_key()
    zone = DnsServer().start()
    zone.add("good.example", "v=spf1 ip4:192.0.2.10 -all")
    zone.add("s1._domainkey.good.example", key.record)
    zone.add("_dmarc.good.example", "v=DMARC1; p=reject")
    db = Database(database_url)
    smtp_port = free_port()
    server = ServerProcess(
        database_url, tmp_path / "var", tmp_path / "server.log", SECRET_KEY,
        env={"FRONTDESK_SMTP_LISTEN": f"127.0.0.1:{smtp_port}", "FRONTDESK_MAIL_DOMAIN": MAIL_DOMAIN,
             "FRONTDESK_DNS_SERVERS": json.dumps([zone.address])},
    )  # fmt: skip
    try:
        await make_user(db, role="agent", email="nina.agent@example.com", name="Nina Agent")
        async with db.transaction() as s:
            anna = Customer(name="Anna Verified")
            s.add(anna)
            await s.flush()
            s.add(Identity(customer_id=anna.id, kind="email", value="anna@good.example", verified=True))
        await server.start()
        yield Setup(db, server, smtp_port, key)
    finally:
        await server.stop()
        zone.stop()
        await truncate_all(db)
        await db.dispose()


async def open_conversation(browser: Any, base: str, locale: str, conversation_id: str) -> Any:
    context = await browser.new_context(locale=locale, viewport=VIEWPORT)
    page = await context.new_page()
    await page.goto(f"{base}/desk")
    await page.locator("#email").fill("nina.agent@example.com")
    await page.locator("#password").fill(DEFAULT_PASSWORD)
    await page.locator("#sign-in").click()
    await page.wait_for_url(f"{base}/desk*")
    await page.goto(f"{base}/desk#/c/{conversation_id}")
    return page


async def test_the_desk_marks_an_unproven_sender(browser: Any, setup: Setup) -> None:
    from playwright.async_api import expect

    genuine = dkim_sign(as_bytes(message("Anna <anna@good.example>", HELP, body=GENUINE)), setup.key, "good.example")
    await deliver(setup.smtp_port, genuine, "anna@good.example", [HELP])
    forged = as_bytes(message("Anna <anna@good.example>", HELP, subject="Refund", body=FORGED))
    await deliver(setup.smtp_port, forged, "anna@good.example", [HELP])
    good = await setup.eventually(lambda: setup.message(GENUINE), "the genuine email is stored")
    bad = await setup.eventually(lambda: setup.message(FORGED), "the forged email is stored")
    assert good.customer_id != bad.customer_id

    page = await open_conversation(browser, setup.server.base, "en-US", str(good.conversation_id))
    await expect(page.locator("body")).to_have_attribute(
        "data-conversation-ready", str(good.conversation_id), timeout=WAIT_MS
    )
    panel = page.locator(f"#panel-{good.conversation_id}")
    await expect(panel.locator(".msg.in", has_text=GENUINE)).to_be_visible(timeout=WAIT_MS)
    await expect(panel.locator(".msg.in .auth-mark")).to_have_count(0)

    await page.goto(f"{setup.server.base}/desk#/c/{bad.conversation_id}")
    await expect(page.locator("body")).to_have_attribute(
        "data-conversation-ready", str(bad.conversation_id), timeout=WAIT_MS
    )
    mark = page.locator(f"#panel-{bad.conversation_id} .msg.in", has_text=FORGED).locator(".auth-mark")
    await expect(mark).to_have_text("Unverified sender", timeout=WAIT_MS)
    title = await mark.get_attribute("title")
    assert title is not None
    assert "DMARC fail, SPF fail, DKIM none" in title
    assert "merge suggestion" in title
    await page.screenshot(path=shot("desk-unverified-sender.png"))

    ru = await open_conversation(browser, setup.server.base, "ru-RU", str(bad.conversation_id))
    await expect(ru.locator("body")).to_have_attribute(
        "data-conversation-ready", str(bad.conversation_id), timeout=WAIT_MS
    )
    mark = ru.locator(f"#panel-{bad.conversation_id} .msg.in", has_text=FORGED).locator(".auth-mark")
    await expect(mark).to_have_text("Отправитель не подтверждён", timeout=WAIT_MS)
