"""Users and teams through the API: roles, self-service, the rules that keep admins from locking out."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import select

from frontdesk.auth import service
from frontdesk.errors import Conflict, Invalid, NotFound
from frontdesk.models import AuditEntry
from tests.builders import DEFAULT_PASSWORD, auth_headers, make_user, token_headers

USERS = "/api/v1/users"


async def audit(app, action: str) -> list[AuditEntry]:
    async with app.state.db.transaction() as s:
        return list((await s.scalars(select(AuditEntry).where(AuditEntry.action == action))).all())


# -- service functions the CLI calls ----------------------------------------------------------


async def test_service_create_find_disable(db):
    async with db.transaction() as s:
        user = await service.create_user(s, email=" Olga@Example.COM ", password="12345678", role="supervisor")
        assert user.email == "olga@example.com"
        assert user.name == "olga"
        assert user.role == "supervisor"
    async with db.transaction() as s:
        found = await service.get_user_by_email(s, "OLGA@example.com")
        assert found.id == user.id
        assert [u.email for u in await service.list_users(s)] == ["olga@example.com"]
        assert await service.authenticate_password(s, "olga@example.com", "12345678") is not None
        assert await service.authenticate_password(s, "olga@example.com", "1234567") is None
        token, secret = await service.create_token(s, user=found, name="cli")
        assert token.scopes == ["read", "write"]
        assert secret.startswith("fd_")
        await service.disable_user(s, found)
    async with db.transaction() as s:
        assert (await service.get_user(s, user.id)).is_active is False
        assert await service.authenticate_password(s, "olga@example.com", "12345678") is None
        revoked = await service.revoke_token(s, token.id, None)
        assert revoked.revoked_at is not None
    async with db.transaction() as s:
        actions = (await s.scalars(select(AuditEntry.action).order_by(AuditEntry.id))).all()
        assert actions == ["user.created", "token.created", "user.disabled", "token.revoked"]
        assert (await s.scalars(select(AuditEntry.actor_kind))).all() == ["system"] * 4


async def test_service_rejects_bad_input(db):
    async with db.transaction() as s:
        await service.create_user(s, email="dup@example.com", password="12345678", role="agent")
    async with db.transaction() as s:
        with pytest.raises(Conflict):
            await service.create_user(s, email="DUP@example.com", password="12345678", role="agent")
        cases = [("new@example.com", "short", "agent", "password"), ("new@example.com", "12345678", "boss", "role")]
        cases.append(("not-an-email", "12345678", "agent", "email"))
        for email, password, role, field in cases:
            with pytest.raises(Invalid) as err:
                await service.create_user(s, email=email, password=password, role=role)
            assert err.value.extra["errors"][0]["field"] == field
        for email in ("ghost@example.com", "not an email"):
            with pytest.raises(NotFound):
                await service.get_user_by_email(s, email)


# -- users API ------------------------------------------------------------------------------


async def test_admin_creates_users_and_duplicates_conflict(client, app):
    admin_h = await auth_headers(app, "admin")
    r = await client.post(
        USERS,
        json={
            "email": "Ivan@Example.com",
            "password": "s3cret-pass",
            "role": "agent",
            "name": "Иван Петров",
            "locale": "ru-RU",
            "time_zone": "Europe/Moscow",
        },
        headers=admin_h,
    )
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["email"] == "ivan@example.com"
    assert created["name"] == "Иван Петров"
    assert created["time_zone"] == "Europe/Moscow"
    assert created["is_active"] is True
    r = await client.post(USERS, json={"email": "ivan@EXAMPLE.com", "password": "another-pass"}, headers=admin_h)
    assert r.status_code == 409
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "already exists" in r.json()["detail"]
    # The new user can sign in with the password chosen for them.
    r = await client.post("/api/v1/auth/login", json={"email": "ivan@example.com", "password": "s3cret-pass"})
    assert r.status_code == 200
    assert [e.entity_id for e in await audit(app, "user.created")] == [created["id"]]


async def test_user_input_is_validated(client, app):
    admin_h = await auth_headers(app, "admin")
    for body, field in [
        ({"email": "a@example.com", "password": "short"}, "password"),
        ({"email": "a@example.com", "password": "long-enough", "role": "owner"}, "role"),
        ({"email": "nope", "password": "long-enough"}, "email"),
        ({"email": "a@example.com", "password": "long-enough", "time_zone": "Mars/Olympus"}, "time_zone"),
        ({"email": "a@example.com", "password": "long-enough", "locale": "<script>"}, "locale"),
    ]:
        r = await client.post(USERS, json=body, headers=admin_h)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["errors"][0]["field"] == field


async def test_roles_guard_the_user_routes(client, app):
    agent_h = await auth_headers(app, "agent")
    supervisor_h = await auth_headers(app, "supervisor")
    body = {"email": "new@example.com", "password": "long-enough"}
    r = await client.post(USERS, json=body, headers=agent_h)
    assert r.status_code == 403
    assert "admin" in r.json()["detail"]
    assert (await client.post(USERS, json=body, headers=supervisor_h)).status_code == 403
    assert (await client.get(USERS, headers=agent_h)).status_code == 403
    r = await client.get(USERS, headers=supervisor_h)
    assert r.status_code == 200
    assert len(r.json()) == 2
    someone = r.json()[0]["id"]
    assert (await client.get(f"{USERS}/{someone}", headers=agent_h)).status_code == 200
    assert (await client.get(f"{USERS}/{uuid.uuid4()}", headers=agent_h)).status_code == 404
    assert (await client.get(f"{USERS}/not-a-uuid", headers=agent_h)).status_code == 422
    assert (await client.post(f"{USERS}/{someone}/disable", headers=supervisor_h)).status_code == 403


async def test_admin_updates_a_user(client, app):
    db = app.state.db
    admin_h = await auth_headers(app, "admin")
    agent = await make_user(db, email="promote@example.com")
    r = await client.patch(
        f"{USERS}/{agent.id}", json={"role": "supervisor", "name": "Promoted", "locale": "en-GB"}, headers=admin_h
    )
    assert r.status_code == 200, r.text
    assert r.json()["role"] == "supervisor"
    assert r.json()["name"] == "Promoted"
    assert r.json()["locale"] == "en-GB"
    entry = (await audit(app, "user.updated"))[0]
    assert entry.data["role"] == {"from": "agent", "to": "supervisor"}
    # The new role counts at once.
    assert (await client.get(USERS, headers=await token_headers(app.state.db, agent))).status_code == 200
    r = await client.patch(f"{USERS}/{agent.id}", json={"is_active": False}, headers=admin_h)
    assert r.status_code == 200
    assert r.json()["is_active"] is False
    assert (await client.get(USERS, headers=await token_headers(app.state.db, agent))).status_code == 401


async def test_users_change_their_own_profile_and_password(client, app):
    db = app.state.db
    me = await make_user(db, email="self@example.com")
    other = await make_user(db, email="other@example.com")
    h = await token_headers(app.state.db, me)
    r = await client.patch(f"{USERS}/{me.id}", json={"name": "New Name", "time_zone": "Asia/Yekaterinburg"}, headers=h)
    assert r.status_code == 200
    assert r.json()["name"] == "New Name"
    assert (await client.patch(f"{USERS}/{me.id}", json={"role": "admin"}, headers=h)).status_code == 403
    assert (await client.patch(f"{USERS}/{me.id}", json={"is_active": False}, headers=h)).status_code == 403
    assert (await client.patch(f"{USERS}/{other.id}", json={"name": "Hacked"}, headers=h)).status_code == 403
    r = await client.patch(f"{USERS}/{me.id}", json={"password": "brand-new-pass"}, headers=h)
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "current_password"
    r = await client.patch(
        f"{USERS}/{me.id}", json={"password": "brand-new-pass", "current_password": "wrong"}, headers=h
    )
    assert r.status_code == 422
    r = await client.patch(
        f"{USERS}/{me.id}", json={"password": "brand-new-pass", "current_password": DEFAULT_PASSWORD}, headers=h
    )
    assert r.status_code == 200
    login = "/api/v1/auth/login"
    assert (await client.post(login, json={"email": me.email, "password": DEFAULT_PASSWORD})).status_code == 401
    assert (await client.post(login, json={"email": me.email, "password": "brand-new-pass"})).status_code == 200


async def test_admins_cannot_lock_themselves_out(client, app):
    db = app.state.db
    admin = await make_user(db, role="admin", email="boss@example.com")
    h = await token_headers(app.state.db, admin)
    r = await client.post(f"{USERS}/{admin.id}/disable", headers=h)
    assert r.status_code == 422
    assert "own account" in r.json()["detail"]
    r = await client.patch(f"{USERS}/{admin.id}", json={"role": "agent"}, headers=h)
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "role"
    r = await client.patch(f"{USERS}/{admin.id}", json={"is_active": False}, headers=h)
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "is_active"
    assert (await client.get("/api/v1/auth/me", headers=h)).json()["role"] == "admin"
    assert (await client.post(f"{USERS}/{uuid.uuid4()}/disable", headers=h)).status_code == 404


# -- teams ----------------------------------------------------------------------------------


async def test_team_crud_and_membership(client, app):
    db = app.state.db
    sup_h = await auth_headers(app, "supervisor")
    agent_h = await auth_headers(app, "agent")
    alice = await make_user(db, email="alice@example.com")
    bob = await make_user(db, email="bob@example.com")

    assert (await client.post("/api/v1/teams", json={"name": "Billing"}, headers=agent_h)).status_code == 403
    r = await client.post("/api/v1/teams", json={"name": "Billing", "description": "Invoices"}, headers=sup_h)
    assert r.status_code == 201, r.text
    team = r.json()
    assert team["member_ids"] == []
    assert (await client.post("/api/v1/teams", json={"name": "Billing"}, headers=sup_h)).status_code == 409

    url = f"/api/v1/teams/{team['id']}"
    for user in (alice, bob, alice):  # adding twice is harmless
        r = await client.put(f"{url}/members/{user.id}", headers=sup_h)
        assert r.status_code == 200
    assert r.json()["member_ids"] == [str(alice.id), str(bob.id)]
    assert (await client.put(f"{url}/members/{uuid.uuid4()}", headers=sup_h)).status_code == 404
    assert (await client.put(f"{url}/members/{alice.id}", headers=agent_h)).status_code == 403

    r = await client.get(url, headers=agent_h)
    assert r.status_code == 200
    assert set(r.json()["member_ids"]) == {str(alice.id), str(bob.id)}
    r = await client.delete(f"{url}/members/{alice.id}", headers=sup_h)
    assert r.status_code == 200
    assert r.json()["member_ids"] == [str(bob.id)]
    assert (await client.delete(f"{url}/members/{alice.id}", headers=sup_h)).status_code == 404

    await client.post("/api/v1/teams", json={"name": "Accounts"}, headers=sup_h)
    r = await client.patch(url, json={"name": "Accounts"}, headers=sup_h)
    assert r.status_code == 409
    r = await client.patch(url, json={"name": "Billing & Refunds", "description": None}, headers=sup_h)
    assert r.status_code == 200
    assert r.json()["name"] == "Billing & Refunds"
    assert r.json()["description"] is None

    listed = (await client.get("/api/v1/teams", headers=agent_h)).json()
    assert [(t["name"], len(t["member_ids"])) for t in listed] == [("Accounts", 0), ("Billing & Refunds", 1)]

    assert (await client.delete(url, headers=agent_h)).status_code == 403
    assert (await client.delete(url, headers=sup_h)).status_code == 204
    assert (await client.get(url, headers=agent_h)).status_code == 404
    assert (await client.delete(url, headers=sup_h)).status_code == 404
    actions = {e.action for e in await audit(app, "team.created")} | {
        e.action for e in await audit(app, "team.member_added")
    }
    assert actions == {"team.created", "team.member_added"}
    assert len(await audit(app, "team.member_added")) == 2
    assert len(await audit(app, "team.deleted")) == 1


async def test_hostile_input_is_a_4xx_never_a_500(client, app):
    admin_h = await auth_headers(app, "admin")
    nasty = ["a\x00b", "\ud800", "x" * 5000, "../../etc/passwd", "' OR 1=1 --"]
    for value in nasty:
        raw = '{"email": %s, "password": %s, "name": %s, "time_zone": %s}'
        enc = json.dumps(value)
        for body in (
            raw % (enc, '"long-enough"', '"n"', '"UTC"'),
            raw % ('"z@example.com"', '"long-enough"', enc, '"UTC"'),
            raw % ('"z@example.com"', '"long-enough"', '"n"', enc),
        ):
            r = await client.post(USERS, content=body, headers={**admin_h, "content-type": "application/json"})
            assert r.status_code in (201, 409, 422), (value, r.status_code, r.text)
        r = await client.post(
            "/api/v1/auth/login",
            content=f'{{"email": {enc}, "password": {enc}}}',
            headers={"content-type": "application/json"},
        )
        assert r.status_code in (401, 422), (value, r.text)
        for path, body in (
            ("/api/v1/teams", f'{{"name": {enc}, "description": {enc}}}'),
            ("/api/v1/tokens", f'{{"name": {enc}}}'),
            ("/api/v1/inboxes", f'{{"name": {enc}, "channel": "api", "config": {{{enc}: {enc}}}}}'),
        ):
            r = await client.post(path, content=body, headers={**admin_h, "content-type": "application/json"})
            assert r.status_code in (201, 409, 422), (path, value, r.status_code, r.text)
    r = await client.post(
        "/api/v1/tokens", json={"name": "far", "expires_at": "9999-12-31T23:59:59-14:00"}, headers=admin_h
    )
    assert r.status_code == 422


async def test_a_race_past_the_duplicate_check_is_a_409(db):
    from frontdesk.models import User

    async with db.transaction() as s:
        # Another request's row, not yet visible to the pre-check (no autoflush): the unique index decides.
        s.add(User(email="race@example.com", name="First", role="agent"))
        with pytest.raises(Conflict):
            await service.create_user(s, email="race@example.com", password="12345678", role="agent")
        await s.rollback()  # what the request boundary does when the Conflict propagates
    async with db.transaction() as s:
        assert await service.list_users(s) == []


async def test_deleting_a_team_keeps_its_conversations_without_a_team(client, app):
    from tests.builders import make_conversation, make_customer, make_queue

    db = app.state.db
    sup_h = await auth_headers(app, "supervisor")
    team = (await client.post("/api/v1/teams", json={"name": "Escalations"}, headers=sup_h)).json()
    queue = await make_queue(db)
    customer = await make_customer(db)
    kept = [
        await make_conversation(db, customer, team_id=uuid.UUID(team["id"])),
        await make_conversation(db, customer, team_id=uuid.UUID(team["id"]), queue_id=queue.id, subject="queued"),
    ]

    r = await client.delete(f"/api/v1/teams/{team['id']}", headers=sup_h)
    assert r.status_code == 204, r.text
    assert (await client.get(f"/api/v1/teams/{team['id']}", headers=sup_h)).status_code == 404
    for conversation in kept:
        r = await client.get(f"/api/v1/conversations/{conversation.id}", headers=sup_h)
        assert r.status_code == 200
        assert r.json()["team_id"] is None
        assert r.json()["customer_id"] == str(customer.id)
    assert len(await audit(app, "team.deleted")) == 1


async def test_deleting_a_team_takes_it_out_of_queues_through_the_bus(client, app):
    """Auth emits TeamChanged(deleted); routing's subscriber edits the queues in the same transaction."""
    admin = await auth_headers(app, "admin")
    gone = (await client.post("/api/v1/teams", json={"name": "Night shift"}, headers=admin)).json()["id"]
    kept = (await client.post("/api/v1/teams", json={"name": "Day shift"}, headers=admin)).json()["id"]
    body = {
        "name": "Refunds",
        "channels": ["email"],
        "team_ids": [gone, kept],
        "bullseye": [{"after_seconds": 30, "add_team_ids": [gone, kept]}],
    }
    r = await client.post("/api/v1/queues", json=body, headers=admin)
    assert r.status_code == 201, r.text
    queue_id = r.json()["id"]

    assert (await client.delete(f"/api/v1/teams/{gone}", headers=admin)).status_code == 204
    queue = (await client.get(f"/api/v1/queues/{queue_id}", headers=admin)).json()
    assert queue["team_ids"] == [kept]
    assert queue["bullseye"][0]["add_team_ids"] == [kept]
