"""The agent desktop (``/desk``) in a real browser (Debian's Chromium driven by Playwright).

The scenario of issue 4: a customer chats from the widget on a shop's page and later emails from
the same address (a real SMTP conversation with the server's built-in receiver); an agent signs in
through the sign-in page, finds that one customer by search, sees both channels in the timeline,
replies in the chat (the customer sees it in the widget), adds a note with an @mention, tags,
snoozes and resolves; a supervisor, whose browser asks for Russian, reassigns a conversation with
a note. Along the way: a customer's ``<img onerror>`` is shown as text, a draft and the open tabs
survive a reload, a new email appears in the list live, and ``/desk#/c/<id>`` opens a
conversation and sets the readiness markers the benchmark waits for.

Screenshots (1280 by 800): ``test-artifacts/desk-inbox.png`` and ``test-artifacts/desk-conversation.png``.

Needs ``apt-get install -y chromium`` and the ``playwright`` Python package (never
``playwright install``). Without them the test skips — or fails under
``FRONTDESK_TEST_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import asyncio
import re
import smtplib
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select

from frontdesk.db import Database
from frontdesk.models import Message, User
from tests.builders import make_token, make_user
from tests.conftest import truncate_all
from tests.e2e.browser import VIEWPORT, ServerProcess, serve_page, shot, sign_in
from tests.integration.webhook_sink import free_port

pytestmark = pytest.mark.slow


SECRET_KEY = "desk-browser-test-secret-0123456789"
MAIL_DOMAIN = "support.example.net"
AGENT_ZONE = "Europe/Moscow"


WAIT_MS = 20_000

CUSTOMER_EMAIL = "ada.lovelace@example.org"
CHAT_HELLO = "Hello from the chat: my order #42 has not arrived 📦"
HOSTILE = "<img src=x onerror=alert(1)>"
EMAIL_TEXT = "Hello again, by email this time. Can I get an invoice for order #42?"
CANNED = "Thanks for waiting, {{agent.name}} here: the courier has it, it arrives tomorrow before 18:00 🚚"
REPLY = "Thanks for waiting, Nina Agent here: the courier has it, it arrives tomorrow before 18:00 🚚"
NOTE = "Checked with the courier; refund if it slips again."
DRAFT = "Черновик ответа — не отправлен ✍️"
TRANSFER_NOTE = "Передаю: вопрос по счёту"


# -- the server: a subprocess with the SMTP receiver on ----------------------------------------------


HOST_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Acme Shop</title>
<script src="__FRONTDESK__/widget.js" data-inbox="__INBOX__" data-locale="en" async></script>
</head><body><h1>Acme Shop</h1><p>Questions about your order? Use the chat button.</p></body></html>"""


def shop_page(frontdesk_base: str, inbox_token: str) -> str:
    """The customer's site, embedding the widget like a real shop would."""
    return HOST_PAGE.replace("__FRONTDESK__", frontdesk_base).replace("__INBOX__", inbox_token)


# -- fixtures ----------------------------------------------------------------------------------------


class World:
    def __init__(
        self,
        db: Database,
        server: ServerProcess,
        smtp_port: int,
        admin: str,
        agent: User,
        second: User,
        supervisor: User,
    ) -> None:
        self.db = db
        self.server = server
        self.smtp_port = smtp_port
        self.admin = {"Authorization": f"Bearer {admin}"}
        self.agent = agent
        self.second = second
        self.supervisor = supervisor

    async def api(self, method: str, path: str, body: Any = None) -> Any:
        async with httpx.AsyncClient(base_url=self.server.base, timeout=10) as client:
            r = await client.request(method, f"/api/v1{path}", json=body, headers=self.admin)
        assert r.status_code < 300, r.text
        return r.json() if r.content else None

    async def eventually(self, check: Any, what: str, timeout: float = 15) -> Any:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            found = await check()
            if found:
                return found
            assert asyncio.get_running_loop().time() < deadline, what
            await asyncio.sleep(0.1)

    async def message(self, text: str) -> Message | None:
        async with self.db.transaction() as s:
            return (await s.scalars(select(Message).where(Message.text == text))).first()

    def send_email(self, sender: str, subject: str, body: str) -> None:
        mail = EmailMessage()
        mail["From"] = sender
        mail["To"] = f"help@{MAIL_DOMAIN}"
        mail["Subject"] = subject
        mail["Message-ID"] = make_msgid(domain="mail.example.org")
        mail.set_content(body)
        address = sender.rpartition("<")[2].strip(">")
        with smtplib.SMTP("127.0.0.1", self.smtp_port, timeout=30) as smtp:
            smtp.send_message(mail, from_addr=address, to_addrs=[f"help@{MAIL_DOMAIN}"])


