"""Web-chat sessions, identity verification, contact details, availability and attachments over HTTP."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from frontdesk.channels.webchat import availability, runtime
from frontdesk.channels.webchat import visitor as visitors
from frontdesk.models import Conversation, Customer, Identity, Inbox, WebchatVisitor
from frontdesk.models.merge import MergeSuggestion
from tests.builders import auth_headers
from tests.builders.routing import create_queue_via_api, person, post, presence, profile, put
from tests.builders.webchat import IDENTITY_SECRET, make_webchat_inbox

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


async def start(client, inbox: Inbox, **body):  # type: ignore[no-untyped-def]
    return await client.post("/api/v1/widget/sessions", json={"inbox": inbox.public_token, **body})


async def customer_of(app, visitor_id: str) -> Customer:  # type: ignore[no-untyped-def]
    async with app.state.db.transaction() as s:
        v = await s.get(WebchatVisitor, uuid.UUID(visitor_id))
        assert v is not None
        c = await s.get(Customer, v.customer_id)
        assert c is not None
        return c


async def identities(app, customer_id: uuid.UUID) -> set[tuple[str, str]]:  # type: ignore[no-untyped-def]
    async with app.state.db.transaction() as s:
        rows = await s.scalars(select(Identity).where(Identity.customer_id == customer_id))
        return {(i.kind, i.value) for i in rows}


async def test_new_visitor_resume_and_forged_token(app, client):
    inbox = await make_webchat_inbox(app.state.db, title="Shop help")
    r = await start(client, inbox)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["visitor_token"].startswith(f"v1.{body['visitor_id']}.")
    assert body["customer"] == {"name": None, "email_known": False}
    assert body["conversation_id"] is None
    assert body["config"]["title"] == "Shop help"
    assert "identity_secret" not in str(body)
    assert r.headers["access-control-allow-origin"] == "*"
    again = (await start(client, inbox, visitor_token=body["visitor_token"])).json()
    assert again["visitor_id"] == body["visitor_id"]
    forged = body["visitor_token"][:-4] + "AAAA"
    other = (await start(client, inbox, visitor_token=forged)).json()
    assert other["visitor_id"] != body["visitor_id"]
    # A token of another inbox's visitor does not carry over.
    inbox2 = await make_webchat_inbox(app.state.db)
    third = (await start(client, inbox2, visitor_token=body["visitor_token"])).json()
    assert third["visitor_id"] != body["visitor_id"]
    assert (await client.post("/api/v1/widget/sessions", json={"inbox": "nope"})).status_code == 404


async def test_identity_verification(app, client):
    inbox = await make_webchat_inbox(app.state.db)
    good = visitors.user_hash(IDENTITY_SECRET, "42")
    for bad in ({"user_id": "42"}, {"user_id": "42", "user_hash": "0" * 64}, {"user_id": "43", "user_hash": good}):
        r = await start(client, inbox, **bad)
        assert r.status_code == 403, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
    # The verified user joins the customer that already has that external id (proven: the site's
    # API or an import vouched for it).
    async with app.state.db.transaction() as s:
        known = Customer(name="Ada", attributes={})
        s.add(known)
        await s.flush()
        s.add(Identity(customer_id=known.id, kind="external_id", value="42", verified=True))
    anon = (await start(client, inbox)).json()
    r = await start(client, inbox, visitor_token=anon["visitor_token"], user_id="42", user_hash=good)
    assert r.status_code == 200, r.text
    assert r.json()["visitor_id"] == anon["visitor_id"]  # an empty anonymous visitor moves
    assert (await customer_of(app, anon["visitor_id"])).id == known.id
    # An inbox without an identity secret cannot verify anyone.
    async with app.state.db.transaction() as s:
        plain = Inbox(name="plain", channel="webchat", public_token="plain-token", config={})
        s.add(plain)
    assert (await start(client, plain, user_id="42", user_hash=good)).status_code == 403
    # Another verified user on the same browser gets their own visitor.
    r2 = await start(
        client,
        inbox,
        visitor_token=r.json()["visitor_token"],
        user_id="7",
        user_hash=visitors.user_hash(IDENTITY_SECRET, "7"),
    )
    assert r2.json()["visitor_id"] != anon["visitor_id"]
    seven = await customer_of(app, r2.json()["visitor_id"])
    assert ("external_id", "7") in await identities(app, seven.id)


async def test_the_widget_never_takes_a_customer_past_the_identity_cap(app, client):
    """A signed-in user on ever more browsers, and claims typed into the widget, stop adding
    identities at the cap; the user still chats from every browser."""
    app.state.settings = app.state.settings.model_copy(update={"max_identities_per_customer": 3})
    inbox = await make_webchat_inbox(app.state.db)
    good = visitors.user_hash(IDENTITY_SECRET, "42")
    browsers = [(await start(client, inbox, user_id="42", user_hash=good)).json() for _ in range(5)]
    customer = await customer_of(app, browsers[0]["visitor_id"])
    assert {(await customer_of(app, b["visitor_id"])).id for b in browsers} == {customer.id}
    assert len(await identities(app, customer.id)) == 3  # the external id and two browsers
    r = await start(client, inbox, visitor_token=browsers[4]["visitor_token"], email="new-claim@example.org")
    assert r.status_code == 200, r.text
    assert ("email", "new-claim@example.org") not in await identities(app, customer.id)
    assert len(await identities(app, customer.id)) == 3


async def test_a_proof_takes_a_user_id_from_a_customer_who_only_claimed_it(app, client):
    """The HMAC proves user 42; a customer holding external id 42 unverified (a claim) does not get
    the signed-in visitor: the id moves to the visitor's customer, the holder gets a suggestion."""
    inbox = await make_webchat_inbox(app.state.db)
    async with app.state.db.transaction() as s:
        claimant = Customer(name="Mallory", attributes={})
        s.add(claimant)
        await s.flush()
        s.add(Identity(customer_id=claimant.id, kind="external_id", value="42", verified=False))
    good = visitors.user_hash(IDENTITY_SECRET, "42")
    anon = (await start(client, inbox)).json()
    r = await start(client, inbox, visitor_token=anon["visitor_token"], user_id="42", user_hash=good)
    assert r.status_code == 200, r.text
    mine = await customer_of(app, anon["visitor_id"])
    assert mine.id != claimant.id
    async with app.state.db.transaction() as s:
        held = (await s.scalars(select(Identity).where(Identity.kind == "external_id", Identity.value == "42"))).one()
        assert (held.customer_id, held.verified) == (mine.id, True)
        (suggestion,) = (await s.scalars(select(MergeSuggestion))).all()
    assert {suggestion.customer_a_id, suggestion.customer_b_id} == {mine.id, claimant.id}
    assert suggestion.reason == "verified_identity_taken"
    assert suggestion.evidence["source"] == "webchat_hmac"


