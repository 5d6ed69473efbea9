# ruff: noqa: RUF001, RUF002  (Russian text is Cyrillic on purpose)
"""E-mail replies in the demo: no SMTP relay, so mail is kept in the local outbox (real Chromium).

The demo's own data (``frontdesk.demo.load``) on a server started like ``make demo`` starts it —
no ``FRONTDESK_SMTP_RELAY``. A Russian-speaking agent (browser asks for Russian) answers an e-mail
conversation from the desk; the message says, in Russian, that it was kept in the local outbox
because no relay is configured (not "sent", not an English error). The admin opens Admin → Mail
outbox, reads the headers, the text and the HTML (in a sandboxed frame) and downloads the .eml.
Along the way, a reply to the demo's API inbox (no webhook URL) fails: the agent reads only
"Не доставлено", the admin asks the desk why.

Screenshots: ``test-artifacts/mail-catcher-desk.png``, ``test-artifacts/mail-catcher-admin.png``.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from frontdesk import demo
from frontdesk.db import Database
from frontdesk.models import Conversation, Identity, Message, User
from tests.conftest import truncate_all
from tests.e2e.browser import VIEWPORT, ServerProcess, shot

pytestmark = pytest.mark.slow

SECRET_KEY = "mail-catcher-browser-test-secret-0123456789"
WAIT_MS = 20_000
CONTRAST_JS = Path(__file__).with_name("contrast.js").read_text(encoding="utf-8")
REPLY = "Здравствуйте! Заказ уже в пути, трек-номер пришлём сегодня."
API_REPLY = "Ответ в приложение магазина"
AGENT = "anna.petrova@example.com"


@pytest.fixture
async def server(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[ServerProcess, Database]]:
    db = Database(database_url)
    await demo.load(db, customers=40)
    monkeypatch.delenv("FRONTDESK_SMTP_RELAY", raising=False)  # like `make demo`: no relay
    proc = ServerProcess(database_url, tmp_path / "var", tmp_path / "server.log", SECRET_KEY)
    try:
        await proc.start()
        yield proc, db
    finally:
        await proc.stop()
        await truncate_all(db)
        await db.dispose()


async def an_api_conversation(db: Database) -> str:
    """A conversation of the demo's API inbox (which has no webhook_url: replies cannot be delivered)."""
    async with db.transaction() as s:
        found = await s.scalar(
            select(Conversation.id).where(Conversation.channel == "api").order_by(Conversation.created_at.desc())
        )
    assert found is not None, "the demo has API conversations"
    return str(found)


async def an_email_conversation(db: Database) -> tuple[str, str]:
    """An e-mail conversation of the demo whose customer has an e-mail address; (id, address)."""
    async with db.transaction() as s:
        row = (
            await s.execute(
                select(Conversation.id, Identity.value)
                .join(Identity, Identity.customer_id == Conversation.customer_id)
                .where(Conversation.channel == "email", Identity.kind == "email", Identity.undeliverable.is_(False))
                .order_by(Conversation.created_at.desc())
                .limit(1)
            )
        ).first()
    assert row is not None, "the demo has e-mail conversations"
    return str(row[0]), str(row[1])


async def sign_in(browser: Any, base: str, path: str, email: str, password: str, locale: str) -> tuple[Any, Any]:
    from playwright.async_api import expect

    context = await browser.new_context(locale=locale, timezone_id="Europe/Moscow", viewport=VIEWPORT)
    page = await context.new_page()
    await page.goto(f"{base}{path}")
    await expect(page).to_have_url(re.compile(r"/\?next="))
    await page.locator("#email").fill(email)
    await page.locator("#password").fill(password)
    await page.locator("#sign-in").click()
    await page.wait_for_url(re.compile(re.escape(base + path.split("#")[0])), timeout=WAIT_MS)
    return context, page


