"""Merge suggestions, merge and unmerge: the rules, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from frontdesk import clock
from frontdesk.customers import merge, service
from frontdesk.db import Base
from frontdesk.errors import Conflict
from frontdesk.models import AuditEntry, Conversation, Customer, CustomerEvent, Identity, Message
from tests.builders import create_customer_via_api

API = "/api/v1"


@pytest.fixture
def settings(settings):
    return settings.model_copy(update={"run_loops": False})


async def create(client, headers, **body) -> str:
    return str((await create_customer_via_api(client, headers, **body))["id"])


async def detail(client, headers, customer_id) -> dict:
    r = await client.get(f"{API}/customers/{customer_id}", headers=headers)
    assert r.status_code == 200, r.text
    return dict(r.json())


# -- which tables move -------------------------------------------------------------------------------


def test_every_table_pointing_at_customers_is_handled_by_merge():
    import frontdesk.models  # noqa: F401  (every table registered)

    moved = {t.name for t in merge.moved_tables()}  # raises for a table it cannot move
    assert {"identities", "conversations", "messages", "customer_events"} <= moved
    for table in Base.metadata.sorted_tables:
        for column in table.columns:
            if any(fk.column.table.name == "customers" for fk in column.foreign_keys):
                handled = (
                    table.name in moved or table.name in merge.BY_RULE or (table.name, column.name) in merge.NOT_MOVED
                )
                assert handled, f"{table.name}.{column.name} is not moved by a merge"


# -- suggestions -----------------------------------------------------------------------------------


async def test_suggestion_is_idempotent_per_unordered_pair(app):
    db = app.state.db
    async with db.transaction() as s:
        a, b, c = Customer(name="A"), Customer(name="B"), Customer(name="C")
        s.add_all([a, b, c])
        await s.flush()
        first = await merge.suggest_merge(s, a.id, b.id, "webchat_prechat_email", evidence={"identity": "x"})
        again = await merge.suggest_merge(s, b.id, a.id, "something_else")
        assert first is not None
        assert again is not None
        assert again.id == first.id
        assert again.reason == "webchat_prechat_email"
        assert await merge.suggest_merge(s, a.id, a.id, "same") is None
        other = await merge.suggest_merge(s, a.id, c.id, "webchat_prechat_email")
        assert other is not None
        assert other.id != first.id
    async with db.transaction() as s:
        rows, _ = await merge.list_suggestions(s, status="open")
        assert len(rows) == 2
        # Rejected: not suggested again for the same reason; a different reason is new evidence.
        await merge.reject_suggestion(s, first.id, None)
        assert await merge.suggest_merge(s, a.id, b.id, "webchat_prechat_email") is None
        fresh = await merge.suggest_merge(s, a.id, b.id, "same_name_overlapping_identity")
        assert fresh is not None
        assert fresh.id != first.id


async def test_no_suggestion_names_a_merged_customer(app):
    db = app.state.db
    async with db.transaction() as s:
        a, b, c = Customer(name="A"), Customer(name="B"), Customer(name="C")
        s.add_all([a, b, c])
        await s.flush()
        await merge.merge_customers(s, a.id, b.id, None)
        assert await merge.suggest_merge(s, a.id, b.id, "x") is None  # already one customer
        via_ghost = await merge.suggest_merge(s, b.id, c.id, "x")
        assert via_ghost is not None
        assert {via_ghost.customer_a_id, via_ghost.customer_b_id} == {a.id, c.id}


async def test_adding_an_identity_owned_elsewhere_is_409_with_the_same_suggestion(client, agent, app):
    owner = await create(client, agent, name="Owner", identities=[{"kind": "phone", "value": "+44 20 7946 0958"}])
    other = await create(client, agent, name="Other")
    ids = []
    for value in ("+442079460958", "0044 20 7946 0958"):
        r = await client.post(
            f"{API}/customers/{other}/identities", json={"kind": "phone", "value": value}, headers=agent
        )
        assert r.status_code == 409
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["customer_id"] == owner
        assert "merge suggestion" in r.json()["detail"]
        ids.append(r.json()["merge_suggestion_id"])
    assert ids[0]
    assert ids[0] == ids[1]
    # Still two customers, the identity where it was.
    assert [i["value"] for i in (await detail(client, agent, owner))["identities"]] == ["+442079460958"]
    assert (await detail(client, agent, other))["identities"] == []
    r = await client.post(f"{API}/merge-suggestions/{ids[0]}/reject", headers=agent)
    assert r.status_code == 200
    assert r.json()["status"] == "rejected"
    r = await client.post(f"{API}/merge-suggestions/{ids[0]}/reject", headers=agent)
    assert r.status_code == 409
    r = await client.post(f"{API}/merge-suggestions/{ids[0]}/accept", headers=agent)
    assert r.status_code == 409
    r = await client.post(
        f"{API}/customers/{other}/identities", json={"kind": "phone", "value": "+442079460958"}, headers=agent
    )
    assert r.status_code == 409
    assert r.json()["merge_suggestion_id"] is None  # rejected pair: no nagging


async def test_matcher_finds_candidates_with_reasons(client, agent, app):
    email_owner = await create(client, agent, name="Ann", identities=[{"kind": "email", "value": "ann@example.com"}])
    visitor = await create(client, agent, name="Visitor", attributes={"contact": "ANN@example.com", "plan": "free"})
    twin = await create(client, agent, name="ann", identities=[{"kind": "external_id", "value": "ann@example.com"}])
    stranger = await create(client, agent, name="Bob", identities=[{"kind": "email", "value": "bob@example.com"}])
    async with app.state.db.transaction() as s:
        found = {c.customer_id: c for c in await merge.find_candidates(s, uuid.UUID(email_owner))}
        assert set(found) == {uuid.UUID(visitor), uuid.UUID(twin)}
        assert found[uuid.UUID(visitor)].reason == "identity_in_attributes"
        assert found[uuid.UUID(visitor)].evidence["attribute"] == "contact"
        assert found[uuid.UUID(twin)].reason == "same_name_overlapping_identity"
        assert found[uuid.UUID(twin)].evidence["kinds"] == ["email", "external_id"]
        from_visitor = await merge.find_candidates(s, uuid.UUID(visitor))
        assert [(c.customer_id, c.reason) for c in from_visitor] == [
            (uuid.UUID(email_owner), "attribute_matches_identity")
        ]
        assert await merge.find_candidates(s, uuid.UUID(stranger)) == []
    r = await client.post(f"{API}/customers/{email_owner}/merge-suggestions", headers=agent)
    assert r.status_code == 200
    assert sorted(x["reason"] for x in r.json()) == ["identity_in_attributes", "same_name_overlapping_identity"]
    r2 = await client.post(f"{API}/customers/{email_owner}/merge-suggestions", headers=agent)
    assert sorted(x["id"] for x in r2.json()) == sorted(x["id"] for x in r.json())


async def test_listing_suggestions_pages_and_filters(client, agent, app):
    db = app.state.db
    async with db.transaction() as s:
        people = [Customer(name=f"P{i}") for i in range(6)]
        s.add_all(people)
        await s.flush()
        made = [await merge.suggest_merge(s, people[0].id, p.id, "test") for p in people[1:]]
        await merge.reject_suggestion(s, made[0].id, None)  # type: ignore[union-attr]
    seen: list[str] = []
    cursor = None
    while True:
        params = {"status": "open", "limit": 2} | ({"cursor": cursor} if cursor else {})
        r = await client.get(f"{API}/merge-suggestions", params=params, headers=agent)
        assert r.status_code == 200, r.text
        seen += [x["id"] for x in r.json()["items"]]
        cursor = r.json()["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(str(m.id) for m in made[1:])  # type: ignore[union-attr]
    r = await client.get(f"{API}/merge-suggestions", params={"status": "rejected"}, headers=agent)
    assert [x["id"] for x in r.json()["items"]] == [str(made[0].id)]  # type: ignore[union-attr]
    r = await client.get(f"{API}/merge-suggestions", params={"customer_id": str(people[3].id)}, headers=agent)
    assert [x["id"] for x in r.json()["items"]] == [str(made[2].id)]  # type: ignore[union-attr]
    r = await client.get(f"{API}/merge-suggestions", params={"cursor": "nonsense"}, headers=agent)
    assert r.status_code == 422
    r = await client.get(f"{API}/merge-suggestions", params={"status": "maybe"}, headers=agent)
    assert r.status_code == 422


# -- merge and unmerge -------------------------------------------------------------------------------


async def test_merge_moves_everything_and_unmerge_restores_it(client, agent, supervisor, app, frozen_clock):
    db = app.state.db
    survivor = await create(
        client,
        agent,
        name="Ann Smith",
        attributes={"plan": "gold", "vip": True},
        lifetime_value="100.00",
        identities=[{"kind": "email", "value": "ann@example.com"}],
    )
    frozen_clock.advance(minutes=1)
    ghost = await create(
        client,
        agent,
        locale="en-GB",
        attributes={"plan": "silver", "city": "Paris"},
        lifetime_value="20.50",
        identities=[{"kind": "phone", "value": "+44 20 7946 0958"}],
    )
    # Consents: sms/marketing answered by both, the ghost's answer newer; email/service only on
    # the ghost; whatsapp/marketing answered by both, the survivor's newer.
    put = "{}/customers/{}/consents/{}/{}"
    assert (
        await client.put(put.format(API, survivor, "sms", "marketing"), json={"status": "granted"}, headers=agent)
    ).status_code == 200
    assert (
        await client.put(put.format(API, ghost, "whatsapp", "marketing"), json={"status": "denied"}, headers=agent)
    ).status_code == 200
    frozen_clock.advance(minutes=1)
    assert (
        await client.put(
            put.format(API, ghost, "sms", "marketing"),
            json={"status": "withdrawn", "source": "sms STOP"},
            headers=agent,
        )
    ).status_code == 200
    assert (
        await client.put(put.format(API, ghost, "email", "service"), json={"status": "granted"}, headers=agent)
    ).status_code == 200
    assert (
        await client.put(put.format(API, survivor, "whatsapp", "marketing"), json={"status": "granted"}, headers=agent)
    ).status_code == 200
    async with db.transaction() as s:
        conv = Conversation(customer_id=uuid.UUID(ghost), channel="sms")
        s.add(conv)
        await s.flush()
        for n in range(3):
            s.add(
                Message(
                    conversation_id=conv.id,
                    customer_id=uuid.UUID(ghost),
                    direction="in",
                    channel="sms",
                    author_type="customer",
                    text=f"sms {n}",
                    delivery_status="received",
                )
            )
        s.add(CustomerEvent(customer_id=uuid.UUID(ghost), type="order.shipped", occurred_at=clock.now()))
    frozen_clock.advance(minutes=1)

    r = await client.post(f"{API}/customers/{survivor}/merge", json={"other_id": ghost}, headers=agent)
    assert r.status_code == 403  # direct merges are for supervisors
    r = await client.post(f"{API}/customers/{survivor}/merge", json={"other_id": survivor}, headers=supervisor)
    assert r.status_code == 422
    r = await client.post(f"{API}/customers/{survivor}/merge", json={"other_id": str(uuid.uuid4())}, headers=supervisor)
    assert r.status_code == 404
    r = await client.post(f"{API}/customers/{survivor}/merge", json={"other_id": ghost}, headers=supervisor)
    assert r.status_code == 201, r.text
    done = r.json()
    assert done["moved"] == {"identities": 1, "conversations": 1, "messages": 3, "customer_events": 1, "consents": 1}
    assert done["attributes_added"] == ["city"]
    assert done["attributes_overridden"] == {"plan": "silver"}
    assert done["fields_filled"] == ["locale"]
    assert done["consents_overwritten"] == 1
    assert Decimal(done["lifetime_value_moved"]) == Decimal("20.50")

    one = await detail(client, agent, survivor)
    assert one["attributes"] == {"plan": "gold", "vip": True, "city": "Paris"}
    assert one["locale"] == "en-GB"
    assert Decimal(one["lifetime_value"]) == Decimal("120.50")
    assert sorted(i["kind"] for i in one["identities"]) == ["email", "phone"]
    consents = {(c["channel"], c["category"]): c["status"] for c in one["consents"]}
    assert consents == {
        ("sms", "marketing"): "withdrawn",
        ("email", "service"): "granted",
        ("whatsapp", "marketing"): "granted",
    }
    r = await client.get(f"{API}/customers/{survivor}/events", headers=agent)
    assert [e["type"] for e in r.json()["items"]] == ["order.shipped"]
    r = await client.post(f"{API}/customers/{survivor}/merge", json={"other_id": ghost}, headers=supervisor)
    assert r.status_code == 409  # already merged
    r = await client.patch(f"{API}/customers/{ghost}", json={"name": "x"}, headers=agent)
    assert r.status_code == 409
    r = await client.get(f"{API}/customers/{ghost}/merges", headers=agent)
    assert [m["id"] for m in r.json()] == [done["id"]]

    # Export of the survivor covers the merged record and the merge itself.
    r = await client.get(f"{API}/customers/{ghost}/export", headers=agent)
    assert r.json()["customer"]["id"] == survivor
    assert [m["id"] for m in r.json()["merged_records"]] == [ghost]
    assert [m["id"] for m in r.json()["merges"]] == [done["id"]]

    # Something happens to the survivor after the merge: it stays with the survivor.
    frozen_clock.advance(minutes=1)
    r = await client.patch(f"{API}/customers/{survivor}", json={"attributes": {"tier": "new"}}, headers=agent)
    assert r.status_code == 200
    async with db.transaction() as s:
        s.add(CustomerEvent(customer_id=uuid.UUID(survivor), type="page.viewed", occurred_at=clock.now()))

    r = await client.post(f"{API}/customer-merges/{done['id']}/unmerge", headers=supervisor)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "unmerged"
    r = await client.post(f"{API}/customer-merges/{done['id']}/unmerge", headers=supervisor)
    assert r.status_code == 409

    one = await detail(client, agent, survivor)
    two = await detail(client, agent, ghost)
    assert two["merged_from"] is None
    assert two["id"] == ghost
    assert one["attributes"] == {"plan": "gold", "vip": True, "tier": "new"}
    assert two["attributes"] == {"plan": "silver", "city": "Paris"}
    assert one["locale"] is None
    assert two["locale"] == "en-GB"
    assert Decimal(one["lifetime_value"]) == Decimal("100.00")
    assert Decimal(two["lifetime_value"]) == Decimal("20.50")
    assert [i["kind"] for i in one["identities"]] == ["email"]
    assert [i["kind"] for i in two["identities"]] == ["phone"]
    assert {(c["channel"], c["category"]): c["status"] for c in one["consents"]} == {
        ("sms", "marketing"): "granted",
        ("whatsapp", "marketing"): "granted",
    }
    assert {(c["channel"], c["category"]): c["status"] for c in two["consents"]} == {
        ("sms", "marketing"): "withdrawn",
        ("email", "service"): "granted",
        ("whatsapp", "marketing"): "denied",
    }
    r = await client.get(f"{API}/customers/{survivor}/events", headers=agent)
    assert [e["type"] for e in r.json()["items"]] == ["page.viewed"]
    r = await client.get(f"{API}/customers/{ghost}/events", headers=agent)
    assert [e["type"] for e in r.json()["items"]] == ["order.shipped"]
    async with db.transaction() as s:
        assert set((await s.scalars(select(Message.customer_id))).all()) == {uuid.UUID(ghost)}
        assert len((await s.scalars(select(Message.id))).all()) == 3
        assert (await s.scalars(select(Conversation.customer_id))).all() == [uuid.UUID(ghost)]
        actions = set((await s.scalars(select(AuditEntry.action).where(AuditEntry.entity_id == survivor))).all())
    assert {"customer.merged", "customer.unmerged"} <= actions
    # The same pair can be merged again after an undo.
    r = await client.post(f"{API}/customers/{ghost}/merge", json={"other_id": survivor}, headers=supervisor)
    assert r.status_code == 201


async def test_accept_picks_the_older_customer_unless_told(client, agent, app, frozen_clock):
    older = await create(client, agent, name="Older", identities=[{"kind": "email", "value": "o@example.com"}])
    frozen_clock.advance(seconds=5)
    newer = await create(client, agent, name="Newer")
    frozen_clock.advance(seconds=5)
    third = await create(client, agent, name="Third")
    r = await client.post(
        f"{API}/customers/{newer}/identities", json={"kind": "email", "value": "o@example.com"}, headers=agent
    )
    sid = r.json()["merge_suggestion_id"]
    r = await client.post(f"{API}/merge-suggestions/{sid}/accept", json={"survivor_id": third}, headers=agent)
    assert r.status_code == 422
    r = await client.post(f"{API}/merge-suggestions/{sid}/accept", json={}, headers=agent)
    assert r.status_code == 200, r.text
    assert (r.json()["survivor_id"], r.json()["merged_id"]) == (older, newer)
    r = await client.post(f"{API}/merge-suggestions/{sid}/accept", headers=agent)
    assert r.status_code == 409
    assert r.json()["merge_id"]

    async with app.state.db.transaction() as s:
        suggestion = await merge.suggest_merge(s, uuid.UUID(third), uuid.UUID(older), "test")
        assert suggestion is not None
    r = await client.post(f"{API}/merge-suggestions/{suggestion.id}/accept", json={"survivor_id": third}, headers=agent)
    assert (r.json()["survivor_id"], r.json()["merged_id"]) == (third, older)
    # Older now chains into Third: newer -> older -> third, all read as Third.
    assert (await detail(client, agent, newer))["id"] == third
    async with app.state.db.transaction() as s:
        owner = await service.find_by_identity(s, "email", "o@example.com")
        assert owner is not None
        assert str(owner.id) == third


async def test_unmerge_in_the_wrong_order_is_refused(client, supervisor, agent, app):
    a = await create(client, agent, name="A", identities=[{"kind": "email", "value": "a@example.com"}])
    b = await create(client, agent, name="B")
    c = await create(client, agent, name="C")
    first = (await client.post(f"{API}/customers/{b}/merge", json={"other_id": a}, headers=supervisor)).json()
    second = (await client.post(f"{API}/customers/{c}/merge", json={"other_id": b}, headers=supervisor)).json()
    r = await client.post(f"{API}/customer-merges/{first['id']}/unmerge", headers=supervisor)
    assert r.status_code == 409
    assert r.json()["blocking_merge_id"] == second["id"]
    assert (await client.post(f"{API}/customer-merges/{second['id']}/unmerge", headers=supervisor)).status_code == 200
    assert (await client.post(f"{API}/customer-merges/{first['id']}/unmerge", headers=supervisor)).status_code == 200
    assert [i["value"] for i in (await detail(client, agent, a))["identities"]] == ["a@example.com"]
    r = await client.post(f"{API}/customer-merges/{uuid.uuid4()}/unmerge", headers=supervisor)
    assert r.status_code == 404


async def test_erase_blanks_merge_evidence_and_values(client, agent, supervisor, app):
    a = await create(
        client,
        agent,
        name="A",
        attributes={"secret": "a-value"},
        identities=[{"kind": "email", "value": "erase-me@example.com"}],
    )
    b = await create(client, agent, name="B", attributes={"secret": "b-value"})
    r = await client.post(
        f"{API}/customers/{b}/identities", json={"kind": "email", "value": "erase-me@example.com"}, headers=agent
    )
    sid = r.json()["merge_suggestion_id"]
    r = await client.post(f"{API}/merge-suggestions/{sid}/accept", headers=agent)
    assert r.json()["attributes_overridden"] == {"secret": "b-value"}
    r = await client.post(f"{API}/customers/{a}/erase", headers=supervisor)
    assert r.status_code == 200
    r = await client.get(f"{API}/customers/{a}/export", headers=agent)
    assert "erase-me@example.com" not in r.text
    assert "b-value" not in r.text


@pytest.mark.parametrize("backend", ["postgresql"])  # SQLite serialises writers: no race to test
async def test_concurrent_merges_of_one_pair_make_one_merge(db, backend):
    async with db.transaction() as s:
        a, b = Customer(name="A"), Customer(name="B")
        s.add_all([a, b])
        await s.flush()
        s.add(Identity(customer_id=a.id, kind="email", value="race-a@example.com"))
        s.add(Identity(customer_id=b.id, kind="email", value="race-b@example.com"))

    async def attempt(survivor: uuid.UUID, other: uuid.UUID) -> str:
        try:
            async with db.transaction() as s:
                await merge.merge_customers(s, survivor, other, None)
                await asyncio.sleep(0.05)  # hold the locks so the other one waits
            return "merged"
        except Conflict:
            return "conflict"

    results = await asyncio.gather(attempt(a.id, b.id), attempt(b.id, a.id), attempt(a.id, b.id))
    assert sorted(results) == ["conflict", "conflict", "merged"]
    async with db.transaction() as s:
        rows = (await s.scalars(select(Customer).order_by(Customer.id))).all()
        assert sum(c.merged_into_id is None for c in rows) == 1
        owners = set((await s.scalars(select(Identity.customer_id))).all())
        assert len(owners) == 1


async def test_timeline_pages_across_both_histories(client, agent, supervisor, app):
    db = app.state.db
    a = await create(client, agent, name="A")
    b = await create(client, agent, name="B")
    base = clock.now() - timedelta(hours=10)
    async with db.transaction() as s:
        convs = {}
        for cid, channel in ((a, "email"), (b, "webchat")):
            conv = Conversation(customer_id=uuid.UUID(cid), channel=channel)
            s.add(conv)
            await s.flush()
            convs[cid] = conv
        for n in range(10):
            cid = a if n % 2 == 0 else b
            s.add(
                Message(
                    conversation_id=convs[cid].id,
                    customer_id=uuid.UUID(cid),
                    direction="in",
                    channel=convs[cid].channel,
                    author_type="customer",
                    text=f"m{n}",
                    delivery_status="received",
                    created_at=base + timedelta(minutes=n),
                )
            )
    assert (
        await client.post(f"{API}/customers/{a}/merge", json={"other_id": b}, headers=supervisor)
    ).status_code == 201
    texts, channels, cursor = [], [], None
    while True:
        params = {"order": "asc", "limit": 3} | ({"cursor": cursor} if cursor else {})
        r = await client.get(f"{API}/customers/{b}/timeline", params=params, headers=agent)
        texts += [i["text"] for i in r.json()["items"]]
        channels += [i["channel"] for i in r.json()["items"]]
        cursor = r.json()["next_cursor"]
        if not cursor:
            break
    assert texts == [f"m{n}" for n in range(10)]
    assert channels == ["email", "webchat"] * 5