async def test_a_known_email_is_a_claim_and_a_merge_suggestion(app, client):
    inbox = await make_webchat_inbox(app.state.db)
    async with app.state.db.transaction() as s:
        known = Customer(name="Boris", attributes={})
        s.add(known)
        await s.flush()
        s.add(Identity(customer_id=known.id, kind="email", value="boris@example.com", verified=True))
    # Even a visitor with no conversation stays who they are: the address is only claimed.
    fresh = (await start(client, inbox, email="Boris@Example.com", name="B")).json()
    assert fresh["customer"]["email_known"] is False
    assert fresh["conversation_id"] is None
    fresh_customer = await customer_of(app, fresh["visitor_id"])
    assert fresh_customer.id != known.id
    assert fresh_customer.name == "B"
    assert ("email", "boris@example.com") not in await identities(app, fresh_customer.id)
    # A visitor who already chatted stays apart too.
    chatty = (await start(client, inbox)).json()
    me = await customer_of(app, chatty["visitor_id"])
    async with app.state.db.transaction() as s:
        s.add(Conversation(customer_id=me.id, channel="webchat", inbox_id=inbox.id, status="open"))
    r = await start(client, inbox, visitor_token=chatty["visitor_token"], email="boris@example.com")
    assert r.status_code == 200
    assert (await customer_of(app, chatty["visitor_id"])).id == me.id
    async with app.state.db.transaction() as s:
        suggestions = list((await s.scalars(select(MergeSuggestion))).all())
        owner = await s.get(Customer, known.id)
        assert owner is not None
        assert owner.name == "Boris"  # the claimant's name never lands on the owner
    assert {(x.customer_a_id, x.customer_b_id) for x in suggestions} == {
        tuple(sorted((fresh_customer.id, known.id))),
        tuple(sorted((me.id, known.id))),
    }
    assert {x.reason for x in suggestions} == {"webchat_email_claimed"}
    # An unknown email is added to the visitor's customer, unverified (a claim nobody disputes).
    new = (await start(client, inbox, email="new@example.com")).json()
    assert new["customer"]["email_known"] is True
    async with app.state.db.transaction() as s:
        added = (await s.scalars(select(Identity).where(Identity.value == "new@example.com"))).one()
    assert added.customer_id == (await customer_of(app, new["visitor_id"])).id
    assert added.verified is False
    assert (await start(client, inbox, email="not an email")).status_code == 422


