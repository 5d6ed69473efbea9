# ruff: noqa: RUF001, RUF002  (Russian text and typographic dashes on purpose)
"""The admin page and the supervisor wallboard in a real browser (Debian's Chromium via Playwright).

The real server runs as a subprocess on a temporary database. What an admin would check: they sign
in through the sign-in page, add a user and a team, create a web-chat inbox and copy its embed
snippet, set its business hours, add a shared canned response and a webhook (its secret shown
once), and the server's own error text appears next to the form when something is refused. What a
supervisor would check: the wallboard's "waiting now" goes up by itself when a customer writes,
and they can hand an agent's conversation to someone else with a note. The Russian UI renders.
Routing: an admin creates a skill, a queue requiring it, gives an agent the skill and a capacity,
adds a rule routing a tag to the queue, and a conversation with that tag is offered to that agent
on their desk; a real capacity shift shows on the wallboard with its reason. In Russian, the
desk, the wallboard and the admin page show every channel, status and state in Russian (one word
each, the same on every page), never an English label or a raw code.
Screenshots (1280×800) land in ``test-artifacts/``.

Needs ``apt-get install -y chromium`` and the ``playwright`` Python package (never ``playwright
install``). Without them the test skips — or fails under ``FRONTDESK_TEST_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from frontdesk.db import Database
from frontdesk.models import User
from frontdesk.web import i18n
from tests.builders import DEFAULT_PASSWORD, make_token, make_user
from tests.conftest import truncate_all
from tests.e2e.browser import VIEWPORT, ServerProcess, shot

pytestmark = pytest.mark.slow


SECRET_KEY = "admin-wallboard-browser-test-secret-0123456789"
INBOUND_SECRET = "api-inbound-secret-for-the-browser-test"
WAIT_MS = 15_000
# A socket event must reach the board well before its 10 s safety-net poll would.
LIVE_MS = 5_000


ZONE = "Europe/Moscow"


# -- the server ----------------------------------------------------------------------------------


class Site:
    """The running server, its people, and API calls made the way an integration would."""

    def __init__(
        self, server: ServerProcess, admin: User, supervisor: User, anna: User, boris: User, token: str, anna_token: str
    ) -> None:
        self.server = server
        self.base = server.base
        self.admin = admin
        self.supervisor = supervisor
        self.anna = anna
        self.boris = boris
        self.headers = {"Authorization": f"Bearer {token}"}
        self.anna_headers = {"Authorization": f"Bearer {anna_token}"}

    async def call(
        self, method: str, path: str, body: Any = None, ok: tuple[int, ...] = (200, 201), as_anna: bool = False
    ) -> Any:
        headers = self.anna_headers if as_anna else self.headers
        async with httpx.AsyncClient(base_url=self.base, timeout=10) as client:
            r = await client.request(method, f"/api/v1{path}", json=body, headers=headers)
        assert r.status_code in ok, r.text
        return r.json() if r.content else None

    async def customer_writes(
        self, inbox_id: str, name: str, email: str, subject: str, text: str | None = None, attachments: Any = ()
    ) -> dict[str, Any]:
        """A signed message to an API inbox (docs/channels/api.md), as the customer's app would send it."""
        sender = {"kind": "email", "value": email, "name": name}
        message = {"sender": sender, "subject": subject, "text": f"{subject}. Please help." if text is None else text}
        if attachments:
            message["attachments"] = list(attachments)
        body = json.dumps(message).encode()
        stamp = str(int(time.time()))
        signature = hmac.new(INBOUND_SECRET.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
        async with httpx.AsyncClient(base_url=self.base, timeout=10) as client:
            r = await client.post(
                f"/api/v1/inboxes/{inbox_id}/messages",
                content=body,
                headers={
                    "Content-Type": "application/json",
                    "X-Frontdesk-Signature": f"sha256={signature}",
                    "X-Frontdesk-Timestamp": stamp,
                    "Idempotency-Key": uuid.uuid4().hex,
                },
            )
        assert r.status_code == 201, r.text
        return dict(r.json())

    async def waiting_now(self) -> int:
        board = await self.call("GET", f"/wallboard?tz={ZONE}")
        return int(board["totals"]["waiting"])


@pytest.fixture
async def site(database_url: str, tmp_path: Path) -> AsyncIterator[Site]:
    db = Database(database_url)
    server = ServerProcess(database_url, tmp_path / "var", tmp_path / "server.log", SECRET_KEY)
    try:
        admin = await make_user(db, role="admin", email="ada@example.com", name="Ada Admin")
        supervisor = await make_user(db, role="supervisor", email="sam@example.com", name="Sam Supervisor")
        anna = await make_user(db, role="agent", email="anna@example.com", name="Anna Agent")
        boris = await make_user(db, role="agent", email="boris@example.com", name="Борис Агентов")
        token = await make_token(db, admin)
        anna_token = await make_token(db, anna)
        await server.start()
        yield Site(server, admin, supervisor, anna, boris, token, anna_token)
    finally:
        await server.stop()
        await truncate_all(db)
        await db.dispose()


async def clear_toasts(page: Any) -> None:
    """Toasts stay 6 s; a screenshot shows the page, not the last minute's messages."""
    await page.evaluate("document.querySelectorAll('.toast').forEach((t) => t.remove())")


async def open_page(
    browser: Any, site: Site, path: str, email: str, locale: str = "en-GB"
) -> tuple[Any, Any, list[str]]:
    """A fresh browser profile that opens ``path``, is sent to the sign-in page, signs in and comes back."""
    from playwright.async_api import expect

    context = await browser.new_context(locale=locale, timezone_id=ZONE, viewport=VIEWPORT)
    await context.grant_permissions(["clipboard-read", "clipboard-write"], origin=site.base)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    await page.goto(f"{site.base}{path}")
    await expect(page).to_have_url(re.compile(r"/\?next="))
    await page.locator("#email").fill(email)
    await page.locator("#password").fill(DEFAULT_PASSWORD)
    await page.locator("#sign-in").click()
    await expect(page).to_have_url(f"{site.base}{path}", timeout=WAIT_MS)
    return context, page, errors


# -- the admin -------------------------------------------------------------------------------------


async def test_an_admin_sets_up_users_teams_inboxes_hours_and_canned_responses(browser: Any, site: Site) -> None:
    from playwright.async_api import expect

    context, page, errors = await open_page(browser, site, "/admin", site.admin.email)
    nav = page.get_by_role("navigation", name="Admin sections")
    main = page.locator("#admin-panel")

    # -- Users & roles (the default section): create a supervisor; a duplicate shows the server's reason.
    await expect(main.get_by_role("heading", name="Users & roles")).to_be_visible(timeout=WAIT_MS)
    users = main.locator("fd-admin-users")
    await expect(users.locator("tbody tr")).to_have_count(4)
    add_user = users.locator("form", has=page.get_by_role("heading", name="Add a user"))
    await add_user.get_by_label("Name").fill("Carla Новикова")
    await add_user.get_by_label("Email").fill("carla@example.com")
    await add_user.get_by_label("Password").fill("a long enough password")
    await add_user.get_by_label("Role").select_option("supervisor")
    await add_user.get_by_role("button", name="Create user").click()
    carla_row = users.locator("tbody tr", has_text="carla@example.com")
    await expect(carla_row).to_be_visible()
    await expect(carla_row.get_by_label("Role of Carla Новикова")).to_have_value("supervisor")
    people = {u["email"]: u for u in await site.call("GET", "/users")}
    assert people["carla@example.com"]["role"] == "supervisor"
    assert people["carla@example.com"]["name"] == "Carla Новикова"

    await add_user.get_by_label("Name").fill("Carla Again")
    await add_user.get_by_label("Email").fill("carla@example.com")
    await add_user.get_by_label("Password").fill("a long enough password")
    await add_user.get_by_role("button", name="Create user").click()
    await expect(add_user.get_by_role("alert")).to_contain_text(
        "A user with the email carla@example.com already exists."
    )
    # A field the server names in `errors` gets the message beside it (the browser accepts this one).
    await add_user.get_by_label("Email").fill("carla@example")
    await add_user.get_by_role("button", name="Create user").click()
    email_box = add_user.get_by_label("Email")
    await expect(email_box).to_have_attribute("aria-invalid", "true")
    await expect(add_user.locator(".field-error:visible")).to_contain_text("not a valid email address")
    assert "carla@example" not in {u["email"] for u in await site.call("GET", "/users")}

    # Changing a role from the list is saved at once.
    await carla_row.get_by_label("Role of Carla Новикова").select_option("agent")
    await expect(page.locator(".toast").last).to_contain_text("Carla Новикова is now agent.")
    assert {u["email"]: u for u in await site.call("GET", "/users")}["carla@example.com"]["role"] == "agent"

    # -- Teams: create one and add a member (deep link by hash works too).
    await nav.get_by_role("link", name="Teams").click()
    await expect(page).to_have_url(re.compile(r"#teams$"))
    teams = main.locator("fd-admin-teams")
    await teams.get_by_label("Team name").last.fill("Billing")
    await teams.get_by_role("button", name="Create team").click()
    card = teams.locator("article", has=page.get_by_role("heading", name="Billing"))
    await expect(card).to_be_visible()
    await card.get_by_label("Add a member").select_option(label="Anna Agent (anna@example.com)")
    await card.get_by_role("button", name="Add member").click()
    await expect(card.get_by_role("list", name="Members")).to_contain_text("Anna Agent")
    team = next(t for t in await site.call("GET", "/teams") if t["name"] == "Billing")
    assert team["member_ids"] == [str(site.anna.id)]

    # -- Inboxes: a web-chat inbox and its snippet, copied with the button.
    await nav.get_by_role("link", name="Inboxes").click()
    inboxes = main.locator("fd-admin-inboxes")
    create = inboxes.locator("form.create-inbox")
    await create.get_by_label("Inbox name").fill("Website chat")
    await create.get_by_label("Channel").select_option("webchat")
    await create.get_by_label("Widget title").fill("Acme support")
    await create.get_by_role("button", name="Create inbox").click()
    detail = inboxes.locator(".inbox-detail")
    await expect(detail.get_by_role("heading", name="Website chat")).to_be_visible()
    chat = next(i for i in await site.call("GET", "/inboxes") if i["name"] == "Website chat")
    assert chat["channel"] == "webchat"
    assert chat["config"]["title"] == "Acme support"
    snippet = f'<script src="{site.base}/widget.js" data-inbox="{chat["public_token"]}" async></script>'
    await expect(detail.locator("pre.code")).to_have_text(snippet)
    await detail.get_by_role("button", name="Copy").click()
    await expect(detail.get_by_role("button", name="Copied")).to_be_visible()
    assert await page.evaluate("navigator.clipboard.readText()") == snippet
    await clear_toasts(page)
    await page.screenshot(path=shot("admin-inboxes.png"))

    # An email inbox: in by address and IMAP, out by sender name; the SMTP relay is a server setting.
    await create.get_by_label("Inbox name").fill("Support mail")
    await create.get_by_label("Channel").select_option("email")
    await expect(create).to_contain_text("FRONTDESK_SMTP_RELAY")
    await create.get_by_label("Address customers write to").fill("support@acme.example")
    await create.get_by_label("Sender name").fill("Acme Support")
    await create.get_by_label("Fetch mail from an IMAP mailbox").check()
    await create.get_by_label("IMAP server").fill("imap.acme.example")
    await create.get_by_label("User name").fill("support@acme.example")
    await create.get_by_label("IMAP password").fill("imap-secret")
    await create.get_by_role("button", name="Create inbox").click()
    await expect(detail.get_by_role("heading", name="Support mail")).to_be_visible()
    mail = next(i for i in await site.call("GET", "/inboxes") if i["name"] == "Support mail")
    assert mail["config"]["address"] == "support@acme.example"
    assert mail["config"]["from_name"] == "Acme Support"
    assert mail["config"]["imap"]["host"] == "imap.acme.example"
    assert mail["config"]["imap"]["password"] == "********"  # stored, never shown again
    # Saving the settings again keeps the stored password (the form sends the mask back).
    await detail.get_by_label("Sender name").fill("Acme Help")
    await detail.get_by_role("button", name="Save settings").click()
    await expect(page.locator(".toast").last).to_contain_text("Settings of Support mail saved.")
    mail = next(i for i in await site.call("GET", "/inboxes") if i["name"] == "Support mail")
    assert mail["config"]["from_name"] == "Acme Help"
    assert mail["config"]["imap"]["password"] == "********"

    # An API inbox: its two secrets are shown once, with copy buttons.
    await create.get_by_label("Inbox name").fill("Shop app")
    await create.get_by_label("Channel").select_option("api")
    await create.get_by_role("button", name="Create inbox").click()
    await expect(detail.get_by_role("heading", name="Shop app")).to_be_visible()
    secret = detail.get_by_label("Inbound secret (you sign requests with it)")
    await expect(secret).to_have_value(re.compile(r"^[\w-]{30,}$"))
    await expect(detail.get_by_text("Shown only once").first).to_be_visible()
    shop = next(i for i in await site.call("GET", "/inboxes") if i["name"] == "Shop app")
    assert shop["config"]["inbound_secret"] == "********"

    # -- Business hours of the web-chat inbox: its link deep-links into the hours section.
    await nav.get_by_role("link", name="Inboxes").click()
    await inboxes.get_by_role("button", name="Settings of Website chat").click()
    await detail.get_by_role("link", name="Business hours of this inbox").click()
    await expect(page).to_have_url(re.compile(rf"#hours/{chat['id']}$"))
    hours = main.locator("fd-admin-hours")
    await expect(hours.get_by_label("Inbox", exact=True)).to_have_value(chat["id"])
    await hours.get_by_label("Always open (no business hours)").uncheck()
    await expect(hours.get_by_label("Time zone")).to_have_value(ZONE)  # the viewer's zone by default
    await hours.get_by_label("Monday closes at").fill("17:30")
    await hours.get_by_role("button", name="Add range to Saturday").click()
    await hours.get_by_label("Saturday opens at").fill("14:00")
    await hours.get_by_label("Saturday closes at").fill("10:00")
    await hours.get_by_role("button", name="Save business hours").click()
    await expect(hours.get_by_role("alert")).to_contain_text("Saturday: a range must end after it starts")
    assert "business_hours" not in (await site.call("GET", f"/inboxes/{chat['id']}"))["config"]
    await hours.get_by_label("Saturday opens at").fill("10:00")
    await hours.get_by_label("Saturday closes at").fill("14:00")
    await hours.get_by_role("button", name="Save business hours").click()
    await expect(page.locator(".toast").last).to_contain_text("Business hours of Website chat saved.")
    config = (await site.call("GET", f"/inboxes/{chat['id']}"))["config"]
    weekday = [["09:00", "18:00"]]
    assert config["business_hours"] == {
        "tz": ZONE,
        "days": {
            "mon": [["09:00", "17:30"]],
            "tue": weekday,
            "wed": weekday,
            "thu": weekday,
            "fri": weekday,
            "sat": [["10:00", "14:00"]],
            "sun": [],
        },
    }
    assert config["title"] == "Acme support"  # the rest of the config is untouched

    # -- Canned responses (global).
    await nav.get_by_role("link", name="Canned responses").click()
    canned = main.locator("fd-admin-canned")
    add = canned.locator("form", has=page.get_by_role("heading", name="Add a canned response"))
    await add.get_by_label("Shortcut").fill("refund")
    await add.get_by_label("Title").fill("Refund policy")
    await add.get_by_label("Text").fill("Hi {{customer.first_name}}, refunds take 3–5 days. <b>not bold</b>")
    await add.get_by_role("button", name="Create canned response").click()
    item = canned.locator("article", has_text="/refund")
    await expect(item).to_contain_text("refunds take 3–5 days. <b>not bold</b>")  # text, never HTML
    saved = [c for c in await site.call("GET", "/canned-responses") if c["shortcut"] == "refund"]
    assert len(saved) == 1
    assert saved[0]["scope"] == "global"
    assert saved[0]["title"] == "Refund policy"
    # The same shortcut again: the server's conflict is shown with the form.
    await add.get_by_label("Shortcut").fill("refund")
    await add.get_by_label("Title").fill("Duplicate")
    await add.get_by_label("Text").fill("Again")
    await add.get_by_role("button", name="Create canned response").click()
    await expect(add.get_by_role("alert")).to_contain_text("Error:")

    # -- Webhooks: the signing secret is shown once.
    await nav.get_by_role("link", name="Webhooks").click()
    hooks = main.locator("fd-admin-webhooks")
    await hooks.get_by_label("URL").fill("https://hooks.acme.example/frontdesk")
    await hooks.get_by_role("button", name="Create webhook").click()
    made = hooks.locator("article", has_text="https://hooks.acme.example/frontdesk")
    await expect(made.get_by_label("Signing secret")).to_have_value(re.compile(r".{20,}"))
    listed = await site.call("GET", "/webhooks")
    assert [h["url"] for h in listed] == ["https://hooks.acme.example/frontdesk"]
    assert "secret" not in listed[0]

    # Keyboard: the section links are reachable and show focus.
    await nav.get_by_role("link", name="Users & roles").focus()
    await page.keyboard.press("Enter")
    await expect(page).to_have_url(re.compile(r"#users$"))
    await expect(main.get_by_role("heading", name="Users & roles")).to_be_visible()
    assert errors == []
    await context.close()


async def test_an_admin_gives_the_widget_a_title_and_greeting_per_language(browser: Any, site: Site) -> None:
    from playwright.async_api import expect

    context, page, errors = await open_page(browser, site, "/admin#inboxes", site.admin.email)
    inboxes = page.locator("#admin-panel fd-admin-inboxes")
    create = inboxes.locator("form.create-inbox")
    await create.get_by_label("Inbox name").fill("Website chat")
    await create.get_by_label("Channel").select_option("webchat")
    await create.get_by_label("Widget title").fill("Acme support")
    await create.get_by_label("Greeting", exact=True).fill("Hi! Ask us anything.")
    await create.get_by_label("Language of this title and greeting").fill("en")
    await create.get_by_role("button", name="Add a language").click()
    russian = create.get_by_role("group", name="Language 2")
    await russian.get_by_label("Language code").fill("ru")
    await russian.get_by_label("Title").fill("Поддержка Acme")
    await russian.get_by_label("Greeting").fill("Здравствуйте! Спрашивайте что угодно.")
    await create.get_by_role("button", name="Create inbox").click()
    detail = inboxes.locator(".inbox-detail")
    await expect(detail.get_by_role("heading", name="Website chat")).to_be_visible(timeout=WAIT_MS)
    chat = next(i for i in await site.call("GET", "/inboxes") if i["name"] == "Website chat")
    assert chat["config"]["title"] == {"en": "Acme support", "ru": "Поддержка Acme"}
    assert chat["config"]["greeting"] == {"en": "Hi! Ask us anything.", "ru": "Здравствуйте! Спрашивайте что угодно."}
    assert chat["config"]["default_language"] == "en"

    # The settings show each language again; a third one is added, a language listed twice is refused.
    await expect(detail.get_by_label("Widget title")).to_have_value("Acme support")
    await expect(detail.get_by_role("group", name="Language 2").get_by_label("Title")).to_have_value("Поддержка Acme")
    await detail.get_by_role("button", name="Add a language").click()
    german = detail.get_by_role("group", name="Language 3")
    await german.get_by_label("Language code").fill("RU")
    await german.get_by_label("Title").fill("Acme-Hilfe")
    await detail.get_by_role("button", name="Save settings").click()
    code = german.get_by_label("Language code")
    await expect(code).to_have_attribute("aria-invalid", "true")
    await expect(german.locator(".field-error:visible")).to_contain_text("RU is listed twice")
    await code.fill("Deutsch")
    await detail.get_by_role("button", name="Save settings").click()
    await expect(code).to_have_attribute("aria-invalid", "true")
    await expect(german.locator(".field-error:visible")).to_contain_text("like en, ru or pt-BR")
    await code.fill("de")
    await detail.get_by_role("button", name="Save settings").click()
    await expect(page.locator(".toast").last).to_contain_text("Settings of Website chat saved.")
    config = (await site.call("GET", f"/inboxes/{chat['id']}"))["config"]
    assert config["title"] == {"en": "Acme support", "ru": "Поддержка Acme", "de": "Acme-Hilfe"}
    assert config["greeting"] == {"en": "Hi! Ask us anything.", "ru": "Здравствуйте! Спрашивайте что угодно."}
    await clear_toasts(page)
    await page.screenshot(path=shot("admin-inbox-languages.png"))

    # What the widget is told for a Russian and a German visitor.
    async with httpx.AsyncClient(base_url=site.base, timeout=10) as client:
        for locale, title, greeting in (
            ("ru-RU", "Поддержка Acme", "Здравствуйте! Спрашивайте что угодно."),
            ("de-AT", "Acme-Hilfe", "Hi! Ask us anything."),
        ):
            r = await client.post("/api/v1/widget/sessions", json={"inbox": chat["public_token"], "locale": locale})
            assert r.status_code == 200, r.text
            assert (r.json()["config"]["title"], r.json()["config"]["greeting"]) == (title, greeting)

    # Languages are listed by code; removing one removes its texts.
    await expect(detail.get_by_role("group", name="Language 2").get_by_label("Language code")).to_have_value("de")
    await expect(detail.get_by_role("group", name="Language 3").get_by_label("Language code")).to_have_value("ru")
    await detail.get_by_role("button", name="Remove language 2").click()
    await detail.get_by_role("button", name="Save settings").click()
    await expect(page.locator(".toast").last).to_contain_text("Settings of Website chat saved.")
    config = (await site.call("GET", f"/inboxes/{chat['id']}"))["config"]
    assert config["title"] == {"en": "Acme support", "ru": "Поддержка Acme"}
    assert errors == []
    await context.close()


# -- the supervisor -------------------------------------------------------------------------------


async def test_the_wallboard_updates_live_and_a_supervisor_reassigns(browser: Any, site: Site) -> None:
    from playwright.async_api import expect

    shop = await site.call(
        "POST", "/inboxes", {"name": "Shop app", "channel": "api", "config": {"inbound_secret": INBOUND_SECRET}}
    )
    # Anna already works on one conversation, and has answered it: one answered today, on target.
    first = await site.customer_writes(shop["id"], "Olga Petrova", "olga@example.com", "Заказ №17 не пришёл")
    await site.call("PATCH", f"/conversations/{first['conversation_id']}", {"assignee_id": str(site.anna.id)})
    reply = {"text": "Смотрю, что с заказом."}
    await site.call("POST", f"/conversations/{first['conversation_id']}/messages", reply, as_anna=True)

    context, page, errors = await open_page(browser, site, "/wallboard", site.supervisor.email)
    board = page.locator("fd-wallboard")
    waiting = board.locator(".tile-waiting .tile-value")
    await expect(board.get_by_role("heading", name="Agents")).to_be_visible(timeout=WAIT_MS)
    before = await site.waiting_now()
    await expect(waiting).to_have_text(str(before), timeout=WAIT_MS)
    anna_row = board.locator("tr", has=page.get_by_role("button", name="Conversations of Anna Agent"))
    await expect(anna_row.locator("td").last).to_have_text("1")
    await expect(board.locator(".tile-answered .tile-value")).to_have_text("1")
    service = board.locator(".tile-service")
    await expect(service.locator(".tile-value")).to_have_text("100%")
    await expect(service).to_contain_text("On target")  # said in words, not by colour alone

    # A customer writes: the board shows it without a reload, well before the 10 s poll.
    await site.customer_writes(shop["id"], "Ivan Sidorov", "ivan@example.com", "Where is my parcel?")
    await expect(waiting).to_have_text(str(before + 1), timeout=LIVE_MS)
    await expect(board.locator(".tile-longest .tile-value")).to_have_text(re.compile(r"^\d+:\d\d$"))
    await expect(board.locator(".wb-queues tbody tr").first).to_contain_text("API")
    # An agent's state change (set by a supervisor through the API) shows at once, with time in state.
    await site.call("PUT", f"/agents/{site.boris.id}/presence", {"status": "away", "reason": "Lunch"})
    boris_row = board.locator("tr", has=page.get_by_role("button", name="Conversations of Борис Агентов"))
    await expect(boris_row.locator("td").first).to_have_text("Away", timeout=LIVE_MS)
    await expect(boris_row.locator("td").nth(1)).to_have_text(re.compile(r"^0:0\d$"))
    await page.wait_for_timeout(1100)  # the longest wait ticks in the browser
    await page.screenshot(path=shot("wallboard.png"))

    # Anna's conversations: reassign Olga's to Boris with a note.
    await page.get_by_role("button", name="Conversations of Anna Agent").click()
    panel = page.get_by_role("dialog", name="Anna Agent")
    await expect(panel).to_be_visible()
    item = panel.locator("li", has_text="Olga Petrova")
    await expect(item).to_contain_text("Заказ №17 не пришёл")
    await item.get_by_role("button", name="Reassign the conversation with Olga Petrova").click()
    await item.get_by_role("button", name="Reassign", exact=True).click()
    await expect(item.get_by_role("alert")).to_have_text("Choose who takes it over.")
    await item.get_by_label("Reassign to").select_option(label="Борис Агентов")
    await item.get_by_label("Note (why; kept on the conversation)").fill("Boris handles delivery claims")
    await item.get_by_role("button", name="Reassign", exact=True).click()
    await expect(panel).to_contain_text("Anna Agent has no open or pending conversations.")
    await expect(page.locator(".toast").last).to_contain_text("Conversation reassigned to Борис Агентов.")

    conversation = await site.call("GET", f"/conversations/{first['conversation_id']}")
    assert conversation["assignee_id"] == str(site.boris.id)
    messages = await site.call("GET", f"/conversations/{first['conversation_id']}/messages")
    notes = [m for m in messages["items"] if m["direction"] == "note"]
    assert any("Boris handles delivery claims" in (m.get("text") or "") for m in notes), notes

    # Esc closes the panel and gives focus back; the board shows the new load.
    await page.keyboard.press("Escape")
    await expect(panel).to_be_hidden()
    await expect(page.get_by_role("button", name="Conversations of Anna Agent")).to_be_focused()
    await expect(boris_row.locator("td").last).to_have_text("1", timeout=LIVE_MS)
    await expect(anna_row.locator("td").last).to_have_text("0")
    assert errors == []
    await context.close()


async def test_the_russian_ui_renders(browser: Any, site: Site) -> None:
    from playwright.async_api import expect

    context, page, errors = await open_page(browser, site, "/wallboard", site.supervisor.email, locale="ru-RU")
    board = page.locator("fd-wallboard")
    await expect(page.locator("html")).to_have_attribute("lang", "ru")
    await expect(board.locator(".tile-waiting .tile-label")).to_have_text("Ждут сейчас", timeout=WAIT_MS)
    await expect(board.get_by_role("heading", name="Операторы")).to_be_visible()
    await expect(board.get_by_role("button", name="Обращения: Anna Agent")).to_be_visible()
    await expect(board.locator("tr", has_text="Anna Agent")).to_contain_text("Не в сети")
    await page.screenshot(path=shot("wallboard-ru.png"))
    await context.close()

    context, page, errors2 = await open_page(browser, site, "/admin", site.admin.email, locale="ru-RU")
    await page.goto(f"{site.base}/admin#inboxes")  # a deep link to a section
    main = page.locator("#admin-panel")
    await expect(main.get_by_role("heading", name="Каналы входа")).to_be_visible(timeout=WAIT_MS)
    await expect(page.get_by_role("navigation", name="Разделы администрирования")).to_contain_text(
        "Пользователи и роли"
    )
    await expect(main.get_by_role("button", name="Создать канал")).to_be_visible()
    await main.get_by_role("button", name="Создать канал").click()
    await expect(main.get_by_label("Название канала").last).to_have_attribute("aria-invalid", "true")
    assert errors == []
    assert errors2 == []
    await context.close()


# -- routing: configured on the admin page, felt on the desk and the wallboard --------------------


async def test_an_admin_configures_routing_and_a_tagged_conversation_reaches_the_skilled_agent(
    browser: Any, site: Site
) -> None:
    """Skills, a queue requiring one, an agent's skill level and capacity, a rule routing a tag to the
    queue — all on the admin page; then a conversation with that tag is offered to that agent on
    their desk (and not to Boris, who is available too but lacks the skill)."""
    from playwright.async_api import expect

    context, page, errors = await open_page(browser, site, "/admin", site.admin.email)
    nav = page.get_by_role("navigation", name="Admin sections")
    main = page.locator("#admin-panel")

    # -- Skills: create one.
    await nav.get_by_role("link", name="Skills").click()
    await expect(page).to_have_url(re.compile(r"#skills$"))
    skills = main.locator("fd-admin-skills")
    await expect(skills.get_by_text("No skills yet.")).to_be_visible(timeout=WAIT_MS)
    add_skill = skills.locator("form", has=page.get_by_role("heading", name="Add a skill"))
    await add_skill.get_by_label("Skill name").fill("Refunds")
    await add_skill.get_by_label("Description").fill("Money back, chargebacks")
    await add_skill.get_by_role("button", name="Create skill").click()
    await expect(skills.locator("tbody tr", has_text="Refunds")).to_be_visible()
    [skill] = await site.call("GET", "/skills")
    assert (skill["name"], skill["description"]) == ("Refunds", "Money back, chargebacks")

    # -- Queues: one for email that requires the skill at level 3 or more.
    await nav.get_by_role("link", name="Queues").click()
    queues = main.locator("fd-admin-queues")
    await queues.get_by_role("button", name="Add a queue").click()
    editor = queues.locator("form.queue-editor")
    await expect(editor.get_by_role("heading", name="New queue")).to_be_focused()
    await editor.get_by_label("Queue name").fill("Money back")
    channels = editor.get_by_role("group", name="Channels")
    await channels.get_by_label("Web chat").uncheck()
    await channels.get_by_label("E-mail").check()
    await editor.get_by_label("Priority (1–99, higher first)").fill("70")
    await editor.get_by_label("Service-level target: percent answered").fill("90")
    await editor.get_by_label("… within (seconds)").fill("3600")
    await editor.get_by_label("Offer timeout (seconds)").fill("120")
    await editor.get_by_label("Pick the agent who is").select_option("least_occupied")
    await editor.get_by_role("button", name="Add a required skill").click()
    required = editor.get_by_role("group", name="Required skills")
    await required.get_by_label("Skill", exact=True).select_option(label="Refunds")
    await required.get_by_label("Minimum level (1–10)").fill("3")
    await editor.get_by_role("button", name="Add a ring").click()
    await editor.get_by_label("After waiting (seconds)", exact=True).fill("600")
    await editor.get_by_label("Lower required levels by").fill("2")
    # Overflow needs a queue and a wait together: the form says so next to the missing one.
    await editor.get_by_label("Overflow after waiting (seconds)").fill("900")
    await editor.get_by_role("button", name="Create queue").click()
    overflow = editor.get_by_label("Overflow to queue")
    await expect(overflow).to_have_attribute("aria-invalid", "true")
    await expect(editor.locator(".field-error:visible")).to_contain_text(
        "Choose the overflow queue and the wait together."
    )
    await editor.get_by_label("Overflow after waiting (seconds)").fill("")
    await editor.get_by_role("button", name="Create queue").click()
    await expect(page.locator(".toast").last).to_contain_text("Queue Money back created.")
    row = queues.locator("tbody tr", has_text="Money back")
    await expect(row).to_contain_text("Refunds ≥ 3")
    await expect(row).to_contain_text("90% in 1 h")
    [queue] = await site.call("GET", "/queues")
    assert queue["channels"] == ["email"]
    assert (queue["priority"], queue["service_level_percent"], queue["service_level_seconds"]) == (70, 90, 3600)
    assert (queue["offer_timeout_seconds"], queue["selection"]) == (120, "least_occupied")
    assert [(r["name"], r["min_level"]) for r in queue["required_skills"]] == [("Refunds", 3)]
    assert queue["bullseye"] == [{"after_seconds": 600, "level_drop": 2, "add_team_ids": [], "any_agent": False}]
    await clear_toasts(page)
    await page.screenshot(path=shot("admin-queues.png"), full_page=True)

    # -- Agents' routing: Anna gets the skill at level 5 and her capacity; the server's refusal of
    #    a cost above the budget is shown next to that cost.
    await nav.get_by_role("link", name="Agents' routing").click()
    agents = main.locator("fd-admin-profiles")
    await agents.get_by_label("Person").select_option(label="Anna Agent · agent")
    await expect(page).to_have_url(re.compile(rf"#agents/{site.anna.id}$"))
    profile = agents.locator("form.profile-editor")
    await expect(profile.get_by_role("heading", name="Routing of Anna Agent")).to_be_visible(timeout=WAIT_MS)
    await expect(profile).to_contain_text("Uses the default capacity until saved here.")
    await profile.get_by_label("Refunds").select_option("5")
    await profile.get_by_label("E-mail: at most at once").fill("4")
    await profile.get_by_label("E-mail: budget used by each").fill("150")
    await profile.get_by_label("Budget (shared by all channels)").fill("100")
    await profile.get_by_role("group", name="While busy with Voice, do not offer").get_by_label("E-mail").check()
    await profile.get_by_role("button", name="Save routing").click()
    cost = profile.get_by_label("E-mail: budget used by each")
    await expect(cost).to_have_attribute("aria-invalid", "true")
    await expect(profile.locator(".field-error:visible")).to_contain_text("150 is above the budget 100")
    saved = await site.call("GET", f"/agents/{site.anna.id}/routing-profile")
    assert saved["is_default"] is True  # nothing was stored
    await cost.fill("20")
    await profile.get_by_role("button", name="Save routing").click()
    await expect(page.locator(".toast").last).to_contain_text("Routing of Anna Agent saved.")
    await expect(agents.locator("form.profile-editor")).to_contain_text("Has a capacity profile of their own.")
    saved = await site.call("GET", f"/agents/{site.anna.id}/routing-profile")
    assert [(s["name"], s["level"]) for s in saved["skills"]] == [("Refunds", 5)]
    assert (saved["max_per_channel"]["email"], saved["cost"]["email"], saved["budget"]) == (4, 20, 100)
    assert "email" in saved["blocks"]["voice"]
    await clear_toasts(page)
    await page.screenshot(path=shot("admin-agent-routing.png"), full_page=True)

    # -- Routing rules: "refund" tags go to the queue; a second rule is moved above it.
    await nav.get_by_role("link", name="Routing rules").click()
    rules = main.locator("fd-admin-rules")
    for name, tags, segments in (("Refunds to Money back", "Refund", ""), ("VIPs first", "", "vip")):
        await rules.get_by_role("button", name="Add a rule").click()
        rule_form = rules.locator("form.rule-editor")
        await rule_form.get_by_label("Rule name").fill(name)
        await rule_form.get_by_label("Send to queue").select_option(label="Money back")
        await rule_form.get_by_label("Tags (any of them)").fill(tags)
        await rule_form.get_by_label("Customer segments (any of them)").fill(segments)
        await rule_form.get_by_role("button", name="Create rule").click()
        await expect(rules.locator("li", has_text=name)).to_be_visible()
    await rules.get_by_role("button", name="Move VIPs first up").click()
    await expect(rules.locator("ol.rules > li").first).to_contain_text("1. VIPs first")
    await expect(rules.locator("ol.rules > li").nth(1)).to_contain_text("When tag: #refund → queue Money back")
    stored = await site.call("GET", "/routing/rules")
    assert [(r["name"], r["position"], r["conditions"]) for r in stored] == [
        ("VIPs first", 0, {"segments": ["vip"]}),
        ("Refunds to Money back", 1, {"tags": ["refund"]}),
    ]
    await clear_toasts(page)
    await page.screenshot(path=shot("admin-routing-rules.png"), full_page=True)
    assert errors == []

    # -- The desk: Anna and Boris are both available; a conversation tagged "refund" is offered to
    #    Anna (the skilled one), through the rule.
    desk_context, desk, desk_errors = await open_page(browser, site, "/desk", site.anna.email)
    status = desk.get_by_label("My status")
    await expect(status).to_have_value("offline", timeout=WAIT_MS)
    await status.select_option("available")
    await expect(desk.locator(".presence-dot")).to_have_class("presence-dot ps-available")
    await site.call("PUT", f"/agents/{site.boris.id}/presence", {"status": "available"})
    customer = await site.call(
        "POST", "/customers", {"name": "Greta Refund", "identities": [{"kind": "email", "value": "greta@example.com"}]}
    )
    conversation = await site.call(
        "POST",
        "/conversations",
        {"customer_id": customer["id"], "channel": "email", "subject": "Money back please", "tags": ["refund"]},
    )
    offer = desk.get_by_role("alertdialog", name="New conversation for you")
    await expect(offer).to_be_visible(timeout=WAIT_MS)
    await expect(offer).to_contain_text("Greta Refund")
    await expect(offer).to_contain_text("Money back")
    await desk.screenshot(path=shot("desk-routed-offer.png"))
    log = await site.call("GET", f"/routing/conversations/{conversation['id']}/decisions")
    assert [d["kind"] for d in log][:2] == ["queued", "offered"]
    assert (log[0]["queue"], log[0]["rule"]) == ("Money back", "Refunds to Money back")
    assert (log[1]["agent_id"], log[1]["agent"]) == (str(site.anna.id), "Anna Agent")
    assert desk_errors == []
    await desk_context.close()
    await context.close()


async def test_the_wallboard_shows_a_capacity_shift_with_its_reason_live(browser: Any, site: Site) -> None:
    """Calls pile up in a queue with a 1-second target: routing stops its blended agent taking email
    (a real capacity shift, recorded by the routing leader), and the open wallboard says so, with
    the reason in words, without a reload."""
    from playwright.async_api import expect

    calls = await site.call(
        "POST",
        "/queues",
        {"name": "Calls", "channels": ["voice"], "priority": 80, "auto_accept": True,
         "service_level_percent": 80, "service_level_seconds": 1},
    )  # fmt: skip
    await site.call(
        "POST", "/queues", {"name": "Mail", "channels": ["email"], "priority": 20, "service_level_seconds": 14400}
    )
    await site.call(
        "PUT",
        f"/agents/{site.anna.id}/routing-profile",
        {"max_per_channel": {"voice": 1, "email": 5}, "cost": {"voice": 60, "email": 10}, "blocks": {}},
    )
    await site.call("PUT", f"/agents/{site.anna.id}/presence", {"status": "available"})

    context, page, errors = await open_page(browser, site, "/wallboard", site.supervisor.email)
    board = page.locator("fd-wallboard")
    shifts = board.get_by_role("region", name="Capacity shifts")
    await expect(shifts).to_contain_text("No capacity shifts yet", timeout=WAIT_MS)

    for n in range(3):
        customer = await site.call("POST", "/customers", {"name": f"Caller {n}"})
        await site.call("POST", "/conversations", {"customer_id": customer["id"], "channel": "voice"})
    shift = shifts.locator("li.in-effect")
    await expect(shift).to_be_visible(timeout=WAIT_MS)
    await expect(shift).to_contain_text("In effect")
    await expect(shift).to_contain_text("Agents of Calls stop taking E-mail: the projected service level")
    await expect(shift).to_contain_text("is below the target 80%.")
    history = await site.call("GET", f"/routing/capacity-shifts?queue_id={calls['id']}")
    assert [(h["direction"], h["channels"]) for h in history] == [("to", ["email"])]
    assert str(site.anna.id) in history[0]["agent_ids"]
    await page.screenshot(path=shot("wallboard-capacity-shift.png"), full_page=True)
    assert errors == []
    await context.close()


# -- one language: every label in Russian where a label belongs ------------------------------------

# English words of the labels (frontdesk/web/i18n.py LABELS) and raw codes that must not show in
# the Russian UI; brand names (API, WhatsApp, Telegram) read the same in both languages.
ENGLISH_LABELS = sorted(
    {w for kind in ("channel", "status", "presence", "priority") for w in i18n.LABELS[kind].values()}
    - {"API", "WhatsApp", "Telegram"}
)
RAW_CODES = ["VOICE", "SMS", "WEBCHAT", "EMAIL", "E-MAIL", "webchat", "voice", "sms", "after_call_work", "snoozed"]


def english_left(text: str) -> list[str]:
    words = [w for w in ENGLISH_LABELS if re.search(rf"(?<![\w@.]){re.escape(w)}(?![\w@])", text, re.IGNORECASE)]
    return words + [c for c in RAW_CODES if re.search(rf"(?<![\w@.]){re.escape(c)}(?![\w@])", text)]


async def test_desk_wallboard_and_admin_speak_russian_labels(browser: Any, site: Site) -> None:
    """A Russian-speaking team sees channels, statuses and states in Russian everywhere — the same
    word on every page — never an English label, a raw code or a server-made English placeholder;
    the 403 page names the role in a Russian sentence."""
    from playwright.async_api import expect

    ru = i18n.labels("ru")
    shop = await site.call(
        "POST",
        "/inboxes",
        {"name": "Приложение магазина", "channel": "api", "config": {"inbound_secret": INBOUND_SECRET}},
    )
    await site.call("POST", "/inboxes", {"name": "Почта поддержки", "channel": "email", "config": {}})
    await site.customer_writes(shop["id"], "Иван Сидоров", "ivan@example.com", "Где посылка?")
    receipt = {"filename": "чек.pdf", "content_type": "application/pdf", "content_base64": "JVBERi0xLjQgcmVjZWlwdA=="}
    photo = await site.customer_writes(
        shop["id"], "Ольга Петрова", "olga@example.com", "", text="", attachments=[receipt]
    )
    messages = await site.call("GET", f"/conversations/{photo['conversation_id']}/messages")
    assert [m["text"] for m in messages["items"]] == [""]  # nothing made up on the server
    for name, channel, status in (("Пётр Звонков", "voice", "open"), ("Смс Клиентова", "sms", "pending")):
        customer = await site.call("POST", "/customers", {"name": name})
        made = await site.call("POST", "/conversations", {"customer_id": customer["id"], "channel": channel})
        if status != "open":
            await site.call("PATCH", f"/conversations/{made['id']}", {"status": status})
    await site.call(
        "POST", "/queues", {"name": "Звонки и СМС", "channels": ["voice", "sms", "email"], "service_level_seconds": 20}
    )
    await site.call("PUT", f"/agents/{site.anna.id}/presence", {"status": "after_call_work"})
    await site.call("PUT", f"/agents/{site.boris.id}/presence", {"status": "busy"})

    # -- The desk (Boris, in Russian): every conversation with its channel and status in Russian.
    context, desk, errors = await open_page(browser, site, "/desk", site.boris.email, locale="ru-RU")
    await desk.locator('body[data-inbox-ready="1"]').wait_for(state="attached", timeout=WAIT_MS)
    await desk.locator("button.view[data-view='all']").click()
    rows = desk.get_by_role("listbox", name="Все").get_by_role("option")
    await expect(rows).to_have_count(4, timeout=WAIT_MS)
    badges = set(await desk.locator(".conv-list .ch-badge, [role=listbox] .ch-badge").all_inner_texts())
    assert badges == {ru["channel"][c] for c in ("api", "voice", "sms")}, badges
    assert set(await desk.locator("[role=listbox] .status-badge").all_inner_texts()) == {ru["status"]["pending"]}
    await expect(desk.get_by_role("option", name=re.compile("Ольга Петрова"))).to_contain_text("Вложения: чек.pdf")
    await desk.get_by_role("option", name=re.compile("Пётр Звонков")).click()
    await expect(desk.locator(".conv-assignee").last).to_have_text("Исполнитель не назначен", timeout=WAIT_MS)
    await desk.get_by_role("option", name=re.compile("Ольга Петрова")).click()
    await expect(desk.locator(".msg-files").last).to_contain_text("чек.pdf", timeout=WAIT_MS)
    text = await desk.locator("body").inner_text()
    assert english_left(text) == [], english_left(text)
    await desk.screenshot(path=shot("desk-ru.png"))
    assert errors == []
    await context.close()

    # -- The wallboard (Sam): channels and agents' states in the same words.
    context, page, errors = await open_page(browser, site, "/wallboard", site.supervisor.email, locale="ru-RU")
    board = page.locator("fd-wallboard")
    # Ivan and Olga wait for an answer (API inbox, no queue); nobody wrote in the call or the SMS.
    await expect(board.locator(".wb-queues tbody tr")).to_have_count(1, timeout=WAIT_MS)
    assert set(await board.locator(".wb-queues tbody td .channel").all_inner_texts()) == {ru["channel"]["api"]}
    states = set(await board.locator(".wb-agents .presence").all_inner_texts())
    assert {ru["presence"]["after_call_work"], ru["presence"]["busy"]} <= states, states
    await expect(board.get_by_role("region", name="Перераспределение нагрузки")).to_be_visible()
    text = await page.locator("body").inner_text()
    assert english_left(text) == [], english_left(text)
    assert errors == []
    # A supervisor is not an admin: the 403 page says so in a sentence, with the role in Russian.
    r = await page.goto(f"{site.base}/admin")
    assert r is not None
    assert r.status == 403
    await expect(page.locator("main")).to_contain_text("Эту страницу могут открыть только администраторы.")
    await expect(page.locator("main")).to_contain_text("Вы вошли как Sam Supervisor, ваша роль — супервизор.")
    await context.close()

    # -- The admin page (Ada): inboxes, queues and an agent's capacity in the same words.
    context, page, errors = await open_page(browser, site, "/admin", site.admin.email, locale="ru-RU")
    main = page.locator("#admin-panel")
    await page.goto(f"{site.base}/admin#inboxes")
    await expect(main.locator("fd-admin-inboxes tbody tr")).to_have_count(2, timeout=WAIT_MS)
    inbox_channels = set(await main.locator("fd-admin-inboxes tbody .channel").all_inner_texts())
    assert inbox_channels == {ru["channel"]["api"], ru["channel"]["email"]}, inbox_channels
    await page.goto(f"{site.base}/admin#queues")
    queue_row = main.locator("fd-admin-queues tbody tr")
    await expect(queue_row).to_contain_text(
        f"{ru['channel']['voice']}, {ru['channel']['sms']}, {ru['channel']['email']}"
    )
    await page.goto(f"{site.base}/admin#agents/{site.anna.id}")
    await expect(main.locator("form.profile-editor")).to_contain_text(ru["channel"]["webchat"], timeout=WAIT_MS)
    for section in ("inboxes", "queues", f"agents/{site.anna.id}", "rules", "skills"):
        await page.goto(f"{site.base}/admin#{section}")
        await expect(main.locator(".admin-section:not([hidden]) h2")).to_be_visible()
        text = await main.inner_text()
        assert english_left(text) == [], (section, english_left(text))
    await page.screenshot(path=shot("admin-ru.png"))
    assert errors == []
    await context.close()
