"""Customers API and service, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from sqlalchemy import func, select, update

from frontdesk.customers import service
from frontdesk.errors import NotFound
from frontdesk.models import Attachment, AuditEntry, Conversation, Customer, CustomerEvent, Identity, Message
from frontdesk.storage import ObjectMissing
from tests.builders import auth_headers, create_customer_via_api

API = "/api/v1/customers"


async def _add_conversation(app, customer_id: str, text: str, html: str | None = None) -> uuid.UUID:
    async with app.state.db.transaction() as s:
        conv = Conversation(customer_id=uuid.UUID(customer_id), channel="email", subject=f"Re: {text[:40]}")
        s.add(conv)
        await s.flush()
        s.add(
            Message(
                conversation_id=conv.id,
                customer_id=uuid.UUID(customer_id),
                direction="in",
                channel="email",
                author_type="customer",
                text=text,
                html=html,
                delivery_status="received",
                meta={"from": text},
            )
        )
    return conv.id


async def _audit_actions(app, customer_id: str) -> list[str]:
    async with app.state.db.transaction() as s:
        rows = await s.scalars(
            select(AuditEntry.action).where(AuditEntry.entity_id == customer_id).order_by(AuditEntry.id)
        )
        return list(rows)


# -- create ------------------------------------------------------------------------------------


async def test_create_normalises_identities_and_returns_them(client, agent, app):
    body = await create_customer_via_api(
        client,
        agent,
        name="Ann Smith",
        locale="en-GB",
        time_zone="Europe/London",
        attributes={"plan": "gold", "orders": 3},
        satisfaction_tier="promoter",
        lifetime_value="120.50",
        identities=[
            {"kind": "email", "value": " Ann.Smith@Example.COM "},
            {"kind": "phone", "value": "+44 20 7946 0958"},
        ],
    )
    assert body["name"] == "Ann Smith"
    assert body["time_zone"] == "Europe/London"
    assert body["lifetime_value"] == "120.50"
    assert sorted((i["kind"], i["value"]) for i in body["identities"]) == [
        ("email", "ann.smith@example.com"),
        ("phone", "+442079460958"),
    ]
    r = await client.get(f"{API}/{body['id']}", headers=agent)
    assert r.status_code == 200
    assert r.json()["attributes"] == {"plan": "gold", "orders": 3}
    assert r.json()["consents"] == []
    assert await _audit_actions(app, body["id"]) == ["customer.created"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"identities": [{"kind": "email", "value": "not-an-email"}]}, "identities.0.value"),
        ({"identities": [{"kind": "phone", "value": "12"}]}, "identities.0.value"),
        ({"time_zone": "Mars/Olympus"}, "time_zone"),
        ({"lifetime_value": "-1"}, "lifetime_value"),
        ({"satisfaction_tier": "ecstatic"}, "satisfaction_tier"),
        ({"attributes": {"blob": "x" * 20_000}}, "attributes"),
        ({"name": "a\x00b"}, "name"),
    ],
)
async def test_create_rejects_bad_input_naming_the_field(client, agent, body, field):
    r = await client.post(API, json=body, headers=agent)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert field in [e["field"] for e in r.json()["errors"]]


async def test_identity_owned_by_another_customer_is_409_naming_it(client, agent):
    first = await create_customer_via_api(
        client, agent, name="First", identities=[{"kind": "email", "value": "dup@example.com"}]
    )
    r = await client.post(
        API, json={"name": "Second", "identities": [{"kind": "email", "value": "DUP@example.com"}]}, headers=agent
    )
    assert r.status_code == 409
    assert "email:dup@example.com" in r.json()["detail"]
    assert first["id"] in r.json()["detail"]
    # Nothing of the second customer was stored.
    r = await client.get(API, params={"q": "Second"}, headers=agent)
    assert r.json()["items"] == []

    second = await create_customer_via_api(client, agent, name="Second")
    r = await client.post(
        f"{API}/{second['id']}/identities", json={"kind": "email", "value": "dup@example.com"}, headers=agent
    )
    assert r.status_code == 409
    assert first["id"] in r.json()["detail"]


async def test_requires_sign_in(client):
    r = await client.get(API)
    assert r.status_code == 401


# -- search and pagination ---------------------------------------------------------------------


async def test_search_by_name_identity_attribute_and_tier(client, agent):
    ivan = await create_customer_via_api(
        client,
        agent,
        name="Иван Петров",
        attributes={"plan": "gold", "orders": 3, "vip": True},
        satisfaction_tier="promoter",
        identities=[{"kind": "phone", "value": "+7 912 345-67-89"}],
    )
    ann = await create_customer_via_api(
        client,
        agent,
        name="Ann Smith",
        attributes={"plan": "silver", "orders": 30},
        identities=[{"kind": "email", "value": "ann@example.com"}],
    )

    async def ids(**params):
        r = await client.get(API, params=params, headers=agent)
        assert r.status_code == 200, r.text
        return [c["id"] for c in r.json()["items"]]

    assert await ids(q="иван") == [ivan["id"]]
    assert await ids(q="SMITH") == [ann["id"]]
    assert await ids(q="ANN@example.com") == [ann["id"]]
    assert await ids(q="+79123456789") == [ivan["id"]]
    assert await ids(q="%") == []
    assert await ids(identity="phone:+7 (912) 345 67 89") == [ivan["id"]]
    assert await ids(identity="Ann@Example.com") == [ann["id"]]
    assert await ids(identity="email:ann@example.com") == [ann["id"]]
    assert await ids(identity="email:nobody@example.com") == []
    assert await ids(attribute="plan=gold") == [ivan["id"]]
    assert await ids(attribute="orders=30") == [ann["id"]]
    assert await ids(attribute="orders=3") == [ivan["id"]]
    assert await ids(attribute="vip=true") == [ivan["id"]]
    assert await ids(attribute=["plan=silver", "orders=30"]) == [ann["id"]]
    assert await ids(attribute=["plan=silver", "orders=3"]) == []
    assert await ids(satisfaction_tier="promoter") == [ivan["id"]]
    assert set(await ids()) == {ivan["id"], ann["id"]}

    r = await client.get(API, params={"q": "Ann"}, headers=agent)
    assert r.json()["items"][0]["identities"][0]["value"] == "ann@example.com"

    r = await client.get(API, params={"identity": "hello"}, headers=agent)
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "identity"
    r = await client.get(API, params={"attribute": "no-equals-sign"}, headers=agent)
    assert r.status_code == 422
    r = await client.get(API, params={"cursor": "garbage"}, headers=agent)
    assert r.status_code == 422


async def test_the_name_filter_ignores_case_and_accents_on_both_databases(client, agent):
    jose = await create_customer_via_api(client, agent, name="José Muñoz")
    muller = await create_customer_via_api(client, agent, name="Hans Muller")
    lukasz = await create_customer_via_api(client, agent, name="Łukasz 100%_sure")

    async def ids(q: str) -> list[str]:
        r = await client.get(API, params={"q": q}, headers=agent)
        assert r.status_code == 200, r.text
        return [c["id"] for c in r.json()["items"]]

    assert await ids("jose munoz") == [jose["id"]]
    assert await ids("JOSÉ") == [jose["id"]]
    assert await ids("MÜLLER") == [muller["id"]]
    assert await ids("muller") == [muller["id"]]
    assert await ids("lukasz") == [lukasz["id"]]
    assert await ids("100%_s") == [lukasz["id"]]
    assert await ids("100%x") == []  # % and _ are plain characters, not wildcards


async def test_pagination_walks_every_customer_once_newest_first(client, agent, frozen_clock):
    created = []
    for i in range(11):
        created.append((await create_customer_via_api(client, agent, name=f"Page {i:02d}"))["id"])
        if i % 3 == 0:  # several customers share a timestamp: the id breaks the tie
            frozen_clock.advance(seconds=1)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 4} | ({"cursor": cursor} if cursor else {})
        r = await client.get(API, params=params, headers=agent)
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["items"]) <= 4
        seen.extend(c["id"] for c in page["items"])
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(created))
    assert pages == 3
    r = await client.get(API, params={"limit": 0}, headers=agent)
    assert r.status_code == 422


# -- update, delete ------------------------------------------------------------------------------


async def test_patch_merges_attributes_and_null_deletes(client, agent, app):
    c = await create_customer_via_api(client, agent, name="Merge Me", attributes={"a": 1, "b": 2, "keep": "yes"})
    r = await client.patch(
        f"{API}/{c['id']}", json={"attributes": {"a": 10, "b": None, "c": [1, 2]}, "locale": "ru"}, headers=agent
    )
    assert r.status_code == 200, r.text
    assert r.json()["attributes"] == {"a": 10, "keep": "yes", "c": [1, 2]}
    assert r.json()["locale"] == "ru"
    assert r.json()["name"] == "Merge Me"
    r = await client.patch(f"{API}/{c['id']}", json={"lifetime_value": None}, headers=agent)
    assert r.status_code == 422
    r = await client.patch(f"{API}/{uuid.uuid4()}", json={"name": "x"}, headers=agent)
    assert r.status_code == 404
    assert await _audit_actions(app, c["id"]) == ["customer.created", "customer.updated"]


async def test_delete_needs_supervisor_and_no_conversations(client, agent, supervisor, app):
    quiet = await create_customer_via_api(
        client, agent, name="Quiet", identities=[{"kind": "email", "value": "q@example.com"}]
    )
    talker = await create_customer_via_api(client, agent, name="Talker")
    await _add_conversation(app, talker["id"], "hello")

    r = await client.delete(f"{API}/{quiet['id']}", headers=agent)
    assert r.status_code == 403
    r = await client.delete(f"{API}/{talker['id']}", headers=supervisor)
    assert r.status_code == 409
    assert "erase" in r.json()["detail"]
    r = await client.delete(f"{API}/{quiet['id']}", headers=supervisor)
    assert r.status_code == 204
    r = await client.get(f"{API}/{quiet['id']}", headers=agent)
    assert r.status_code == 404
    # Its identity is free again.
    await create_customer_via_api(
        client, agent, name="New owner", identities=[{"kind": "email", "value": "q@example.com"}]
    )
    assert "customer.deleted" in await _audit_actions(app, quiet["id"])


# -- identities and consents -----------------------------------------------------------------------


async def test_add_and_remove_identities(client, agent):
    c = await create_customer_via_api(client, agent, name="Ids")
    url = f"{API}/{c['id']}/identities"
    r = await client.post(url, json={"kind": "phone", "value": "+1 (202) 555-0143"}, headers=agent)
    assert r.status_code == 201, r.text
    ident = r.json()
    assert ident["value"] == "+12025550143"
    r = await client.post(url, json={"kind": "phone", "value": "+12025550143"}, headers=agent)
    assert r.status_code == 200
    assert r.json()["id"] == ident["id"]
    r = await client.post(url, json={"kind": "email", "value": "bad"}, headers=agent)
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "value"

    r = await client.delete(f"{url}/{ident['id']}", headers=agent)
    assert r.status_code == 204
    r = await client.delete(f"{url}/{ident['id']}", headers=agent)
    assert r.status_code == 404
    r = await client.get(f"{API}/{c['id']}", headers=agent)
    assert r.json()["identities"] == []


async def test_consents_upsert(client, agent, frozen_clock, app):
    c = await create_customer_via_api(client, agent, name="Consenting")
    url = f"{API}/{c['id']}/consents/sms/marketing"
    r = await client.put(url, json={"status": "granted", "source": "signup form"}, headers=agent)
    assert r.status_code == 200, r.text
    first_at = r.json()["recorded_at"]
    frozen_clock.advance(hours=1)
    r = await client.put(url, json={"status": "withdrawn", "source": "STOP reply"}, headers=agent)
    assert r.status_code == 200
    assert r.json()["status"] == "withdrawn"
    assert r.json()["recorded_at"] > first_at
    await client.put(f"{API}/{c['id']}/consents/email/service", json={"status": "granted"}, headers=agent)

    r = await client.get(f"{API}/{c['id']}/consents", headers=agent)
    assert [(x["channel"], x["category"], x["status"], x["source"]) for x in r.json()] == [
        ("email", "service", "granted", None),
        ("sms", "marketing", "withdrawn", "STOP reply"),
    ]
    r = await client.put(f"{API}/{c['id']}/consents/pigeon/marketing", json={"status": "granted"}, headers=agent)
    assert r.status_code == 422
    r = await client.put(url, json={"status": "maybe"}, headers=agent)
    assert r.status_code == 422
    r = await client.put(f"{API}/{uuid.uuid4()}/consents/sms/marketing", json={"status": "granted"}, headers=agent)
    assert r.status_code == 404


# -- export and erase -------------------------------------------------------------------------------


async def test_export_then_erase_removes_personal_data(client, agent, supervisor, app):
    email = "erase.me@example.com"
    c = await create_customer_via_api(
        client,
        agent,
        name="Erik Eraseme",
        attributes={"contact": email, "plan": "gold"},
        identities=[{"kind": "email", "value": email}, {"kind": "phone", "value": "+44 20 7946 0958"}],
    )
    cid = c["id"]
    await client.put(
        f"{API}/{cid}/consents/email/marketing", json={"status": "granted", "source": email}, headers=agent
    )
    conv_id = await _add_conversation(app, cid, f"Hi, I am {email}", html=f"<p>{email}</p>")
    r = await client.post(
        "/api/v1/events", json={"type": "order.shipped", "customer_id": cid, "properties": {"to": email}}, headers=agent
    )
    assert r.status_code == 201, r.text
    # An agent sends the customer their passport scan back: the file is personal data too.
    scan = b"%PDF-1.4 passport of Erik Eraseme"
    r = await client.post(
        "/api/v1/attachments", files={"file": ("passport.pdf", scan, "application/pdf")}, headers=agent
    )
    attachment = r.json()
    r = await client.post(
        f"/api/v1/conversations/{conv_id}/messages",
        json={"text": "Here is your scan", "attachment_ids": [attachment["id"]]},
        headers=agent,
    )
    assert r.status_code == 201, r.text
    assert (await client.get(attachment["url"], headers=agent)).content == scan

    r = await client.get(f"{API}/{cid}/export", headers=agent)
    assert r.status_code == 200, r.text
    export = r.json()
    assert export["customer"]["id"] == cid
    assert export["customer"]["name"] == "Erik Eraseme"
    assert {i["value"] for i in export["identities"]} == {email, "+442079460958"}
    assert export["consents"][0]["channel"] == "email"
    assert export["events"][0]["properties"] == {"to": email}
    assert export["conversations"][0]["id"] == str(conv_id)
    assert export["conversations"][0]["messages"][0]["text"] == f"Hi, I am {email}"

    r = await client.post(f"{API}/{cid}/erase", headers=agent)
    assert r.status_code == 403
    r = await client.post(f"{API}/{cid}/erase", headers=supervisor)
    assert r.status_code == 200, r.text
    result = r.json()
    assert result["identities_removed"] == 2
    assert result["messages_redacted"] == 2
    assert result["attachments_redacted"] == 1
    assert result["events_redacted"] == 1
    # The file's bytes are gone from the attachment store, not just its name from the row.
    assert (await client.get(attachment["url"], headers=agent)).status_code == 404
    async with app.state.db.transaction() as s:
        key = await s.scalar(select(Attachment.storage_key).where(Attachment.id == uuid.UUID(attachment["id"])))
    with pytest.raises(ObjectMissing):
        await app.state.attachment_store.get(key)

    r = await client.get(f"{API}/{cid}/export", headers=agent)
    after = r.text
    assert email not in after
    assert "Erik" not in after
    assert "+442079460958" not in after
    export = r.json()
    assert export["customer"]["erased_at"] is not None
    # The skeleton stays so reports keep counting.
    assert len(export["conversations"]) == 1
    assert len(export["conversations"][0]["messages"]) == 2
    assert len(export["events"]) == 1
    assert export["events"][0]["type"] == "order.shipped"
    assert export["customer"]["attributes"] == {}
    # The email is free for a new customer and no longer finds the erased one.
    r = await client.get(API, params={"identity": email}, headers=agent)
    assert r.json()["items"] == []
    assert "customer.erased" in await _audit_actions(app, cid)
    # Nothing personal went into the audit log either.
    async with app.state.db.transaction() as s:
        data = [json.dumps(d) for d in await s.scalars(select(AuditEntry.data))]
    assert not any(email in d for d in data)


async def test_erase_removes_rejected_inputs_and_deletes_files_even_after_a_crash(
    client, agent, supervisor, app, monkeypatch
):
    """Refused input that names the customer (their id, or an identity of theirs) is deleted with
    the erase. The store objects (attachments, raw emails) are deleted by due work written in the
    erase's own transaction: a process that dies right after the commit leaves them to the next run."""
    from frontdesk import timers
    from frontdesk.channels.email.inbound import receive_raw
    from frontdesk.models import RejectedInput
    from frontdesk.wiring import timer_handlers

    email = "crash.me@example.com"
    raw = (
        f"From: Carl Crash <{email}>\r\nTo: help@example.net\r\nSubject: my passport\r\n"
        "Message-ID: <crash-1@example.com>\r\n\r\nMy passport number is 7311 123456\r\n"
    ).encode()
    mailed = await receive_raw(app, raw)  # a new customer, known by this address
    assert mailed.status == "accepted"
    assert mailed.raw_key is not None
    cid = str(mailed.customer_id)
    r = await client.post(
        "/api/v1/attachments", files={"file": ("passport.pdf", b"%PDF-1.4 Carl", "application/pdf")}, headers=agent
    )
    attachment = r.json()
    r = await client.post(
        f"/api/v1/conversations/{mailed.conversation_id}/messages",
        json={"text": "Your scan", "attachment_ids": [attachment["id"]]},
        headers=agent,
    )
    assert r.status_code == 201, r.text
    # Refused input: one names the customer by id, one by their email (in another case); a third
    # is someone else's.
    r = await client.post(
        "/api/v1/events",
        json={"type": "Bad Type!", "customer_id": cid, "properties": {"passport": "7311"}},
        headers=agent,
    )
    assert r.status_code == 422
    r = await client.post(
        "/api/v1/events/batch",
        json={"events": [{"type": "x.y", "identity": {"kind": "email", "value": email.upper()}, "properties": 1}]},
        headers=agent,
    )
    assert r.json()["rejected"] == 1
    r = await client.post(
        "/api/v1/events",
        json={"type": "Bad Type!", "identity": {"kind": "email", "value": "other@example.com"}},
        headers=agent,
    )
    assert r.status_code == 422
    async with app.state.db.transaction() as s:
        att_key = await s.scalar(select(Attachment.storage_key).where(Attachment.id == uuid.UUID(attachment["id"])))
        assert await s.scalar(select(func.count()).select_from(RejectedInput)) == 3
    store = app.state.attachment_store
    assert await store.get(mailed.raw_key) == raw

    # The process dies right after the erase commits: nothing after the commit runs.
    await app.state.loops.stop()  # the due work runs by hand below

    async def died() -> None:
        return None

    with monkeypatch.context() as m:
        m.setattr("frontdesk.deps.run_after_commit", lambda session: died())
        r = await client.post(f"{API}/{cid}/erase", headers=supervisor)
    assert r.status_code == 200, r.text
    assert await store.get(att_key) == b"%PDF-1.4 Carl"  # still there: the crash
    async with app.state.db.transaction() as s:
        left = list(await s.scalars(select(RejectedInput)))
    assert len(left) == 1
    assert b"other@example.com" in left[0].body
    assert "Carl" not in (await client.get(f"{API}/{cid}/export", headers=agent)).text

    # The next run of the due work deletes the files.
    assert await timers.TimerLoop(app.state.db, app.state.settings, handlers=timer_handlers()).run_due() >= 1
    for key in (att_key, mailed.raw_key):
        with pytest.raises(ObjectMissing):
            await store.get(key)