def test_business_hours_and_availability():
    inbox = Inbox(
        name="x",
        channel="webchat",
        public_token="t",
        config={
            "business_hours": {"tz": "Europe/Berlin", "days": {"mon": ["09:00", "18:00"], "fri": ["09:00", "17:00"]}}
        },
    )
    monday_noon = datetime(2026, 11, 23, 11, 0, tzinfo=UTC)  # 12:00 in Berlin
    assert availability.business_state(inbox.config, monday_noon) == (True, None)
    live = availability.availability(inbox, 2, email_known=False, now=monday_noon)
    assert live == {
        "open": True,
        "agents_online": 2,
        "reply_expectation": "in a few minutes",
        "next_open_at": None,
        "ask_email": False,
    }
    nobody = availability.availability(inbox, 0, email_known=False, now=monday_noon)
    assert (nobody["reply_expectation"], nobody["ask_email"]) == ("by email", True)
    monday_night = datetime(2026, 11, 23, 20, 0, tzinfo=UTC)
    closed = availability.availability(inbox, 3, email_known=True, now=monday_night)
    assert closed["open"] is False
    assert closed["ask_email"] is False
    assert closed["next_open_at"] == "2026-11-27T08:00:00+00:00"  # Friday 09:00 Berlin
    assert availability.business_state({}, monday_night) == (True, None)


