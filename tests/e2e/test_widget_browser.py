"""The web-chat widget in a real browser (Debian's Chromium driven by Playwright).

The real server runs as a subprocess (so it can be stopped and restarted on the same port); a
host page on a second local origin embeds ``<script src="http://127.0.0.1:<port>/widget.js"
data-inbox=…>`` like a customer's site would. What a visitor and an agent would check: the chat
opens, Cyrillic and emoji go through, an agent's reply appears, a reload keeps the history and the
draft, a message typed while the server is down is delivered exactly once after it comes back,
and an agent's ``<script>`` is shown as text. Screenshots land in ``test-artifacts/``.

Needs ``apt-get install -y chromium`` and the ``playwright`` Python package (dev extra; never
``playwright install``). Without them the test skips — or fails under
``FRONTDESK_TEST_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from websockets.asyncio.client import connect

from frontdesk.db import Database
from frontdesk.models import Attachment, CustomerEvent, Identity, Message
from tests.builders import make_token, make_user
from tests.conftest import truncate_all
from tests.e2e.browser import ServerProcess, serve_page, shot

pytestmark = pytest.mark.slow


HOST_PAGE = Path(__file__).with_name("widget_host.html")


SECRET_KEY = "widget-browser-test-secret-0123456789"
IDENTITY_SECRET = "acme-identity-secret"
WAIT_MS = 20_000


# -- the server, restartable on one port -------------------------------------------------------------


# -- the customer's site: a second origin ------------------------------------------------------------


def host_page(frontdesk_base: str, inbox_token: str, locale: str = "en") -> str:
    """The customer's site (``widget_host.html``) embedding the widget from ``frontdesk_base``."""
    return (
        HOST_PAGE.read_text(encoding="utf-8")
        .replace("__FRONTDESK__", frontdesk_base)
        .replace("__INBOX__", inbox_token)
        .replace("__LOCALE__", locale)
    )


# -- fixtures ----------------------------------------------------------------------------------------


class Desk:
    def __init__(self, db: Database, server: ServerProcess, admin: str, agent: str) -> None:
        self.db = db
        self.server = server
        self.admin = {"Authorization": f"Bearer {admin}"}
        self.agent = {"Authorization": f"Bearer {agent}"}
        self.agent_token = agent
        self.site = ""  # the customer's page that embeds the widget (serve_page)

    async def create_inbox(self, **config: Any) -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=self.server.base, timeout=10) as client:
            r = await client.post(
                "/api/v1/inboxes",
                json={"name": f"Website chat {uuid.uuid4().hex[:6]}", "channel": "webchat", "config": config},
                headers=self.admin,
            )
        assert r.status_code == 201, r.text
        return dict(r.json())

    async def reply(self, conversation_id: uuid.UUID, text: str) -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=self.server.base, timeout=10) as client:
            r = await client.post(
                f"/api/v1/conversations/{conversation_id}/messages", json={"text": text}, headers=self.agent
            )
        assert r.status_code == 201, r.text
        return dict(r.json())

    async def post(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=self.server.base, timeout=10) as client:
            r = await client.post(path, json=body, headers=self.agent)
        assert r.status_code in (200, 201), r.text
        return dict(r.json())

    async def eventually(self, check: Any, what: str, timeout: float = 10) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not await check():
            assert asyncio.get_running_loop().time() < deadline, what
            await asyncio.sleep(0.1)

    async def messages(self, **where: Any) -> list[Message]:
        async with self.db.transaction() as s:
            q = select(Message)
            for k, v in where.items():
                q = q.where(getattr(Message, k) == v)
            return list((await s.scalars(q.order_by(Message.created_at))).all())


@pytest.fixture
async def desk(database_url: str, tmp_path: Path) -> AsyncIterator[Desk]:
    db = Database(database_url)
    server = ServerProcess(database_url, tmp_path / "var", tmp_path / "server.log", SECRET_KEY)
    try:
        admin = await make_token(db, await make_user(db, role="admin"))
        agent = await make_token(db, await make_user(db, role="agent", name="Мария Support"))
        await server.start()
        yield Desk(db, server, admin, agent)
    finally:
        await server.stop()
        await truncate_all(db)
        await db.dispose()


