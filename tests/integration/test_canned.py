"""Canned responses: scopes and permissions, the shortcut filter, rendering variables."""

from __future__ import annotations

import uuid

import pytest

from tests.builders import agent

API = "/api/v1"


@pytest.fixture
def settings(settings):
    return settings.model_copy(update={"run_loops": False})


async def create(client, headers, **body) -> dict:
    r = await client.post(f"{API}/canned-responses", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


async def listed(client, headers, **params) -> list[str]:
    r = await client.get(f"{API}/canned-responses", params=params, headers=headers)
    assert r.status_code == 200, r.text
    return [(c["shortcut"], c["scope"]) for c in r.json()]


async def test_scopes_permissions_and_listing(client, app):
    anna, anna_h = await agent(app)
    _, bob_h = await agent(app)
    _, admin_h = await agent(app, "admin")

    # Agents create personal ones; a global one needs an admin.
    r = await client.post(
        f"{API}/canned-responses",
        json={"shortcut": "hello", "title": "Hello", "body": "Hi!", "scope": "global"},
        headers=anna_h,
    )
    assert r.status_code == 403
    mine = await create(client, anna_h, shortcut="Refund", title="Refund started", body="We refunded {{customer.name}}")
    assert (mine["shortcut"], mine["scope"], mine["owner_id"]) == ("refund", "personal", str(anna.id))
    glob = await create(
        client, admin_h, shortcut="hello", title="Привет и добро пожаловать", body="Hi!", scope="global"
    )
    assert (glob["scope"], glob["owner_id"]) == ("global", None)
    await create(client, bob_h, shortcut="bye", title="Goodbye", body="Bye")
    # Anna shadows the global shortcut with her own; the same shortcut twice in one scope is a 409.
    await create(client, anna_h, shortcut="hello", title="My hello", body="Hey")
    r = await client.post(
        f"{API}/canned-responses", json={"shortcut": "refund", "title": "x", "body": "y"}, headers=anna_h
    )
    assert r.status_code == 409
    r = await client.post(
        f"{API}/canned-responses", json={"shortcut": "hello", "title": "x", "body": "y", "scope": "global"},
        headers=admin_h,
    )  # fmt: skip
    assert r.status_code == 409
    for bad in ("", "has space", "ÜBER", "a/b", "x" * 65):
        r = await client.post(
            f"{API}/canned-responses", json={"shortcut": bad, "title": "t", "body": "b"}, headers=anna_h
        )
        assert r.status_code == 422, bad
        assert r.json()["errors"][0]["field"] == "shortcut"

    # Everyone sees the global ones and their own; personal first on the same shortcut.
    assert await listed(client, anna_h) == [("hello", "personal"), ("hello", "global"), ("refund", "personal")]
    assert await listed(client, bob_h) == [("bye", "personal"), ("hello", "global")]
    # q: shortcut or title prefix, any case (Cyrillic too), a leading "/" ignored.
    assert await listed(client, anna_h, q="/ref") == [("refund", "personal")]
    assert await listed(client, anna_h, q="REFUND ST") == [("refund", "personal")]
    assert await listed(client, bob_h, q="привет") == [("hello", "global")]
    assert await listed(client, bob_h, q="%") == []

    # Changing: the owner or an admin for personal ones, admins for global ones; others 403.
    r = await client.patch(f"{API}/canned-responses/{mine['id']}", json={"title": "Refund done"}, headers=bob_h)
    assert r.status_code == 404  # Bob cannot even see Anna's
    r = await client.patch(f"{API}/canned-responses/{glob['id']}", json={"body": "Hello!"}, headers=anna_h)
    assert r.status_code == 403
    r = await client.delete(f"{API}/canned-responses/{glob['id']}", headers=bob_h)
    assert r.status_code == 403
    r = await client.patch(f"{API}/canned-responses/{mine['id']}", json={"title": "Refund done"}, headers=anna_h)
    assert (r.status_code, r.json()["title"]) == (200, "Refund done")
    r = await client.patch(f"{API}/canned-responses/{mine['id']}", json={"shortcut": "hello"}, headers=anna_h)
    assert r.status_code == 409  # her own "hello" exists
    r = await client.patch(f"{API}/canned-responses/{mine['id']}", json={"body": "Updated"}, headers=admin_h)
    assert (r.status_code, r.json()["body"]) == (200, "Updated")
    r = await client.patch(f"{API}/canned-responses/{glob['id']}", json={"body": "Hello!"}, headers=admin_h)
    assert r.status_code == 200
    r = await client.delete(f"{API}/canned-responses/{mine['id']}", headers=anna_h)
    assert r.status_code == 204
    assert await listed(client, anna_h) == [("hello", "personal"), ("hello", "global")]
    r = await client.delete(f"{API}/canned-responses/{uuid.uuid4()}", headers=admin_h)
    assert r.status_code == 404
    r = await client.get(f"{API}/canned-responses")
    assert r.status_code == 401


async def test_render_fills_variables_and_lists_the_missing(client, app):
    anna, anna_h = await agent(app)
    async with app.state.db.transaction() as s:
        from frontdesk.models import User

        (await s.get(User, anna.id)).name = "Anna Petrova"
    r = await client.post(
        f"{API}/customers",
        json={
            "name": "Мария Ивановна Смирнова",
            "attributes": {"order_number": "A-1042", "vip": True, "address": {"city": "Kazan"}},
            "identities": [{"kind": "email", "value": "Maria@Example.com"}],
        },
        headers=anna_h,
    )
    customer = r.json()
    r = await client.post(
        f"{API}/conversations",
        json={"customer_id": customer["id"], "channel": "email", "subject": "Where is my order"},
        headers=anna_h,
    )
    conversation = r.json()
    canned = await create(
        client,
        anna_h,
        shortcut="status",
        title="Order status",
        body=(
            "Здравствуйте, {{customer.first_name}}! Заказ {{ customer.attributes.order_number }} "
            "({{customer.attributes.address.city}}, vip={{customer.attributes.vip}}) for {{customer.email}} / "
            "{{customer.phone}}; {{customer.attributes.loyalty_card}} {{unknown.thing}} "
            "— {{agent.first_name}} ({{agent.name}}), #{{conversation.id}} «{{conversation.subject}}» {not a var}"
        ),
    )
    r = await client.post(
        f"{API}/conversations/{conversation['id']}/canned-responses/{canned['id']}/render", headers=anna_h
    )
    assert r.status_code == 200, r.text
    assert r.json() == {
        "text": (
            "Здравствуйте, Мария! Заказ A-1042 (Kazan, vip=true) for maria@example.com / ;   "
            f"— Anna (Anna Petrova), #{conversation['id']} «Where is my order» {{not a var}}"
        ),
        "missing": ["customer.phone", "customer.attributes.loyalty_card", "unknown.thing"],
    }

    # Values are inserted as they are, never expanded again.
    r = await client.patch(f"{API}/customers/{customer['id']}", json={"name": "{{agent.name}} Sneaky"}, headers=anna_h)
    assert r.status_code == 200, r.text
    hello = await create(client, anna_h, shortcut="hi", title="Hi", body="Hi {{customer.name}}")
    r = await client.post(f"{API}/conversations/{conversation['id']}/canned-responses/{hello['id']}/render",
                          headers=anna_h)  # fmt: skip
    assert r.json() == {"text": "Hi {{agent.name}} Sneaky", "missing": []}

    # Someone else's personal response cannot be rendered; unknown ids are 404.
    _, bob_h = await agent(app)
    r = await client.post(f"{API}/conversations/{conversation['id']}/canned-responses/{hello['id']}/render",
                          headers=bob_h)  # fmt: skip
    assert r.status_code == 404
    r = await client.post(f"{API}/conversations/{uuid.uuid4()}/canned-responses/{hello['id']}/render",
                          headers=anna_h)  # fmt: skip
    assert r.status_code == 404