async def test_agents_online_are_at_their_desk_available_and_take_this_inboxs_web_chat(app, client, monkeypatch):
    # Counts are cached for a moment in production; here every session reads them afresh.
    monkeypatch.setattr(runtime, "AVAILABILITY_SECONDS", 0.0)
    monkeypatch.setattr(runtime, "DESK_GRACE_SECONDS", 0.0)
    admin = await auth_headers(app, "admin")
    inbox = await make_webchat_inbox(app.state.db)
    other = await make_webchat_inbox(app.state.db)
    rt = runtime.runtime(app)

    async def online(box: Inbox = inbox) -> int:
        body = (await start(client, box)).json()
        live = body["availability"]["reply_expectation"] == "in a few minutes"
        assert live == (body["availability"]["agents_online"] > 0)
        assert body["availability"]["ask_email"] is not live
        return int(body["availability"]["agents_online"])

    anna_id, anna = await person(app, name="Anna")
    # A wallboard or admin tab follows the agent's topics but is not their desk.
    tab = await app.state.hub.open([f"user:{anna_id}", "desk"])
    try:
        assert await online() == 0
        await presence(client, anna, "available")
        assert await online() == 0, "available, but no desk open: nobody will answer"
        rt.desk_opened(anna_id)
        assert await online() == 1
        await presence(client, anna, "busy")
        assert await online() == 1
        for status in ("away", "after_call_work", "offline"):
            await presence(client, anna, status)
            assert await online() == 0, status
        await presence(client, anna, "available")
        rt.desk_opened(anna_id)  # a second desk tab
        rt.desk_closed(anna_id)
        assert await online() == 1, "one of her two desks is still open"
        rt.desk_closed(anna_id)
        assert await online() == 0
        rt.desk_opened(anna_id)
        assert await online() == 1

        # Routing decides who takes this inbox's web chat: a rule sends it to a queue of one team.
        team = await post(client, "/teams", {"name": "Site chat"}, admin)
        queue = await create_queue_via_api(client, admin, team_ids=[team["id"]])
        await post(
            client,
            "/routing/rules",
            {"name": "site", "queue_id": queue["id"], "conditions": {"inbox_ids": [str(inbox.id)]}},
            admin,
        )
        assert await online() == 0, "Anna is not in the team of the only queue this chat can reach"
        await put(client, f"/teams/{team['id']}/members/{anna_id}", None, admin)
        assert await online() == 1
        # Another inbox: no rule matches and no general queue serves web chat, so its chats wait
        # unrouted for anyone who takes web chat.
        assert await online(other) == 1
        # A general queue serves the other inbox's chat; it needs a skill Anna lacks.
        skill = await post(client, "/skills", {"name": "Russian"}, admin)
        await create_queue_via_api(client, admin, required_skills=[{"skill_id": skill["id"], "min_level": 5}])
        assert await online(other) == 0
        assert await online() == 1
        # An agent whose profile takes no web chat is not online for it.
        await profile(client, admin, anna_id, max_per_channel={"webchat": 0, "email": 5, "voice": 1})
        assert await online() == 0
        await profile(client, admin, anna_id)
        assert await online() == 1
        # A disabled user never is.
        r = await client.post(f"/api/v1/users/{anna_id}/disable", headers=admin)
        assert r.status_code == 200, r.text
        assert await online() == 0
    finally:
        await tab.close()


async def test_title_and_greeting_in_the_visitors_language(app, client):
    inbox = await make_webchat_inbox(
        app.state.db,
        title={"en": "Help", "ru": "Помощь", "pt-br": "Ajuda"},
        greeting={"en": "Hi! How can we help?", "ru": "Здравствуйте! Чем помочь?"},
        default_language="en",
    )

    async def shown(locale: str | None, box: Inbox = inbox) -> tuple[str, str | None, str | None]:
        body = {"locale": locale} if locale else {}
        config = (await start(client, box, **body)).json()["config"]
        return config["title"], config["greeting"], config["language"]

    assert await shown("ru") == ("Помощь", "Здравствуйте! Чем помочь?", "ru")
    assert await shown("ru-RU") == ("Помощь", "Здравствуйте! Чем помочь?", "ru")
    assert await shown("en-GB") == ("Help", "Hi! How can we help?", "en")
    # A language with a title but no greeting: each falls back on its own to the inbox default.
    assert await shown("pt-BR") == ("Ajuda", "Hi! How can we help?", "pt-br")
    assert await shown("pt") == ("Ajuda", "Hi! How can we help?", "pt-br")
    # A language the inbox has no text for, or none at all: the inbox default language.
    assert await shown("de-DE") == ("Help", "Hi! How can we help?", "en")
    assert await shown(None) == ("Help", "Hi! How can we help?", "en")
    russian_first = await make_webchat_inbox(
        app.state.db, title={"en": "Help", "ru": "Помощь"}, greeting={"ru": "Привет"}, default_language="ru"
    )
    assert await shown("de", russian_first) == ("Помощь", "Привет", "ru")
    assert await shown("en", russian_first) == ("Help", "Привет", "en")
    # Plain strings are every language's; no greeting set: none is sent (the widget has its own).
    plain = await make_webchat_inbox(app.state.db, title="Shop help")
    assert await shown("ru", plain) == ("Shop help", None, None)