async def agent_recv(ws: Any, pred: Callable[[dict[str, Any]], bool], timeout: float = 10) -> dict[str, Any]:
    async def _loop() -> dict[str, Any]:
        while True:
            msg = json.loads(await ws.recv())
            if pred(msg):
                return dict(msg)

    return await asyncio.wait_for(_loop(), timeout)


def typing_of(conversation_id: uuid.UUID, on: bool) -> Callable[[dict[str, Any]], bool]:
    def pred(m: dict[str, Any]) -> bool:
        data = m.get("data") or {}
        return bool(
            m.get("type") == "conversation.typing"
            and data.get("conversation_id") == str(conversation_id)
            and data.get("on") is on
        )

    return pred


# -- tests -------------------------------------------------------------------------------------------

HELLO = "Привет! Где мой заказ №42? 🚚📦 Спасибо 🙏"
REPLY = "Здравствуйте! 👋 Заказ уже в пути, приедет завтра."
HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2"> <b>bold?</b>'
WHILE_DOWN = "Пока сервер лежал: это сообщение не должно потеряться ✅"


async def test_chat_reply_reload_and_restart_delivers_once(browser: Any, desk: Desk, backend: str) -> None:
    from playwright.async_api import expect

    inbox = await desk.create_inbox(title="Acme support", greeting="Hi! Ask us anything.")
    token = inbox["public_token"]
    key = f"frontdesk:{token}:"
    with serve_page(host_page(desk.server.base, token)) as site:
        context = await browser.new_context(locale="en-US", viewport={"width": 1100, "height": 820})
        page = await context.new_page()
        page_errors: list[str] = []
        page.on("pageerror", lambda e: page_errors.append(str(e)))
        await page.goto(site)

        # Launcher -> window; before the first message it says what it can do and when replies come.
        launcher = page.get_by_role("button", name="Open chat")
        await expect(launcher).to_be_visible(timeout=WAIT_MS)
        await launcher.click()
        panel = page.get_by_role("dialog", name="Acme support")
        await expect(panel).to_be_visible()
        await expect(panel.locator(".greeting")).to_have_text("Hi! Ask us anything.", timeout=WAIT_MS)
        await expect(panel.locator(".can")).to_contain_text("images and PDF")
        # No agent is online: replies come by email, and the widget asks for the address.
        await expect(panel.locator(".availability")).to_contain_text("answer by email")
        email_box = panel.get_by_label("Leave your email so we can reply:")
        await email_box.fill("ada@example.com")
        await panel.get_by_role("button", name="Save").click()
        await expect(panel.locator(".availability")).to_contain_text("ada@example.com")
        # The host page's hostile CSS does not reach inside the widget.
        assert (
            await page.get_by_role("button", name="Close chat").evaluate("b => getComputedStyle(b).backgroundColor")
            == "rgb(37, 99, 235)"
        ), "the launcher keeps the widget's accent colour, not the page's hotpink"

        box = panel.get_by_label("Message")
        await box.fill(HELLO)
        await box.press("Enter")
        sent = panel.locator(".msg.in:not(.pending)", has_text=HELLO)
        await expect(sent.locator(".state")).to_have_text("Sent", timeout=WAIT_MS)

        stored = await desk.messages(text=HELLO)
        assert len(stored) == 1, "the visitor's message is stored once, byte for byte"
        conversation_id = stored[0].conversation_id
        assert stored[0].channel == "webchat"
        async with desk.db.transaction() as s:
            emails = (
                await s.scalars(
                    select(Identity.value).where(
                        Identity.customer_id == stored[0].customer_id, Identity.kind == "email"
                    )
                )
            ).all()
        assert "ada@example.com" in emails, "the email asked for while away belongs to the visitor"

        # An agent replies through the API; it appears in the widget.
        await desk.reply(conversation_id, REPLY)
        reply = panel.locator(".msg.out", has_text=REPLY)
        await expect(reply).to_be_visible(timeout=WAIT_MS)
        await expect(reply.locator(".author")).to_have_text("Мария Support")

        # Read receipts both ways: the open widget tells the desk, and an agent's read shows "Seen".
        async def reply_read() -> bool:
            [m] = await desk.messages(text=REPLY)
            return bool((m.meta or {}).get("read_at"))

        await desk.eventually(reply_read, "the widget sent `read` for the agent's reply it showed")
        await desk.post(f"/api/v1/widget/messages/{stored[0].id}/read")
        await expect(sent.locator(".state")).to_have_text("Seen", timeout=WAIT_MS)

        # The visitor's typing reaches an agent's desk socket: on while typing, off after a pause.
        async with connect(f"ws://127.0.0.1:{desk.server.port}/ws") as agent_ws:
            await agent_ws.send(json.dumps({"type": "auth", "token": desk.agent_token}))
            await agent_recv(agent_ws, lambda m: m.get("type") == "hello")
            await box.press_sequentially("Ещё вопрос")
            on = await agent_recv(agent_ws, typing_of(conversation_id, True))
            assert on["data"]["author_type"] == "customer"
            await agent_recv(agent_ws, typing_of(conversation_id, False))
        await box.fill("")

        # An agent's <script> is text in the widget, never markup.
        await desk.reply(conversation_id, HOSTILE)
        hostile = panel.locator(".msg.out .bubble", has_text="window.__pwned = 1")
        await expect(hostile).to_be_visible(timeout=WAIT_MS)
        assert "<script>window.__pwned = 1</script>" in await hostile.inner_text()
        assert await hostile.evaluate("b => b.querySelectorAll('script, img').length") == 0
        await page.wait_for_timeout(300)
        assert await page.evaluate("window.__pwned") is None
        await page.screenshot(path=shot(f"widget-conversation-{backend}.png"))

        # Reload: same visitor, history kept, the unsent draft kept, the window still open.
        visitor_token = await page.evaluate(f"localStorage.getItem('{key}visitor')")
        assert visitor_token
        assert visitor_token.startswith("v1.")
        await box.fill("черновик, не отправлен ✍️")
        await page.reload()
        panel = page.get_by_role("dialog", name="Acme support")
        await expect(panel).to_be_visible(timeout=WAIT_MS)
        await expect(panel.locator(".msg.in", has_text=HELLO)).to_have_count(1, timeout=WAIT_MS)
        await expect(panel.locator(".msg.out", has_text=REPLY)).to_have_count(1)
        box = panel.get_by_label("Message")
        await expect(box).to_have_value("черновик, не отправлен ✍️")
        assert await page.evaluate(f"localStorage.getItem('{key}visitor')") == visitor_token

        # The server goes away while a message is typed: it is kept as pending, shown as sending.
        await desk.server.stop()
        await expect(panel.locator(".conn")).to_be_visible(timeout=WAIT_MS)
        await box.fill(WHILE_DOWN)
        await box.press("Enter")
        pending = panel.locator(".msg.pending", has_text=WHILE_DOWN)
        await expect(pending.locator(".state")).to_have_text("Sending…")
        queued = await page.evaluate(f"JSON.parse(localStorage.getItem('{key}pending'))")
        assert [p["text"] for p in queued] == [WHILE_DOWN]
        client_id = queued[0]["client_id"]
        await page.screenshot(path=shot(f"widget-offline-{backend}.png"))

        # Back up on the same port: the widget reconnects with backoff and resends; stored once.
        await desk.server.start()
        delivered = panel.locator(".msg.in:not(.pending)", has_text=WHILE_DOWN)
        await expect(delivered.locator(".state")).to_have_text("Sent", timeout=45_000)
        await expect(panel.locator(".conn")).to_be_hidden()
        assert await page.evaluate(f"JSON.parse(localStorage.getItem('{key}pending'))") == []
        once = [m for m in await desk.messages(text=WHILE_DOWN)]
        assert len(once) == 1
        assert (once[0].external_id or "").endswith(f":{client_id}")

        # A resend of an already stored message (its ack was lost) is acknowledged, not stored again.
        await page.evaluate(
            "([k, item]) => localStorage.setItem(k, JSON.stringify([item]))", [f"{key}pending", queued[0]]
        )
        await page.reload()
        panel = page.get_by_role("dialog", name="Acme support")
        await expect(panel.locator(".msg", has_text=WHILE_DOWN)).to_have_count(1, timeout=WAIT_MS)
        await expect(panel.locator(".msg.in:not(.pending)", has_text=WHILE_DOWN)).to_have_count(1, timeout=WAIT_MS)
        await page.wait_for_function(f"JSON.parse(localStorage.getItem('{key}pending') || '[]').length === 0")
        async with desk.db.transaction() as s:
            count = await s.scalar(
                select(func.count()).select_from(Message).where(Message.external_id.like(f"%:{client_id}"))
            )
        assert count == 1, "resent after the reconnect and again after a reload, stored exactly once"
        assert page_errors == []
        await context.close()


PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cf00000301010018dd8db00000000049454e44ae426082"
)


async def test_attachments_offers_identify_in_russian(browser: Any, desk: Desk, backend: str) -> None:
    from playwright.async_api import expect

    inbox = await desk.create_inbox(title="Поддержка Acme", identity_secret=IDENTITY_SECRET)
    token = inbox["public_token"]
    with serve_page(host_page(desk.server.base, token, locale="ru")) as site:
        context = await browser.new_context(locale="en-US", viewport={"width": 1100, "height": 820})
        page = await context.new_page()
        await page.goto(site)
        # data-locale="ru" wins over the browser's English.
        launcher = page.get_by_role("button", name="Открыть чат")
        await expect(launcher).to_be_visible(timeout=WAIT_MS)

        # identify after load joins the verified user; the queued page view landed as an event.
        user_hash = hmac.new(IDENTITY_SECRET.encode(), b"user-42", hashlib.sha256).hexdigest()
        await page.evaluate(
            "h => window.frontdesk('identify', {user_id: 'user-42', user_hash: h, name: 'Ада Лавлейс'})", user_hash
        )
        # The launcher is reached with Tab after the page's own button and opened with Enter.
        await page.focus("#host-button")
        await page.keyboard.press("Tab")
        assert await page.evaluate("document.activeElement.shadowRoot.activeElement.className") == "launcher"
        await page.keyboard.press("Enter")
        panel = page.get_by_role("dialog", name="Поддержка Acme")
        await expect(panel).to_be_visible(timeout=WAIT_MS)
        await expect(panel.locator(".status")).to_have_text("Нет на месте — ответим по почте", timeout=WAIT_MS)

        # Files are checked before upload: wrong type and too large are refused with a message.
        files = panel.locator("input[type=file]")
        await files.set_input_files({"name": "notes.txt", "mimeType": "text/plain", "buffer": b"hello"})
        await expect(panel.get_by_role("alert")).to_contain_text("notes.txt")
        big = b"%PDF-1.4\n" + b"0" * (10 * 1024 * 1024 + 10)
        await files.set_input_files({"name": "huge.pdf", "mimeType": "application/pdf", "buffer": big})
        await expect(panel.get_by_role("alert")).to_contain_text("huge.pdf")
        # A real image uploads (with progress) and goes with the message.
        await files.set_input_files({"name": "photo.png", "mimeType": "image/png", "buffer": PNG})
        await expect(panel.locator(".chip.ready", has_text="photo.png")).to_be_visible(timeout=WAIT_MS)
        box = panel.get_by_label("Сообщение")
        await box.fill("Фото упаковки 📷")
        await panel.get_by_role("button", name="Отправить").click()
        sent = panel.locator(".msg.in:not(.pending)", has_text="Фото упаковки 📷")
        await expect(sent.locator(".state")).to_have_text("Отправлено", timeout=WAIT_MS)
        await expect(sent.locator("img[alt='photo.png']")).to_be_visible()
        assert await sent.locator("img").evaluate("i => i.complete && i.naturalWidth") == 1, "the image downloads"

        [message] = await desk.messages(text="Фото упаковки 📷")
        async with desk.db.transaction() as s:
            atts = (await s.scalars(select(Attachment).where(Attachment.message_id == message.id))).all()
            ext = (
                await s.scalars(
                    select(Identity.value).where(
                        Identity.customer_id == message.customer_id, Identity.kind == "external_id"
                    )
                )
            ).all()
            viewed = await s.scalar(
                select(func.count())
                .select_from(CustomerEvent)
                .where(CustomerEvent.customer_id == message.customer_id, CustomerEvent.type == "page.viewed")
            )
        assert [(a.filename, a.content_type) for a in atts] == [("photo.png", "image/png")]
        assert any(v.endswith("user-42") for v in ext), "identify with a valid hash joined the verified user"
        assert viewed, "frontdesk('track') queued before load became a customer event"

        # Frontdesk starts a conversation itself: an offer with accept/decline; the answer is an event.
        await desk.post(
            "/api/v1/widget/notices",
            {
                "conversation_id": str(message.conversation_id),
                "text": "Доставка бесплатно сегодня",
                "offer": {"offer_id": "free-shipping", "title": "Бесплатная доставка 🎁", "body": "Только сегодня"},
            },
        )
        card = panel.locator(".msg.offer", has_text="Бесплатная доставка 🎁")
        await expect(card).to_be_visible(timeout=WAIT_MS)
        await card.get_by_role("button", name="Yes, please").click()
        await expect(card.locator(".answer")).to_have_text("Вы согласились.")

        async def accepted() -> bool:
            async with desk.db.transaction() as s:
                n = await s.scalar(
                    select(func.count())
                    .select_from(CustomerEvent)
                    .where(
                        CustomerEvent.customer_id == message.customer_id, CustomerEvent.type == "widget.offer_accepted"
                    )
                )
            return n == 1

        await desk.eventually(accepted, "the visitor's answer to the offer came back as a customer event")

        await page.screenshot(path=shot(f"widget-ru-open-{backend}.png"))

        # Esc closes and gives focus back to the launcher.
        await box.press("Escape")
        await expect(panel).to_be_hidden()
        assert await page.evaluate("document.activeElement.shadowRoot.activeElement.className") == "launcher"

        # A reply while the window is closed: an unread badge and a preview on the launcher.
        await desk.reply(message.conversation_id, "Спасибо, фото получили 👍")
        await expect(page.get_by_role("button", name="Открыть чат, новых: 1")).to_be_visible(timeout=WAIT_MS)
        await expect(page.locator(".teaser")).to_contain_text("Спасибо, фото получили 👍")
        await page.screenshot(path=shot(f"widget-ru-unread-{backend}.png"))
        await page.evaluate("window.frontdesk('open')")
        await expect(panel).to_be_visible()
        await expect(page.locator(".badge")).to_be_hidden()
        await page.evaluate("window.frontdesk('close')")
        await expect(panel).to_be_hidden()
        await context.close()