# -- merged customers --------------------------------------------------------------------------------


async def test_merged_customer_reads_as_survivor(client, agent, supervisor, app):
    survivor = await create_customer_via_api(
        client, agent, name="Survivor", identities=[{"kind": "email", "value": "s@example.com"}]
    )
    ghost = await create_customer_via_api(client, agent, name="Ghost")
    async with app.state.db.transaction() as s:
        await s.execute(
            update(Customer)
            .where(Customer.id == uuid.UUID(ghost["id"]))
            .values(merged_into_id=uuid.UUID(survivor["id"]))
        )
    r = await client.get(f"{API}/{ghost['id']}", headers=agent)
    assert r.status_code == 200
    assert r.json()["id"] == survivor["id"]
    assert r.json()["merged_from"] == ghost["id"]
    r = await client.get(f"{API}/{survivor['id']}", headers=agent)
    assert r.json()["merged_from"] is None
    r = await client.get(API, headers=agent)
    assert [c["id"] for c in r.json()["items"]] == [survivor["id"]]
    r = await client.patch(f"{API}/{ghost['id']}", json={"name": "x"}, headers=agent)
    assert r.status_code == 409
    assert survivor["id"] in r.json()["detail"]
    r = await client.get(f"{API}/{ghost['id']}/export", headers=agent)
    assert r.json()["customer"]["id"] == survivor["id"]
    assert [m["id"] for m in r.json()["merged_records"]] == [ghost["id"]]
    r = await client.post(f"{API}/{ghost['id']}/erase", headers=supervisor)
    assert sorted(r.json()["erased_customer_ids"]) == sorted([survivor["id"], ghost["id"]])