async def test_attachments(app, client):
    inbox = await make_webchat_inbox(app.state.db)
    me = (await start(client, inbox)).json()
    other = (await start(client, inbox)).json()
    auth = {"Authorization": f"Visitor {me['visitor_token']}"}
    r = await client.post("/api/v1/widget/attachments", files={"file": ("shot.png", PNG, "image/png")}, headers=auth)
    assert r.status_code == 201, r.text
    att = r.json()
    assert (att["content_type"], att["size"]) == ("image/png", len(PNG))
    r = await client.post(
        "/api/v1/widget/attachments", files={"file": ("a.html", b"<script>", "text/html")}, headers=auth
    )
    assert r.status_code == 415
    r = await client.post(
        "/api/v1/widget/attachments", files={"file": ("fake.png", b"<svg onload=x>", "image/png")}, headers=auth
    )
    assert r.status_code == 415
    big = b"%PDF-" + b"0" * (app.state.settings.widget_max_attachment_mb * 1024 * 1024)
    r = await client.post(
        "/api/v1/widget/attachments", files={"file": ("big.pdf", big, "application/pdf")}, headers=auth
    )
    assert r.status_code == 413
    r = await client.post("/api/v1/widget/attachments", files={"file": ("shot.png", PNG, "image/png")})
    assert r.status_code == 401
    mine = await client.get(att["url"])  # the signed link: no visitor token in the URL
    assert mine.status_code == 200
    assert mine.content == PNG
    assert mine.headers["x-content-type-options"] == "nosniff"
    assert me["visitor_token"] not in att["url"]
    # The deprecated ?visitor_token= form still works for widgets cached before the links.
    old = await client.get(f"/api/v1/widget/attachments/{att['id']}", params={"visitor_token": me["visitor_token"]})
    assert old.status_code == 200
    theirs = await client.get(
        f"/api/v1/widget/attachments/{att['id']}", params={"visitor_token": other["visitor_token"]}
    )
    assert theirs.status_code == 404


async def test_widget_js_and_preflight(client):
    r = await client.get("/widget.js")
    if webchat_js_exists():
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/javascript")
        assert "max-age=86400" in r.headers["cache-control"]
    else:
        assert r.status_code == 503
    pre = await client.options(
        "/api/v1/widget/sessions",
        headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "POST"},
    )
    assert pre.status_code == 204
    assert pre.headers["access-control-allow-origin"] == "*"
    assert "Content-Type" in pre.headers["access-control-allow-headers"]


def webchat_js_exists() -> bool:
    from frontdesk.channels.webchat.api import WIDGET_JS

    return WIDGET_JS.is_file()


async def test_allowed_origins(app, client):
    inbox = await make_webchat_inbox(app.state.db, allowed_origins=["https://shop.example"])
    ok = await start_with_origin(client, inbox, "https://shop.example")
    assert ok.status_code == 200
    bad = await start_with_origin(client, inbox, "https://evil.example")
    assert bad.status_code == 403


async def start_with_origin(client, inbox: Inbox, origin: str):  # type: ignore[no-untyped-def]
    return await client.post("/api/v1/widget/sessions", json={"inbox": inbox.public_token}, headers={"Origin": origin})


@pytest.mark.parametrize("token", ["", "v1.x.y", "v2.9b0c4a46-2c1f-4d2a-8f61-3a5e7c1d2b90.sig"])
def test_verify_token_refuses_garbage(token: str):
    assert visitors.verify_token(visitors.token_key("k"), token) is None