async def open_widget(browser: Any, desk: Desk, title: str, browser_locale: str = "en-US") -> tuple[Any, Any, Any]:
    """A fresh visitor on the customer's site with the chat window open: ``(context, page, panel)``."""
    from playwright.async_api import expect

    context = await browser.new_context(locale=browser_locale, viewport={"width": 1100, "height": 820})
    page = await context.new_page()
    await page.goto(desk.site)
    await page.locator("frontdesk-widget .launcher").click()
    panel = page.get_by_role("dialog", name=title)
    await expect(panel).to_be_visible(timeout=WAIT_MS)
    await expect(panel.get_by_role("heading", level=2)).to_have_text(title, timeout=WAIT_MS)
    return context, page, panel


async def test_a_message_over_the_limit_gets_a_counter_and_is_never_cut(browser: Any, desk: Desk, backend: str) -> None:
    from playwright.async_api import expect

    inbox = await desk.create_inbox(title="Acme support")
    token = inbox["public_token"]
    with serve_page(host_page(desk.server.base, token)) as desk.site:
        context, page, panel = await open_widget(browser, desk, "Acme support")
        box = panel.get_by_label("Message")
        counter = panel.locator(".counter")
        await box.fill("a" * 8_000)
        await expect(counter).to_be_hidden()
        # Near the limit the visitor sees how much room is left (characters, as the server counts them).
        await box.fill("🙂" * 9_990)
        await expect(counter).to_have_text("10 characters left")
        text = "Привет, мир 🙂 " * 800  # 11,199 characters once trimmed (12,000 UTF-16 units)
        over = len(text.strip()) - 10_000
        await box.fill(text)
        await expect(counter).to_have_text(f"{over:,} characters too many (the limit is 10,000)")
        # Enter does not send it cut: it says why, and keeps every character in the box.
        await box.press("Enter")
        await expect(panel.get_by_role("alert")).to_contain_text("too long to send as one message")
        await expect(box).to_have_value(text)
        assert await desk.messages(direction="in") == []
        await page.screenshot(path=shot(f"widget-too-long-{backend}.png"))
        # Sent in two parts, split between words: together they are the whole text.
        await panel.get_by_role("button", name="Send as 2 messages").click()
        await expect(panel.locator(".msg.in:not(.pending) .state")).to_have_text(["Sent", "Sent"], timeout=WAIT_MS)
        await expect(box).to_have_value("")
        await expect(counter).to_be_hidden()
        parts = [m.text for m in await desk.messages(direction="in")]
        assert len(parts) == 2
        assert all(len(p) <= 10_000 for p in parts)
        assert " ".join(parts) == text.strip()

        # A message over the limit queued by an older widget is refused by the server, never cut:
        # the widget shows it as not sent, with the server's reason.
        key = f"frontdesk:{token}:pending"
        stale = {
            "client_id": str(uuid.uuid4()),
            "text": "x" * 10_001,
            "attachment_ids": [],
            "attachments": [],
            "created_at": "2026-01-01T00:00:00Z",
        }
        await page.evaluate("([k, v]) => localStorage.setItem(k, JSON.stringify([v]))", [key, stale])
        await page.reload()
        panel = page.get_by_role("dialog", name="Acme support")
        failed = panel.locator(".msg.pending.failed")
        await expect(failed.locator(".state")).to_contain_text("Not sent", timeout=WAIT_MS)
        await expect(failed.locator(".state")).to_contain_text("longer than the limit of 10,000 characters")
        # It goes back into the box, to be shortened or sent in parts.
        await failed.get_by_role("button", name="Edit").click()
        await expect(panel.get_by_label("Message")).to_have_value("x" * 10_001)
        await expect(panel.locator(".msg.pending")).to_have_count(0)
        assert len(await desk.messages(direction="in")) == 2
        await context.close()


