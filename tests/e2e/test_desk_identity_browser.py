"""The desk's customer sidebar in a real browser, on the demo data (issue 9, items 1 and 12).

- Under "Conversations" the sidebar listed a customer's conversations with the literal text
  ``null`` / ``nullnull`` next to them for most customers (those with one channel, or with only
  open or only past conversations).
- Agents see which identities are unproven: an address a chat visitor typed is marked "not
  confirmed", and a customer known only by such claims carries a warning.

Needs ``apt-get install -y chromium`` and the ``playwright`` Python package (never ``playwright
install``). Without them the test skips — or fails under ``FRONTDESK_TEST_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from frontdesk import demo
from frontdesk.conversations.ingest import InboundMessage, receive
from frontdesk.db import Database
from frontdesk.models import Conversation, Identity, Inbox
from tests.conftest import truncate_all
from tests.e2e.browser import VIEWPORT, ServerProcess, shot, sign_in

pytestmark = pytest.mark.slow

WAIT_MS = 20_000
EN_AGENT = "james.carter@" + demo.DOMAIN  # the demo's agents keep their language: English
RU_AGENT = "anna.petrova@" + demo.DOMAIN  # and Russian
CLAIMED = "someone.else@example.org"


@pytest.fixture
async def world(database_url: str, tmp_path: Path) -> AsyncIterator[tuple[Database, ServerProcess]]:
    db = Database(database_url)
    process = ServerProcess(database_url, tmp_path / "var", tmp_path / "server.log", "identity-browser-secret-0123")
    try:
        await demo.load(db, customers=40)
        await process.start()
        yield db, process
    finally:
        await process.stop()
        await truncate_all(db)
        await db.dispose()


async def open_conversation(page: Any, base: str, conversation_id: uuid.UUID) -> Any:
    await page.goto(f"{base}/desk#/c/{conversation_id}")
    await page.locator(f'body[data-conversation-ready="{conversation_id}"]').wait_for(state="attached", timeout=WAIT_MS)
    sidebar = page.locator(f"#panel-{conversation_id} .customer-panel")
    await sidebar.locator(".side-conv").first.wait_for(timeout=WAIT_MS)
    return sidebar


async def test_sidebar_conversations_and_unproven_identities(browser: Any, world: tuple[Database, ServerProcess]):
    from playwright.async_api import expect

    db, server = world
    base = server.base
    # A demo customer with a proven address whose conversations are on one channel (most are).
    async with db.transaction() as s:
        one_channel = (
            select(Conversation.customer_id)
            .group_by(Conversation.customer_id)
            .having(func.count(func.distinct(Conversation.channel)) == 1)
        )
        proven = select(Identity.customer_id).where(Identity.kind == "email", Identity.verified.is_(True))
        demo_conversation = (
            await s.scalars(
                select(Conversation.id)
                .where(Conversation.customer_id.in_(one_channel), Conversation.customer_id.in_(proven))
                .order_by(Conversation.id)
                .limit(1)
            )
        ).one()
        chat = (await s.scalars(select(Inbox).where(Inbox.channel == "webchat").limit(1))).one()

    # A chat visitor who typed an address nobody has: kept, but only as their claim.
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        r = await client.post(
            "/api/v1/widget/sessions", json={"inbox": chat.public_token, "name": "Claire Claim", "email": CLAIMED}
        )
    assert r.status_code == 200, r.text
    async with db.transaction() as s:
        claimed = await receive(
            s,
            InboundMessage(
                identity_kind="webchat_visitor",
                identity_value=r.json()["visitor_id"],
                channel="webchat",
                inbox_id=chat.id,
                external_id=f"{r.json()['visitor_id']}:1",
                text="Please change the delivery address of my order",
            ),
        )

    context = await browser.new_context(locale="en-US", viewport=VIEWPORT)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    await sign_in(page, base, EN_AGENT, ("Email", "Password", "Sign in"), demo.AGENT_PASSWORD)

    sidebar = await open_conversation(page, base, demo_conversation)
    conversations = sidebar.locator(".side-conversations")
    await expect(conversations.locator(".side-conv").first).to_be_visible()
    assert "null" not in await conversations.inner_text()
    assert "null" not in await sidebar.inner_text()
    contact = sidebar.locator(".identities li", has=page.locator(".identity-kind", has_text="E-mail"))
    await expect(contact.first.locator(".ok")).to_have_text("verified")
    await expect(sidebar.locator(".claimed-only")).to_have_count(0)

    sidebar = await open_conversation(page, base, claimed.conversation_id)
    assert "null" not in await sidebar.locator(".side-conversations").inner_text()
    email = sidebar.locator(".identities li", has_text=CLAIMED)
    await expect(email.locator(".unproven")).to_have_text("not confirmed")
    await expect(email.locator(".unproven")).to_have_attribute(
        "title", "Given by the customer; nobody proved it is theirs."
    )
    warning = sidebar.locator(".claimed-only")
    await expect(warning).to_be_visible()
    await expect(warning).to_contain_text("Identity not confirmed")
    await page.screenshot(path=shot("desk-unproven-identity.png"))

    # The same in Russian.
    ru = await browser.new_context(locale="ru-RU", viewport=VIEWPORT)
    page_ru = await ru.new_page()
    await sign_in(page_ru, base, RU_AGENT, ("Электронная почта", "Пароль", "Войти"), demo.AGENT_PASSWORD)
    sidebar_ru = await open_conversation(page_ru, base, claimed.conversation_id)
    await expect(sidebar_ru.locator(".identities li", has_text=CLAIMED).locator(".unproven")).to_have_text(
        "не подтверждён"
    )
    await expect(sidebar_ru.locator(".claimed-only")).to_contain_text("Личность не подтверждена")
    assert errors == []
    await ru.close()
    await context.close()
