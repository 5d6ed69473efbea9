"""Web-chat sessions, identity verification, contact details, availability and attachments over HTTP."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from frontdesk.channels.webchat import service as webchat
from frontdesk.channels.webchat import visitor as visitors
from frontdesk.models import Conversation, Customer, Identity, Inbox, WebchatVisitor
from frontdesk.models.merge import MergeSuggestion
from tests.integration.webchat_helpers import IDENTITY_SECRET, make_webchat_inbox

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
    # The verified user joins the customer that already has that external id.
    async with app.state.db.transaction() as s:
        known = Customer(name="Ada", attributes={})
        s.add(known)
        await s.flush()
        s.add(Identity(customer_id=known.id, kind="external_id", value="42"))
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


async def test_known_email_joins_or_suggests_a_merge(app, client):
    inbox = await make_webchat_inbox(app.state.db)
    async with app.state.db.transaction() as s:
        known = Customer(name="Boris", attributes={})
        s.add(known)
        await s.flush()
        s.add(Identity(customer_id=known.id, kind="email", value="boris@example.com"))
    # A visitor with no conversation joins the known customer.
    fresh = (await start(client, inbox, email="Boris@Example.com", name="B")).json()
    assert fresh["customer"]["email_known"] is True
    assert (await customer_of(app, fresh["visitor_id"])).id == known.id
    # A visitor who already chatted stays apart; a merge suggestion is made.
    chatty = (await start(client, inbox)).json()
    me = await customer_of(app, chatty["visitor_id"])
    async with app.state.db.transaction() as s:
        s.add(Conversation(customer_id=me.id, channel="webchat", inbox_id=inbox.id, status="open"))
    r = await start(client, inbox, visitor_token=chatty["visitor_token"], email="boris@example.com")
    assert r.status_code == 200
    assert (await customer_of(app, chatty["visitor_id"])).id == me.id
    async with app.state.db.transaction() as s:
        suggestions = list((await s.scalars(select(MergeSuggestion))).all())
    assert {(x.customer_a_id, x.customer_b_id) for x in suggestions} == {tuple(sorted((me.id, known.id)))}
    # An unknown email is simply added.
    new = (await start(client, inbox, email="new@example.com")).json()
    assert ("email", "new@example.com") in await identities(app, (await customer_of(app, new["visitor_id"])).id)
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
    assert webchat.business_state(inbox.config, monday_noon) == (True, None)
    live = webchat.availability(inbox, 2, email_known=False, now=monday_noon)
    assert live == {
        "open": True,
        "agents_online": 2,
        "reply_expectation": "in a few minutes",
        "next_open_at": None,
        "ask_email": False,
    }
    nobody = webchat.availability(inbox, 0, email_known=False, now=monday_noon)
    assert (nobody["reply_expectation"], nobody["ask_email"]) == ("by email", True)
    monday_night = datetime(2026, 11, 23, 20, 0, tzinfo=UTC)
    closed = webchat.availability(inbox, 3, email_known=True, now=monday_night)
    assert closed["open"] is False
    assert closed["ask_email"] is False
    assert closed["next_open_at"] == "2026-11-27T08:00:00+00:00"  # Friday 09:00 Berlin
    assert webchat.business_state({}, monday_night) == (True, None)


async def test_session_availability_counts_agents(app, client, monkeypatch):
    # The count is cached for a second in production (it walks every live topic); not here.
    monkeypatch.setattr(webchat, "LOCAL_PRESENCE_SECONDS", 0.0)
    inbox = await make_webchat_inbox(app.state.db)
    body = (await start(client, inbox)).json()
    assert body["availability"]["agents_online"] == 0
    assert body["availability"]["ask_email"] is True
    sub = await app.state.hub.open([f"user:{uuid.uuid4()}", "desk"])  # what an agent's /ws follows
    try:
        body = (await start(client, inbox)).json()
        assert body["availability"]["agents_online"] == 1
        assert body["availability"]["reply_expectation"] == "in a few minutes"
    finally:
        await sub.close()


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


@pytest.mark.parametrize("token", ["", "v1.x.y", "v2." + str(uuid.uuid4()) + ".sig"])
def test_verify_token_refuses_garbage(token: str):
    assert visitors.verify_token(visitors.token_key("k"), token) is None