async def set_presence(desk: Desk, status: str) -> None:
    async with httpx.AsyncClient(base_url=desk.server.base, timeout=10) as client:
        r = await client.put("/api/v1/agents/me/presence", json={"status": status}, headers=desk.agent)
    assert r.status_code == 200, r.text


async def test_the_status_says_online_only_while_an_agent_is(browser: Any, desk: Desk, backend: str) -> None:
    from playwright.async_api import expect

    inbox = await desk.create_inbox(title="Acme support")
    token = inbox["public_token"]
    # The agent's desk is open, but she is offline: nobody will answer soon.
    async with connect(f"ws://127.0.0.1:{desk.server.port}/ws?token={desk.agent_token}&desk=1") as agent_ws:
        await agent_recv(agent_ws, lambda m: m.get("type") == "hello")
        with serve_page(host_page(desk.server.base, token)) as desk.site:
            context, page, panel = await open_widget(browser, desk, "Acme support")
            status = panel.locator(".status")
            await expect(status).to_have_text("Away — we reply by email", timeout=WAIT_MS)
            await expect(panel.locator(".availability")).to_contain_text("answer by email")
            ask = panel.get_by_label("Leave your email so we can reply:")
            await expect(ask).to_be_visible()
            # She becomes available: the open window says so without a reload.
            await set_presence(desk, "available")
            await expect(status).to_have_text("Online", timeout=WAIT_MS)
            await expect(panel.locator(".availability")).to_have_text("We usually reply in a few minutes.")
            await expect(ask).to_be_hidden()
            await page.screenshot(path=shot(f"widget-online-{backend}.png"))
            # The last agent goes offline: open widgets stop promising a quick answer.
            await set_presence(desk, "offline")
            await expect(status).to_have_text("Away — we reply by email", timeout=WAIT_MS)
            await expect(ask).to_be_visible()
            await context.close()