async def test_an_e_mail_reply_in_the_demo_is_kept_and_the_admin_reads_it(browser: Any, server: Any) -> None:
    from playwright.async_api import expect

    proc, db = server
    base = proc.base
    conversation_id, customer_address = await an_email_conversation(db)
    errors: list[str] = []

    # The agent, in Russian, replies by e-mail.
    context, desk = await sign_in(browser, base, "/desk", AGENT, demo.AGENT_PASSWORD, "ru-RU")
    desk.on("pageerror", lambda e: errors.append(str(e)))
    assert await desk.locator("html").get_attribute("lang") == "ru"
    await desk.goto(f"{base}/desk#/c/{conversation_id}")
    await expect(desk.locator("body")).to_have_attribute("data-conversation-ready", conversation_id, timeout=WAIT_MS)
    panel = desk.locator(f"#panel-{conversation_id}")
    await expect(panel.get_by_label("Ответить через")).to_have_value("email")
    composer = panel.get_by_label("Сообщение", exact=True)
    await composer.fill(REPLY)
    await panel.get_by_role("button", name="Отправить", exact=True).click()
    await expect(composer).to_have_value("")

    reply = panel.locator("article.msg.out", has_text=REPLY)
    status = reply.locator("footer.msg-status")
    await expect(status).to_have_class(re.compile(r"\bds-caught\b"), timeout=WAIT_MS)
    await expect(status).to_contain_text(
        "Не отправлено: почтовый релей не настроен, поэтому письмо сохранено в локальной исходящей почте"
    )
    await expect(status).to_contain_text("Клиент его не получил.")
    await expect(status).not_to_contain_text("relay")  # nothing in English
    await desk.screenshot(path=shot("mail-catcher-desk.png"))
    async with db.transaction() as s:
        message = (await s.scalars(select(Message).where(Message.text == REPLY))).one()
        anna = (await s.scalars(select(User).where(User.email == AGENT))).one()
    assert (message.delivery_status, message.author_id, message.error) == ("caught", anna.id, None)

    # A reply that cannot be delivered: the agent reads that it failed, in Russian, not why.
    api_conversation = await an_api_conversation(db)
    await desk.goto(f"{base}/desk#/c/{api_conversation}")
    await expect(desk.locator("body")).to_have_attribute("data-conversation-ready", api_conversation, timeout=WAIT_MS)
    api_panel = desk.locator(f"#panel-{api_conversation}")
    await api_panel.get_by_label("Сообщение", exact=True).fill(API_REPLY)
    await api_panel.get_by_role("button", name="Отправить", exact=True).click()
    failed = api_panel.locator("article.msg.out", has_text=API_REPLY).locator("footer.msg-status")
    await expect(failed).to_have_class(re.compile(r"\bds-failed\b"), timeout=WAIT_MS)
    await expect(failed).to_have_text("Не доставлено")
    await expect(failed.get_by_role("button")).to_have_count(0)  # the reason is for admins
    assert (await desk.evaluate(CONTRAST_JS))["failures"] == []  # the notes are readable (WCAG 1.4.3)
    await context.close()

    # The admin reads it on the admin page.
    context, admin = await sign_in(browser, base, "/admin#mail", demo.ADMIN_EMAIL, demo.ADMIN_PASSWORD, "en-GB")
    admin.on("pageerror", lambda e: errors.append(str(e)))
    section = admin.locator("fd-admin-mail")
    await expect(section.get_by_role("heading", name="Mail outbox")).to_be_visible(timeout=WAIT_MS)
    row = section.locator("tbody tr", has_text=customer_address)
    await expect(row).to_have_count(1)
    await row.get_by_role("button", name="Show").click()
    mail = section.locator("article.mail")
    await expect(mail).to_be_visible()
    headers = mail.locator("table.mail-headers")
    await expect(headers.locator("tr", has=admin.locator("th", has_text=re.compile(r"^To$")))).to_contain_text(
        customer_address
    )
    await expect(headers.locator("tr", has=admin.locator("th", has_text="Message-ID"))).to_contain_text(str(message.id))
    await expect(mail.locator("pre.mail-text")).to_contain_text(REPLY)
    frame = mail.locator("iframe.mail-html")
    assert await frame.get_attribute("sandbox") == ""  # no scripts, no same-origin access
    await expect(admin.frame_locator("iframe.mail-html").locator("body")).to_contain_text(REPLY)
    async with admin.expect_download() as download_info:
        await mail.get_by_role("link", name="Download .eml").click()
    download = await download_info.value
    assert download.suggested_filename == f"mail-{message.id}.eml"
    raw = Path(await download.path()).read_bytes()
    assert f"Message-ID: <{message.id}@".encode() in raw
    assert f"To: {customer_address}".encode() in raw
    await expect(section).not_to_contain_text("null")
    assert (await admin.evaluate(CONTRAST_JS))["failures"] == []
    await admin.screenshot(path=shot("mail-catcher-admin.png"))

    # The admin, in the desk, asks why the API reply failed.
    await admin.goto(f"{base}/desk#/c/{api_conversation}")
    await expect(admin.locator("body")).to_have_attribute("data-conversation-ready", api_conversation, timeout=WAIT_MS)
    failed = admin.locator(f"#panel-{api_conversation} article.msg.out", has_text=API_REPLY).locator("footer")
    await expect(failed).to_contain_text("Delivery failed")
    await failed.get_by_role("button", name="Why?").click()
    await expect(failed.locator(".ds-detail")).to_have_text("the API inbox has no webhook_url configured")
    await context.close()
    assert errors == []
