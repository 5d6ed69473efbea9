"""Inboxes: admins manage them, agents read them, secrets in config never come back out."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from frontdesk.channels import service
from frontdesk.errors import NotFound
from frontdesk.models import AuditEntry, Inbox
from tests.builders import auth_headers

INBOXES = "/api/v1/inboxes"
MASK = "********"


async def stored(app, inbox_id: str) -> Inbox:
    async with app.state.db.transaction() as s:
        inbox = await s.get(Inbox, uuid.UUID(inbox_id))
        assert inbox is not None
        return inbox


async def test_inbox_crud_and_secret_masking(client, app):
    admin_h = await auth_headers(app, "admin")
    agent_h = await auth_headers(app, "agent")
    config = {
        "smtp": {"host": "smtp.example.com", "port": 587, "username": "help", "password": "hunter22"},
        "imap_password": "imap-secret",
        "webhook_secret": "whsec",
        "from_name": "Support",
    }
    r = await client.post(INBOXES, json={"name": "Support mail", "channel": "email", "config": config}, headers=admin_h)
    assert r.status_code == 201, r.text
    inbox = r.json()
    assert inbox["channel"] == "email"
    assert inbox["is_active"] is True
    assert len(inbox["public_token"]) >= 20
    assert inbox["config"]["smtp"] == {"host": "smtp.example.com", "port": 587, "username": "help", "password": MASK}
    assert inbox["config"]["imap_password"] == MASK
    assert inbox["config"]["webhook_secret"] == MASK
    assert inbox["config"]["from_name"] == "Support"
    assert "hunter22" not in r.text

    url = f"{INBOXES}/{inbox['id']}"
    for path in (url, INBOXES):
        r = await client.get(path, headers=agent_h)
        assert r.status_code == 200
        assert "hunter22" not in r.text
        assert "imap-secret" not in r.text
        assert "whsec" not in r.text

    # Round-trip the masked config with one change: the stored secrets survive.
    edited = dict(inbox["config"])
    edited["smtp"] = {**edited["smtp"], "host": "smtp2.example.com"}
    edited["webhook_secret"] = "rotated"
    r = await client.patch(url, json={"config": edited, "name": "Support email"}, headers=admin_h)
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "Support email"
    assert r.json()["config"]["smtp"]["host"] == "smtp2.example.com"
    row = await stored(app, inbox["id"])
    assert row.config["smtp"]["password"] == "hunter22"
    assert row.config["imap_password"] == "imap-secret"
    assert row.config["webhook_secret"] == "rotated"
    assert row.public_token == inbox["public_token"]

    # A mask for a secret that was never stored is an error naming the key.
    r = await client.patch(url, json={"config": {"api_token": MASK}}, headers=admin_h)
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "config.api_token"

    # The audit log records changes without secrets.
    async with app.state.db.transaction() as s:
        entries = (await s.scalars(select(AuditEntry).where(AuditEntry.entity_id == inbox["id"]))).all()
    assert [e.action for e in entries] == ["inbox.created", "inbox.updated"]
    assert "rotated" not in str(entries[1].data)
    assert "hunter22" not in str(entries[1].data)

    # DELETE deactivates; the inbox stays readable.
    r = await client.delete(url, headers=admin_h)
    assert r.status_code == 200
    assert r.json()["is_active"] is False
    assert (await client.get(url, headers=agent_h)).json()["is_active"] is False
    active = (await client.get(INBOXES, params={"active": "true"}, headers=agent_h)).json()
    assert inbox["id"] not in [i["id"] for i in active]


async def test_inbox_rules(client, app):
    admin_h = await auth_headers(app, "admin")
    sup_h = await auth_headers(app, "supervisor")
    body = {"name": "Widget", "channel": "webchat"}
    assert (await client.post(INBOXES, json=body, headers=sup_h)).status_code == 403
    r = await client.post(INBOXES, json=body, headers=admin_h)
    assert r.status_code == 201
    assert r.json()["config"] == {}
    r = await client.post(INBOXES, json=body, headers=admin_h)
    assert r.status_code == 409
    assert "already exists" in r.json()["detail"]
    other = (await client.post(INBOXES, json={"name": "Texts", "channel": "sms"}, headers=admin_h)).json()
    assert (await client.patch(f"{INBOXES}/{other['id']}", json={"name": "Widget"}, headers=admin_h)).status_code == 409
    assert (await client.patch(f"{INBOXES}/{other['id']}", json={"name": "x"}, headers=sup_h)).status_code == 403

    r = await client.post(INBOXES, json={"name": "Fax", "channel": "fax"}, headers=admin_h)
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "channel"
    big = {"blob": "x" * (16 * 1024)}
    r = await client.post(INBOXES, json={"name": "Big", "channel": "api", "config": big}, headers=admin_h)
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "config"
    r = await client.post(INBOXES, json={"name": "List", "channel": "api", "config": [1, 2]}, headers=admin_h)
    assert r.status_code == 422
    r = await client.post(INBOXES, json={"name": "New", "channel": "api", "config": {"token": MASK}}, headers=admin_h)
    assert r.status_code == 422

    assert (await client.get(f"{INBOXES}/{uuid.uuid4()}", headers=admin_h)).status_code == 404
    assert (await client.delete(f"{INBOXES}/{uuid.uuid4()}", headers=admin_h)).status_code == 404
    sms = (await client.get(INBOXES, params={"channel": "sms"}, headers=sup_h)).json()
    assert [i["name"] for i in sms] == ["Texts"]
    assert (await client.get(INBOXES)).status_code == 401


async def test_widget_finds_its_inbox_by_public_token(db):
    async with db.transaction() as s:
        inbox = await service.create_inbox(s, name="Site chat", channel="webchat")
    async with db.transaction() as s:
        found = await service.get_inbox_by_public_token(s, inbox.public_token)
        assert found.id == inbox.id
        await service.deactivate_inbox(s, found, None)
    async with db.transaction() as s:
        with pytest.raises(NotFound):  # a deactivated inbox takes no widget traffic
            await service.get_inbox_by_public_token(s, inbox.public_token)


async def test_webchat_title_and_greeting_by_language_are_checked(client, app):
    admin_h = await auth_headers(app, "admin")
    config = {
        "title": {"en": "Help", "ru": "Помощь", "pt-BR": "Ajuda"},
        "greeting": "Hi!",
        "default_language": "en",
    }
    r = await client.post(INBOXES, json={"name": "Site chat", "channel": "webchat", "config": config}, headers=admin_h)
    assert r.status_code == 201, r.text
    inbox = r.json()
    assert inbox["config"] == config
    url = f"{INBOXES}/{inbox['id']}"

    bad = [
        ({"title": 42}, "config.title", "text, or an object from language code to text"),
        ({"title": ["Help"]}, "config.title", "text, or an object from language code to text"),
        ({"title": {}}, "config.title", "at least one language"),
        ({"title": {"english": "Help"}}, "config.title.english", "'english' is not a language code"),
        ({"greeting": {"ru": ""}}, "config.greeting.ru", "must not be empty"),
        ({"greeting": {"ru": "  "}}, "config.greeting.ru", "must not be empty"),
        ({"greeting": {"ru": 5}}, "config.greeting.ru", "must be text"),
        ({"title": "x" * 201}, "config.title", "at most 200 characters (this one has 201)"),
        ({"greeting": {"en": "y" * 1001}}, "config.greeting.en", "at most 1000 characters (this one has 1001)"),
        ({"title": {"en": "Help", "EN": "Hilfe"}}, "config.title.EN", "'EN' is listed twice"),
        ({"default_language": "english"}, "config.default_language", "'english' is not a language code"),
        ({"default_language": 7}, "config.default_language", "'7' is not a language code"),
    ]
    for change, field, words in bad:
        for method, path, body in (
            ("POST", INBOXES, {"name": f"Chat {uuid.uuid4().hex[:6]}", "channel": "webchat", "config": change}),
            ("PATCH", url, {"config": {**config, **change}}),
        ):
            r = await client.request(method, path, json=body, headers=admin_h)
            assert r.status_code == 422, (method, change, r.text)
            problem = r.json()
            assert problem["errors"][0]["field"] == field, (method, change, problem)
            assert words in problem["detail"], (method, change, problem)
    assert (await stored(app, inbox["id"])).config == config, "a refused change leaves the inbox as it was"
    # An empty string still means "not set" (the inbox name is the title), as before.
    r = await client.patch(url, json={"config": {**config, "title": ""}}, headers=admin_h)
    assert r.status_code == 200, r.text
    # Other channels' config is theirs: a "title" there is not the widget's.
    r = await client.post(INBOXES, json={"name": "Mail", "channel": "email", "config": {"title": 42}}, headers=admin_h)
    assert r.status_code == 201, r.text