async def test_what_the_agent_read_stays_read_after_a_reload(browser: Any, desk: Desk, backend: str) -> None:
    from playwright.async_api import expect

    inbox = await desk.create_inbox(title="Acme support")
    token = inbox["public_token"]
    with serve_page(host_page(desk.server.base, token)) as desk.site:
        context, page, panel = await open_widget(browser, desk, "Acme support")
        box = panel.get_by_label("Message")
        for text in ("Первое сообщение", "Второе сообщение"):
            await box.fill(text)
            await box.press("Enter")
            await expect(panel.locator(".msg.in:not(.pending)", has_text=text).locator(".state")).to_have_text(
                "Sent", timeout=WAIT_MS
            )
        [_first, second] = await desk.messages(direction="in")
        await desk.post(f"/api/v1/widget/messages/{second.id}/read")
        states = panel.locator(".msg.in:not(.pending) .state")
        await expect(states).to_have_text(["Seen", "Seen"], timeout=WAIT_MS)
        await page.reload()
        panel = page.get_by_role("dialog", name="Acme support")
        await expect(panel.locator(".msg.in:not(.pending)")).to_have_count(2, timeout=WAIT_MS)
        await expect(panel.locator(".msg.in:not(.pending) .state")).to_have_text(["Seen", "Seen"])
        await context.close()


