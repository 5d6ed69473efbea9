"""Rejected inputs: what every intake keeps of what it refused, within bounds, and the admin API
that lists, downloads, replays and discards them. Both database backends."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
from sqlalchemy import func, select

from frontdesk.db import Database
from frontdesk.models import RejectedInput
from tests.builders import auth_headers
from tests.conftest import truncate_all

ONE_MB = b"x" * (1024 * 1024)


async def kept_bytes(app: Any) -> tuple[int, int]:
    """(rows, bytes) of everything ``rejected_inputs`` holds that a caller sent or we wrote about it."""
    r = RejectedInput
    async with app.state.db.transaction() as s:
        rows, size = (
            await s.execute(
                select(
                    func.count(),
                    func.coalesce(
                        func.sum(
                            func.length(r.body)
                            + func.length(r.reason)
                            + func.coalesce(func.length(r.content_type), 0)
                            + func.coalesce(func.length(r.source), 0)
                        ),
                        0,
                    ),
                ).select_from(r)
            )
        ).one()
    return int(rows), int(size)


async def test_anonymous_posts_to_a_missing_inbox_keep_a_small_bounded_number_of_bytes(app, client):
    """50 anonymous 1 MB posts used to keep 52 MB; now at most a few kilobytes."""
    missing = uuid.uuid4()
    for _ in range(50):
        r = await client.post(
            f"/api/v1/inboxes/{missing}/messages",
            content=ONE_MB,
            headers={"Content-Type": "application/json", "Idempotency-Key": uuid.uuid4().hex},
        )
        assert r.status_code == 404, r.text
    rows, size = await kept_bytes(app)
    assert rows <= 10
    assert size <= 16 * 1024, f"{size} bytes kept for 50 anonymous posts"
    # What is kept says what happened, with an excerpt of the body.
    async with app.state.db.transaction() as s:
        first = (await s.scalars(select(RejectedInput).order_by(RejectedInput.received_at))).first()
    assert first is not None
    assert f"inbox {missing}" in first.reason
    assert first.body == ONE_MB[: len(first.body)]
    assert 0 < len(first.body) <= 1024


async def test_signed_but_invalid_message_is_kept_whole(app, client):
    """A caller who proved who they are (a signed request to a real inbox) keeps the full body."""
    from tests.integration.test_apichannel import make_api_inbox, post_signed

    admin = await auth_headers(app, "admin")
    inbox_id, secret, _ = await make_api_inbox(client, admin)
    payload = {"sender": {"kind": "email"}, "text": "y" * 5000}
    r = await post_signed(client, inbox_id, secret, payload, key="k-1")
    assert r.status_code == 422
    async with app.state.db.transaction() as s:
        kept = (await s.scalars(select(RejectedInput))).all()
    assert [x.body for x in kept] == [orjson.dumps(payload)]


# -- the limits --------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def app_with(settings: Any, database_url: str, **limits: Any) -> AsyncIterator[Any]:
    """The real app with other rejected-input limits."""
    from asgi_lifespan import LifespanManager

    from frontdesk.app import create_app

    application = create_app(settings.model_copy(update={"run_loops": False, **limits}))
    try:
        async with LifespanManager(application, startup_timeout=60, shutdown_timeout=60):
            yield application
    finally:
        db = Database(database_url)
        try:
            await truncate_all(db)
        finally:
            await db.dispose()


def client_from(application: Any, ip: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=application, client=(ip, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def test_each_anonymous_sender_is_limited_and_anonymous_rows_are_a_ring(settings, database_url):
    async with app_with(
        settings, database_url, rejected_anonymous_per_minute=2, rejected_anonymous_max_rows=5
    ) as application:
        for n in range(8):  # eight addresses, three posts each
            async with client_from(application, f"198.51.100.{n}") as c:
                for _ in range(3):
                    r = await c.post(f"/api/v1/inboxes/{uuid.uuid4()}/messages", content=f"from {n}".encode())
                    assert r.status_code == 404
        async with application.state.db.transaction() as s:
            kept = list(await s.scalars(select(RejectedInput).order_by(RejectedInput.received_at)))
        assert len(kept) == 5  # at most five anonymous rows in all: the newest
        assert {x.origin for x in kept} <= {f"ip:198.51.100.{n}" for n in (5, 6, 7)}
        assert all(x.anonymous and x.meta == {} for x in kept)
        assert [x.body for x in kept][-1] == b"from 7"


async def test_a_known_sender_is_limited_per_minute(settings, database_url, frozen_clock):
    async with (
        app_with(settings, database_url, rejected_per_sender_per_minute=3) as application,
        client_from(application, "203.0.113.5") as c,
    ):
        headers = await auth_headers(application, "agent")
        for n in range(5):
            r = await c.post(
                "/api/v1/events", json={"type": f"Bad {n}", "customer_id": str(uuid.uuid4())}, headers=headers
            )
            assert r.status_code == 422  # always answered; only keeping is limited
        assert (await kept_bytes(application))[0] == 3
        frozen_clock.advance(minutes=1, seconds=1)
        r = await c.post("/api/v1/events", json={"type": "Bad again"}, headers=headers)
        assert r.status_code == 422
        assert (await kept_bytes(application))[0] == 4


async def test_bodies_stop_at_the_total_budget(settings, database_url):
    """Known senders keep whole bodies until the budget is spent; then only the reason."""
    async with (
        app_with(settings, database_url, rejected_max_total_mb=1, rejected_max_body_kb=600) as application,
        client_from(application, "203.0.113.6") as c,
    ):
        headers = await auth_headers(application, "agent")
        big = b"not JSON " + b"x" * (600 * 1024 - 9)
        for _ in range(3):
            r = await c.post("/api/v1/events/batch", content=big, headers=headers)
            assert r.status_code == 422
        async with application.state.db.transaction() as s:
            kept = list(await s.scalars(select(RejectedInput).order_by(RejectedInput.received_at)))
    assert [len(x.body) for x in kept] == [len(big), 1024 * 1024 - len(big), 0]
    assert [x.size for x in kept] == [len(big)] * 3
    assert "budget full" in kept[2].reason
    assert sum(len(x.body) for x in kept) <= 1024 * 1024


# -- the admin API ---------------------------------------------------------------------------------

API = "/api/v1/rejected-inputs"
DOMAIN_MAIL = "help@frontdesk.localhost"


async def audit_actions(app: Any, row_id: str) -> list[tuple[str, dict[str, Any]]]:
    from frontdesk.models import AuditEntry

    async with app.state.db.transaction() as s:
        rows = await s.scalars(
            select(AuditEntry).where(AuditEntry.entity_id == row_id).order_by(AuditEntry.created_at, AuditEntry.id)
        )
        return [(a.action, dict(a.data)) for a in rows]


async def test_admins_list_filter_page_read_and_download(app, client, frozen_clock):
    from frontdesk.channels.email.inbound import receive_raw

    admin = await auth_headers(app, "admin")
    agent = await auth_headers(app, "agent")
    no_from = b"To: " + DOMAIN_MAIL.encode() + b"\r\nSubject: who am I\r\nMessage-ID: <nf-1@example.com>\r\n\r\nHello"
    mailed = await receive_raw(app, no_from, envelope_to=(DOMAIN_MAIL,))
    assert mailed.status == "rejected"
    frozen_clock.advance(minutes=5)
    for n in range(3):
        r = await client.post(
            "/api/v1/events", json={"type": f"Bad {n}", "customer_id": str(uuid.uuid4())}, headers=agent
        )
        assert r.status_code == 422
        frozen_clock.advance(seconds=1)

    # Admins only, problem+json otherwise.
    r = await client.get(API, headers=agent)
    assert r.status_code == 403
    assert r.headers["content-type"].startswith("application/problem+json")
    r = await client.get(API, headers=admin)
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert [i["source"] for i in items] == ["api.events"] * 3 + ["email.smtp"]
    mail = items[-1]
    assert mail["id"] == str(mailed.rejected_id)
    assert "no sender address (From)" in mail["reason"]
    assert (mail["anonymous"], mail["complete"], mail["replayable"]) == (False, True, True)
    assert mail["size"] == mail["kept"] == len(no_from)
    assert mail["preview"].startswith("To: help@")
    assert mail["origin"] is None  # handed in directly, not by a network peer
    # Filters: the source, a time range; pages by cursor.
    r = await client.get(API, params={"source": "email.smtp"}, headers=admin)
    assert [i["id"] for i in r.json()["items"]] == [mail["id"]]
    since = (frozen_clock.current.replace(microsecond=0)).isoformat()
    r = await client.get(API, params={"since": since}, headers=admin)
    assert r.json()["items"] == []
    r = await client.get(API, params={"until": items[2]["received_at"]}, headers=admin)
    assert [i["id"] for i in r.json()["items"]] == [mail["id"]]
    r = await client.get(API, params={"since": "2026-11-23T09:00:00"}, headers=admin)
    assert r.status_code == 422  # a time without an offset is ambiguous
    seen, cursor = [], None
    while True:
        r = await client.get(API, params={"limit": 2} | ({"cursor": cursor} if cursor else {}), headers=admin)
        seen += [i["id"] for i in r.json()["items"]]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == [i["id"] for i in items]

    # One, and its raw bytes: always an attachment, never rendered.
    r = await client.get(f"{API}/{mail['id']}", headers=admin)
    assert r.json()["reason"] == mail["reason"]
    r = await client.get(f"{API}/{mail['id']}/raw", headers=admin)
    assert r.status_code == 200
    assert r.content == no_from
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.headers["content-disposition"] == f'attachment; filename="rejected-{mail["id"]}.eml"'
    assert r.headers["x-content-type-options"] == "nosniff"
    r = await client.get(f"{API}/{uuid.uuid4()}", headers=admin)
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")

    # Discard: gone for good, audited.
    r = await client.delete(f"{API}/{mail['id']}", headers=admin)
    assert r.status_code == 204
    assert (await client.get(f"{API}/{mail['id']}", headers=admin)).status_code == 404
    assert (await client.delete(f"{API}/{mail['id']}", headers=admin)).status_code == 404
    assert await audit_actions(app, mail["id"]) == [("rejected_input.discarded", {"source": "email.smtp"})]


async def test_an_event_replayed_after_the_cause_is_fixed_is_stored_and_a_failing_one_stays(app, client, frozen_clock):
    from datetime import timedelta

    admin = await auth_headers(app, "admin")
    agent = await auth_headers(app, "agent")
    # The sender's clock runs an hour ahead: "more than one day in the future" — until it is not.
    ahead = (frozen_clock.current + timedelta(days=1, hours=1)).isoformat()
    event = {"type": "order.shipped", "identity": {"kind": "email", "value": "ship@example.com"}, "occurred_at": ahead}
    unknown = {"type": "order.shipped", "customer_id": str(uuid.uuid4())}
    r = await client.post("/api/v1/events/batch", json={"events": [event, unknown]}, headers=agent)
    assert [x["status"] for x in r.json()["results"]] == ["rejected", "rejected"]
    items = (await client.get(API, params={"source": "api.events"}, headers=admin)).json()["items"]
    early = next(i for i in items if "future" in i["reason"])
    missing = next(i for i in items if "No customer" in i["reason"])

    r = await client.post(f"{API}/{early['id']}/replay", headers=admin)
    assert r.status_code == 200, r.text
    assert r.json()["outcome"] == "rejected"  # the cause still holds
    frozen_clock.advance(hours=2)
    r = await client.post(f"{API}/{early['id']}/replay", headers=admin)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["outcome"] == "accepted"
    assert out["event_id"] is not None
    r = await client.get(f"/api/v1/customers/{out['customer_id']}/events", headers=agent)
    assert [e["id"] for e in r.json()["items"]] == [out["event_id"]]
    assert (await client.get(f"{API}/{early['id']}", headers=admin)).status_code == 404  # stored: gone
    assert [a for a, _ in await audit_actions(app, early["id"])] == ["rejected_input.replayed"] * 2

    # A replay that fails again keeps the row, with the new reason and the count.
    r = await client.post(f"{API}/{missing['id']}/replay", headers=admin)
    assert r.json()["outcome"] == "rejected"
    assert "No customer" in r.json()["reason"]
    again = (await client.get(f"{API}/{missing['id']}", headers=admin)).json()
    assert (again["replays"], again["replayed_at"] is not None) == (1, True)
    assert (await kept_bytes(app))[0] == 1  # no second row for the second refusal


async def test_an_email_and_an_api_message_are_replayed_through_their_own_intakes(app, client):
    from frontdesk.channels.email.inbound import receive_raw
    from tests.integration.test_apichannel import make_api_inbox, post_signed

    admin = await auth_headers(app, "admin")
    # Mail from an address that was one of our inboxes is a loop: ignored, kept. Once the inbox
    # has another address, the replay stores it as the customer's message.
    r = await client.post(
        "/api/v1/inboxes",
        json={"name": "Sales", "channel": "email", "config": {"address": "sales@acme.example"}},
        headers=admin,
    )
    inbox = r.json()
    raw = (
        b"From: Sales Team <sales@acme.example>\r\nTo: help@frontdesk.localhost\r\nSubject: quote\r\n"
        b"Message-ID: <loop-1@acme.example>\r\n\r\nPlease send a quote"
    )
    first = await receive_raw(app, raw, envelope_from="sales@acme.example", envelope_to=(DOMAIN_MAIL,))
    assert first.status == "ignored"
    r = await client.patch(
        f"/api/v1/inboxes/{inbox['id']}", json={"config": {"address": "orders@acme.example"}}, headers=admin
    )
    assert r.status_code == 200, r.text
    r = await client.post(f"{API}/{first.rejected_id}/replay", headers=admin)
    assert r.status_code == 200, r.text
    assert r.json()["outcome"] == "accepted"
    assert r.json()["message_id"] is not None
    assert (await client.get(f"{API}/{first.rejected_id}", headers=admin)).status_code == 404

    # A signed message without Idempotency-Key is refused and kept whole; the admin vouches for it.
    api_inbox, secret, _ = await make_api_inbox(client, admin)
    message = {"sender": {"kind": "email", "value": "ada@example.com"}, "text": "Where is my order?"}
    r = await post_signed(client, api_inbox, secret, message, key=None)
    assert r.status_code == 422
    row = (await client.get(API, params={"source": "api.inbound"}, headers=admin)).json()["items"][0]
    assert (row["anonymous"], row["replayable"]) == (False, True)
    r = await client.post(f"{API}/{row['id']}/replay", headers=admin)
    assert r.json()["outcome"] == "accepted", r.text
    agent = await auth_headers(app, "agent")
    texts = (await client.get(f"/api/v1/conversations/{r.json()['conversation_id']}/messages", headers=agent)).json()
    assert [m["text"] for m in texts["items"]] == ["Where is my order?"]

    # An anonymous excerpt cannot be replayed.
    r = await client.post(f"/api/v1/inboxes/{uuid.uuid4()}/messages", content=orjson.dumps(message))
    assert r.status_code == 404
    row = (await client.get(API, params={"source": "api.inbound"}, headers=admin)).json()["items"][0]
    assert (row["anonymous"], row["replayable"]) == (True, False)
    r = await client.post(f"{API}/{row['id']}/replay", headers=admin)
    assert r.status_code == 409
    assert "proved nothing" in r.json()["detail"]