# -- service functions other packages call ----------------------------------------------------------


async def test_resolve_by_identity_finds_or_creates(db):
    async with db.transaction() as s:
        first = await service.resolve_by_identity(s, "email", "New.Person@Example.com", name="New Person")
    async with db.transaction() as s:
        again = await service.resolve_by_identity(s, "email", " new.person@example.COM")
        found = await service.find_by_identity(s, "email", "NEW.PERSON@example.com")
        none = await service.find_by_identity(s, "email", "other@example.com")
        with pytest.raises(NotFound):
            await service.resolve_by_identity(s, "email", "other@example.com", create=False)
        got = await service.get_customer(s, first.id)
    assert again.id == first.id == found.id == got.id
    assert got.name == "New Person"
    assert none is None
    async with db.transaction() as s:
        with pytest.raises(NotFound):
            await service.get_customer(s, uuid.uuid4())
        assert await s.scalar(select(func.count()).select_from(Customer)) == 1


@pytest.mark.parametrize("backend", ["postgresql"])  # SQLite serialises writers: no race to test
async def test_resolve_by_identity_concurrently_makes_one_customer(db, backend):

    async def resolve() -> uuid.UUID:
        async with db.transaction() as s:
            customer = await service.resolve_by_identity(s, "email", "race@example.com")
            await asyncio.sleep(0.01)  # hold the transaction open so the others collide
            return customer.id

    ids = await asyncio.gather(*(resolve() for _ in range(10)))
    assert len(set(ids)) == 1
    async with db.transaction() as s:
        assert await s.scalar(select(func.count()).select_from(Customer)) == 1
        assert await s.scalar(select(func.count()).select_from(Identity)) == 1
        assert await s.scalar(select(func.count()).select_from(CustomerEvent)) == 0