@pytest.fixture
async def world(database_url: str, tmp_path: Path) -> AsyncIterator[World]:
    db = Database(database_url)
    smtp_port = free_port()
    server = ServerProcess(
        database_url, tmp_path / "var", tmp_path / "server.log", SECRET_KEY,
        env={"FRONTDESK_SMTP_LISTEN": f"127.0.0.1:{smtp_port}", "FRONTDESK_MAIL_DOMAIN": MAIL_DOMAIN},
    )  # fmt: skip
    try:
        admin = await make_token(db, await make_user(db, role="admin", email="root@example.com", name="Root Admin"))
        agent = await make_user(db, role="agent", email="nina.agent@example.com", name="Nina Agent")
        second = await make_user(db, role="agent", email="oleg.second@example.com", name="Oleg Second")
        supervisor = await make_user(db, role="supervisor", email="sofia.lead@example.com", name="Sofia Lead")
        await server.start()
        yield World(db, server, smtp_port, admin, agent, second, supervisor)
    finally:
        await server.stop()
        await truncate_all(db)
        await db.dispose()


# -- the scenario --------------------------------------------------------------------------------------


async def test_agent_desktop_chat_and_email_customer(browser: Any, world: World) -> None:
    from playwright.async_api import expect

    base = world.server.base
    inbox = await world.api(
        "POST", "/inboxes", {"name": "Shop chat", "channel": "webchat", "config": {"title": "Acme support"}}
    )
    canned = {"shortcut": "eta", "title": "Delivery estimate", "body": CANNED, "scope": "global"}
    await world.api("POST", "/canned-responses", canned)
    with serve_page(shop_page(base, inbox["public_token"])) as site:
        # 1. The customer chats from the shop's page; nobody is online, so the widget asks for an email.
        shop = await browser.new_context(locale="en-US", viewport={"width": 1000, "height": 800})
        customer = await shop.new_page()
        await customer.goto(site)
        await customer.get_by_role("button", name="Open chat").click()
        widget = customer.get_by_role("dialog", name="Acme support")
        await widget.get_by_label("Leave your email so we can reply:").fill(CUSTOMER_EMAIL)
        await widget.get_by_role("button", name="Save").click()
        await expect(widget.locator(".availability")).to_contain_text(CUSTOMER_EMAIL, timeout=WAIT_MS)
        box = widget.get_by_label("Message")
        for text in (CHAT_HELLO, HOSTILE):
            await box.fill(text)
            await box.press("Enter")
            await expect(widget.locator(".msg.in:not(.pending)", has_text=text).locator(".state")).to_have_text(
                "Sent", timeout=WAIT_MS
            )
        chat_message = await world.eventually(lambda: world.message(CHAT_HELLO), "the chat message is stored")
        chat_id = str(chat_message.conversation_id)

        # 2. Later the same customer writes an email from the same address (real SMTP).
        await asyncio.to_thread(
            world.send_email, f"Ada Lovelace <{CUSTOMER_EMAIL}>", "Invoice for order #42", EMAIL_TEXT
        )
        email_message = await world.eventually(lambda: world.message(EMAIL_TEXT), "the email is stored")
        email_id = str(email_message.conversation_id)
        assert email_message.customer_id == chat_message.customer_id, "one customer across chat and email"
        assert email_id != chat_id

        # 3. An agent signs in through the sign-in page.
        desk_context = await browser.new_context(locale="en-US", timezone_id=AGENT_ZONE, viewport=VIEWPORT)
        desk = await desk_context.new_page()
        dialogs: list[str] = []
        errors: list[str] = []
        desk.on("dialog", lambda d: (dialogs.append(d.message), asyncio.ensure_future(d.dismiss())))
        desk.on("pageerror", lambda e: errors.append(str(e)))
        await sign_in(desk, base, "nina.agent@example.com", ("Email", "Password", "Sign in"))
        # A teammate is on the desk too; they get told about mentions and assignments.
        oleg_context = await browser.new_context(locale="en-US", viewport=VIEWPORT)
        oleg = await oleg_context.new_page()
        oleg.on("pageerror", lambda e: errors.append(str(e)))
        await sign_in(oleg, base, "oleg.second@example.com", ("Email", "Password", "Sign in"))

        # The inbox: the All view lists both conversations, each marked by its channel.
        await desk.locator("button.view[data-view='all']").click()
        listbox = desk.get_by_role("listbox", name="All")
        await expect(listbox.locator(f"#row-{chat_id} .ch-badge")).to_have_text("Web chat", timeout=WAIT_MS)
        await expect(listbox.locator(f"#row-{email_id} .ch-badge")).to_have_text("E-mail")
        await expect(listbox.locator(f"#row-{email_id}")).to_contain_text("Invoice for order #42")

        # A new email arrives while the desk is open: its row appears without a reload.
        await asyncio.to_thread(world.send_email, "Bob Stone <bob.stone@example.org>", "Live row", "Is it live?")
        await expect(listbox.get_by_role("option", name="Live row")).to_be_visible(timeout=WAIT_MS)
        await expect(listbox.get_by_role("option").first).to_contain_text("Bob Stone")
        await desk.screenshot(path=shot("desk-inbox.png"))

        # 4. Search finds the one customer with both channels; choosing them opens their conversation.
        await desk.keyboard.press("/")
        search = desk.get_by_role("combobox", name="Search customers and conversations")
        await expect(search).to_be_focused()
        await search.fill(CUSTOMER_EMAIL)
        results = desk.get_by_role("listbox", name="Search results")
        customers = results.locator(".result-customer")
        await expect(customers).to_have_count(1, timeout=WAIT_MS)
        await expect(customers).to_contain_text(CUSTOMER_EMAIL)
        await customers.click()
        email_panel = desk.locator(f"#panel-{email_id}")
        await expect(email_panel).to_be_visible(timeout=WAIT_MS)
        await expect(desk.locator("body")).to_have_attribute("data-conversation-ready", email_id, timeout=WAIT_MS)

        # Both channels in one timeline: the email itself, and the earlier chat marked as web chat.
        thread = email_panel.locator(".thread")
        await expect(thread.locator(".msg.in[data-channel='email']")).to_contain_text(EMAIL_TEXT)
        earlier_chat = thread.locator(".tl-foreign[data-channel='webchat']")
        await expect(earlier_chat.filter(has_text=CHAT_HELLO)).to_have_count(1)
        await expect(earlier_chat.filter(has_text=CHAT_HELLO).locator(".ch-badge")).to_have_text("Web chat")
        # The customer's <img onerror> is text, never markup.
        await expect(earlier_chat.filter(has_text=HOSTILE)).to_have_count(1)
        assert await desk.locator(".thread img").count() == 0
        sidebar = email_panel.locator(".customer-panel")
        await expect(sidebar).to_contain_text(CUSTOMER_EMAIL)
        await expect(sidebar.locator(".side-conv")).to_have_count(2)

        # 5. Open the chat from the sidebar (a second tab) and reply there.
        await sidebar.locator(".side-conv.ch-edge-webchat").click()
        chat_panel = desk.locator(f"#panel-{chat_id}")
        await expect(chat_panel).to_be_visible(timeout=WAIT_MS)
        await expect(desk.get_by_role("tab")).to_have_count(2)
        chat_thread = chat_panel.locator(".thread")
        hostile = chat_thread.locator(".msg.in .msg-body", has_text="onerror")
        await expect(hostile).to_have_text(HOSTILE, timeout=WAIT_MS)
        assert await chat_thread.locator("img").count() == 0

        # The visitor's typing shows on the desk.
        await box.press_sequentially("One more thing")
        await expect(chat_panel.locator(".typing-line")).to_contain_text("is typing", timeout=WAIT_MS)
        await box.fill("")

        await desk.keyboard.press("r")
        composer = chat_panel.get_by_label("Message", exact=True)
        await expect(composer).to_be_focused()
        await expect(chat_panel.get_by_label("Reply via")).to_have_value("webchat")
        await composer.press_sequentially("Thanks Ada")
        # Our typing reaches the widget, named.
        await expect(widget.locator(".typing")).to_contain_text("Nina Agent", timeout=WAIT_MS)
        # A canned response: "/" and its shortcut, rendered by the server with the agent's name.
        await composer.fill("")
        await composer.press_sequentially("/et")
        await expect(chat_panel.get_by_role("option", name="/eta")).to_be_visible(timeout=WAIT_MS)
        await composer.press("Enter")
        await expect(composer).to_have_value(REPLY)
        await composer.press("Control+Enter")
        await expect(chat_thread.locator(".msg.out", has_text=REPLY)).to_be_visible(timeout=WAIT_MS)
        await expect(composer).to_have_value("")
        # The customer sees it in the widget; the desk shows it delivered.
        await expect(widget.locator(".msg.out", has_text=REPLY)).to_be_visible(timeout=WAIT_MS)
        await expect(chat_thread.locator(".msg.out", has_text=REPLY).locator(".msg-status")).not_to_have_text(
            "Queued", timeout=WAIT_MS
        )

        # 6. An internal note with an @mention picked from the autocomplete.
        await composer.press("Escape")
        await desk.keyboard.press("n")
        await expect(composer).to_be_focused()
        await composer.press_sequentially(f"{NOTE} @ole")
        suggestion = chat_panel.get_by_role("option", name="Oleg Second")
        await expect(suggestion).to_be_visible(timeout=WAIT_MS)
        await composer.press("Enter")
        await expect(composer).to_have_value(f"{NOTE} @oleg.second ")
        await composer.press("Control+Enter")
        note = chat_thread.locator(".msg.note", has_text=NOTE)
        await expect(note).to_be_visible(timeout=WAIT_MS)
        await expect(note.locator(".note-label")).to_have_text("Internal note")
        stored_note = await world.message(f"{NOTE} @oleg.second")
        assert stored_note is not None
        assert stored_note.direction == "note"
        mentioned = oleg.locator(".toast", has_text="Nina Agent mentioned you")
        await expect(mentioned).to_be_visible(timeout=WAIT_MS)
        await expect(mentioned).to_contain_text(NOTE)
        await mentioned.get_by_role("button", name="Show").click()
        await expect(oleg.locator("body")).to_have_attribute("data-conversation-ready", chat_id, timeout=WAIT_MS)
        await expect(oleg.locator(f"#panel-{chat_id} .msg.note", has_text=NOTE)).to_be_visible()

        # 7. Tags (contact reasons), then snooze until a time in the agent's own zone, then resolve.
        tag_input = chat_panel.get_by_label("Add a tag (contact reason)")
        await tag_input.fill("Late Delivery")
        await tag_input.press("Enter")
        await expect(chat_panel.locator(".tag-chip", has_text="#late-delivery")).to_be_visible(timeout=WAIT_MS)
        conversation = await world.api("GET", f"/conversations/{chat_id}")
        assert conversation["tags"] == ["late-delivery"]

        zone = ZoneInfo(AGENT_ZONE)
        wake = (datetime.now(zone) + timedelta(days=2)).replace(hour=10, minute=30, second=0, microsecond=0)
        await chat_panel.get_by_role("button", name="Snooze").click()
        snooze = chat_panel.get_by_role("dialog", name="Snooze")
        await snooze.get_by_label("Snooze until (your time)").fill(wake.strftime("%Y-%m-%dT%H:%M"))
        await snooze.get_by_role("button", name="Snooze").click()
        await expect(chat_panel.locator(".conv-title-row .status-badge")).to_have_text("Snoozed", timeout=WAIT_MS)
        conversation = await world.api("GET", f"/conversations/{chat_id}")
        assert conversation["status"] == "snoozed"
        assert datetime.fromisoformat(conversation["snoozed_until"]) == wake, "10:30 Moscow time, stored in UTC"

        await chat_thread.focus()
        await desk.keyboard.press("e")
        await expect(chat_panel.locator(".conv-title-row .status-badge")).to_have_text("Resolved", timeout=WAIT_MS)
        assert (await world.api("GET", f"/conversations/{chat_id}"))["status"] == "resolved"
        # The view counts follow live: three active conversations before, two now.
        await expect(desk.locator("button.view[data-view='all'] .count")).to_have_text("2", timeout=WAIT_MS)
        await expect(desk.locator("button.view[data-view='status:resolved'] .count")).to_have_text("1")
        await chat_thread.blur()
        await desk.screenshot(path=shot("desk-conversation.png"))

        # 8. A draft and the open tabs survive a reload.
        await desk.locator(f"#tab-{email_id}").click()
        email_composer = email_panel.get_by_label("Message", exact=True)
        await email_composer.fill(DRAFT)
        await desk.reload()
        await desk.locator('body[data-inbox-ready="1"]').wait_for(state="attached", timeout=WAIT_MS)
        await expect(desk.get_by_role("tab")).to_have_count(2)
        await expect(desk.locator(f"#tab-{email_id}")).to_have_attribute("aria-selected", "true")
        await expect(email_panel.get_by_label("Message", exact=True)).to_have_value(DRAFT, timeout=WAIT_MS)

        # 9. A supervisor whose browser asks for Russian reassigns the email conversation with a note.
        lead_context = await browser.new_context(locale="ru-RU", timezone_id=AGENT_ZONE, viewport=VIEWPORT)
        lead = await lead_context.new_page()
        lead.on("pageerror", lambda e: errors.append(str(e)))
        await sign_in(lead, base, "sofia.lead@example.com", ("Электронная почта", "Пароль", "Войти"))
        assert await lead.locator("html").get_attribute("lang") == "ru"
        await expect(lead.locator("button.view[data-view='mine'] .view-label")).to_have_text("Мои")
        await lead.goto(f"{base}/desk#/c/{email_id}")
        await expect(lead.locator("body")).to_have_attribute("data-conversation-ready", email_id, timeout=WAIT_MS)
        lead_panel = lead.locator(f"#panel-{email_id}")
        await expect(lead_panel.get_by_role("button", name="Ответить")).to_be_visible()
        await lead_panel.get_by_role("button", name="Назначить…").click()
        assign = lead.get_by_role("dialog", name="Назначить или передать")
        await assign.get_by_label("Оператор").select_option(label="Oleg Second")
        await assign.get_by_label("Заметка").fill(TRANSFER_NOTE)
        await assign.get_by_role("button", name="Назначить", exact=True).click()
        await expect(assign).to_be_hidden()
        await expect(lead_panel.locator(".conv-assignee")).to_contain_text("Oleg Second", timeout=WAIT_MS)
        await expect(lead_panel.locator(".msg.note", has_text=TRANSFER_NOTE)).to_be_visible(timeout=WAIT_MS)
        conversation = await world.api("GET", f"/conversations/{email_id}")
        assert conversation["assignee_id"] == str(world.second.id)
        transfer = await world.message(TRANSFER_NOTE)
        assert transfer is not None
        assert transfer.direction == "note"
        # The agent's desk follows live: the header of that tab names the new assignee.
        await expect(email_panel.locator(".conv-assignee")).to_contain_text("Oleg Second", timeout=WAIT_MS)
        await lead.screenshot(path=shot("desk-supervisor-ru.png"))
        assigned = oleg.locator(".toast", has_text="Assigned to you")
        await expect(assigned).to_be_visible(timeout=WAIT_MS)
        await expect(oleg.get_by_role("button", name=re.compile(r"^Mine\s*1"))).to_be_visible(timeout=WAIT_MS)

        assert dialogs == [], "no script from customer text ever ran"
        assert errors == []
        await lead_context.close()
        await oleg_context.close()
        await desk_context.close()
        await shop.close()