async def test_a_russian_visitor_sees_the_russian_title_and_greeting(browser: Any, desk: Desk, backend: str) -> None:
    from playwright.async_api import expect

    inbox = await desk.create_inbox(
        title={"en": "Acme support", "ru": "Поддержка Acme"},
        greeting={"en": "Hi! Ask us anything.", "ru": "Здравствуйте! Спрашивайте что угодно."},
        default_language="en",
    )
    token = inbox["public_token"]
    # A Russian browser on a page that names no language: the browser's language.
    with serve_page(host_page(desk.server.base, token, locale="")) as desk.site:
        context, page, panel = await open_widget(browser, desk, "Поддержка Acme", browser_locale="ru-RU")
        await expect(panel.locator(".greeting")).to_have_text("Здравствуйте! Спрашивайте что угодно.", timeout=WAIT_MS)
        await expect(panel.get_by_label("Сообщение")).to_be_visible()
        await page.screenshot(path=shot(f"widget-ru-greeting-{backend}.png"))
        await context.close()
        # A German browser: the inbox's default language.
        context, page, panel = await open_widget(browser, desk, "Acme support", browser_locale="de-DE")
        await expect(panel.locator(".greeting")).to_have_text("Hi! Ask us anything.", timeout=WAIT_MS)
        await context.close()
    # The site's data-locale wins over the browser's language.
    with serve_page(host_page(desk.server.base, token, locale="en")) as desk.site:
        context, page, panel = await open_widget(browser, desk, "Acme support", browser_locale="ru-RU")
        await expect(panel.locator(".greeting")).to_have_text("Hi! Ask us anything.", timeout=WAIT_MS)
        await context.close()