# -- identities: at most max_identities_per_customer, listed page by page -----------------------


async def _give_identities(app, customer_id: str, count: int) -> None:
    async with app.state.db.transaction() as s:
        for i in range(count):
            s.add(Identity(customer_id=uuid.UUID(customer_id), kind="external_id", value=f"crm-{customer_id}-{i:04}"))


async def test_identities_are_capped_and_listed_page_by_page(client, agent, app):
    app.state.settings.max_identities_per_customer = 60
    customer = await create_customer_via_api(
        client, agent, name="Many Ids", identities=[{"kind": "email", "value": "m@example.com"}]
    )
    cid = customer["id"]
    await _give_identities(app, cid, 58)

    r = await client.post(f"{API}/{cid}/identities", json={"kind": "phone", "value": "+447700900123"}, headers=agent)
    assert r.status_code == 201, r.text  # the 60th
    r = await client.post(f"{API}/{cid}/identities", json={"kind": "phone", "value": "+447700900124"}, headers=agent)
    assert r.status_code == 409
    assert r.headers["content-type"] == "application/problem+json"
    assert "at most" in r.json()["detail"] or "the most one customer may hold (60)" in r.json()["detail"]
    r = await client.post(f"{API}/{cid}/identities", json={"kind": "phone", "value": "+447700900123"}, headers=agent)
    assert r.status_code == 200  # one it already has is still fine

    shown = (await client.get(f"{API}/{cid}", headers=agent)).json()
    assert len(shown["identities"]) == 50
    assert shown["identities"][0]["value"] == "m@example.com"  # oldest first
    cursor = shown["identities_next_cursor"]
    assert cursor
    rest = (await client.get(f"{API}/{cid}/identities", params={"cursor": cursor}, headers=agent)).json()
    assert rest["next_cursor"] is None
    values = [i["value"] for i in shown["identities"] + rest["items"]]
    assert len(values) == len(set(values)) == 60
    assert values[-1] == "+447700900123"
    pages, cursor = [], None
    while True:
        page = (
            await client.get(f"{API}/{cid}/identities", params={"limit": 7, **({"cursor": cursor} if cursor else {})},
                             headers=agent)
        ).json()  # fmt: skip
        pages += [i["value"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == values

    listed = (await client.get(API, params={"q": "Many Ids"}, headers=agent)).json()["items"]
    assert len(listed[0]["identities"]) == 50
    assert listed[0]["identities_next_cursor"] == shown["identities_next_cursor"]
    small = (
        await client.get(f"{API}/{(await create_customer_via_api(client, agent, name='Few'))['id']}", headers=agent)
    ).json()
    assert small["identities_next_cursor"] is None


async def test_a_merge_over_the_identity_cap_is_refused_and_changes_nothing(client, agent, app):
    supervisor = await auth_headers(app, "supervisor")
    app.state.settings.max_identities_per_customer = 30
    a = (await create_customer_via_api(client, agent, name="A"))["id"]
    b = (await create_customer_via_api(client, agent, name="B"))["id"]
    await _give_identities(app, a, 20)
    await _give_identities(app, b, 11)
    r = await client.post(f"{API}/{a}/merge", json={"other_id": b}, headers=supervisor)
    assert r.status_code == 409, r.text
    assert "31 together" in r.json()["detail"]
    assert r.json()["max_identities"] == 30
    for cid, n in ((a, 20), (b, 11)):
        body = (await client.get(f"{API}/{cid}", headers=agent)).json()
        assert body["id"] == cid  # not merged
        assert len(body["identities"]) == n
    async with app.state.db.transaction() as s:
        own = await s.scalars(select(Identity).where(Identity.customer_id == uuid.UUID(b)))
        await s.delete(next(iter(own)))
    r = await client.post(f"{API}/{a}/merge", json={"other_id": b}, headers=supervisor)
    assert r.status_code == 201, r.text
    assert len((await client.get(f"{API}/{a}", headers=agent)).json()["identities"]) == 30