async def test_presence_and_a_routing_offer_accepted_from_the_desk(browser: Any, world: World) -> None:
    """An agent goes available from the header; a new email is offered to them with a countdown;
    Accept opens it in a tab and assigns it to them."""
    from playwright.async_api import expect

    base = world.server.base
    await world.api("POST", "/queues", {"name": "Mail", "channels": ["email"], "offer_timeout_seconds": 120})
    context = await browser.new_context(locale="en-US", timezone_id=AGENT_ZONE, viewport=VIEWPORT)
    desk = await context.new_page()
    errors: list[str] = []
    desk.on("pageerror", lambda e: errors.append(str(e)))
    await sign_in(desk, base, "nina.agent@example.com", ("Email", "Password", "Sign in"))

    status = desk.get_by_label("My status")
    await expect(status).to_have_value("offline", timeout=WAIT_MS)
    await status.select_option("available")
    await expect(desk.locator(".presence-dot")).to_have_class("presence-dot ps-available")
    presence = await world.api("GET", f"/agents/{world.agent.id}/presence")
    assert presence["status"] == "available"

    await asyncio.to_thread(
        world.send_email, "Grace Hopper <grace.hopper@example.org>", "Offer me", "Route me, please."
    )
    offer = desk.get_by_role("alertdialog", name="New conversation for you")
    await expect(offer).to_be_visible(timeout=WAIT_MS)
    await expect(offer).to_contain_text("Grace Hopper")
    await expect(offer.locator(".ch-badge")).to_have_text("E-mail")
    await expect(offer.locator(".countdown")).to_have_text(re.compile(r"^\d+ s left$"))
    await desk.screenshot(path=shot("desk-offer.png"))
    stored = await world.eventually(lambda: world.message("Route me, please."), "the email is stored")
    conversation_id = str(stored.conversation_id)

    await offer.get_by_role("button", name="Accept").click()
    await expect(offer).to_be_hidden()
    await expect(desk.locator(f"#panel-{conversation_id}")).to_be_visible(timeout=WAIT_MS)
    await expect(desk.locator("body")).to_have_attribute("data-conversation-ready", conversation_id, timeout=WAIT_MS)
    await expect(desk.locator(f"#panel-{conversation_id} .conv-assignee")).to_contain_text("Nina Agent")
    conversation = await world.api("GET", f"/conversations/{conversation_id}")
    assert conversation["assignee_id"] == str(world.agent.id)
    # It is the agent's now: the Mine view lists it.
    await desk.locator("button.view[data-view='mine']").click()
    await expect(desk.get_by_role("listbox", name="Mine").locator(f"#row-{conversation_id}")).to_be_visible(
        timeout=WAIT_MS
    )

    # The profile menu switches the desk to Russian and to another time zone, for good.
    await desk.get_by_role("button", name="Profile").click()
    profile = desk.get_by_role("dialog", name="Profile")
    await profile.get_by_label("Language").select_option("ru")
    await profile.get_by_label("Time zone").select_option("Asia/Tokyo")
    await profile.get_by_role("button", name="Save").click()
    await expect(desk.get_by_label("Мой статус")).to_have_value("available", timeout=WAIT_MS)
    assert await desk.locator("html").get_attribute("lang") == "ru"
    me = await world.api("GET", f"/users/{world.agent.id}")
    assert (me["locale"], me["time_zone"]) == ("ru", "Asia/Tokyo")
    assert errors == []
    await context.close()
