"""The routing configuration API on SQLite and PostgreSQL: queues, skills, agent routing profiles,
presence and routing rules — who may do what, what is refused and why, and what is published."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from frontdesk import clock
from frontdesk.models.routing import RoutingItem
from tests.builders import make_customer
from tests.builders.routing import (
    API,
    Recorder,
    create_queue_via_api,
    get,
    open_conversation,
    person,
    post,
    put,
)


@pytest.fixture
def settings(settings):
    """No leader: these tests look at the configuration, not at decisions."""
    return settings.model_copy(update={"run_loops": False})


@pytest.fixture
async def people(client, app):
    _, admin = await person(app, "admin", "Admin")
    _, supervisor = await person(app, "supervisor", "Sue")
    agent_id, agent = await person(app, "agent", "Alice")
    return {"admin": admin, "supervisor": supervisor, "agent": agent, "agent_id": agent_id}


async def test_queues_crud_with_skills_bullseye_and_overflow(client, app, people):
    admin, agent = people["admin"], people["agent"]
    billing = await post(client, "/skills", {"name": "Billing", "description": "Invoices and refunds"}, admin)
    teams = await post(client, "/teams", {"name": "Tier 2"}, admin)
    backup = await create_queue_via_api(client, admin, name="Backup", channels=["webchat", "email"], priority=10)
    body = {
        "name": "Billing chat",
        "channels": ["webchat", "webchat"],
        "priority": 60,
        "service_level_percent": 90,
        "service_level_seconds": 60,
        "required_skills": [{"skill_id": billing["id"], "min_level": 3}],
        "selection": "least_occupied",
        "sticky_wait_seconds": 30,
        "offer_timeout_seconds": 20,
        "bullseye": [
            {"after_seconds": 120, "any_agent": True},
            {"after_seconds": 30, "level_drop": 1, "add_team_ids": [teams["id"]]},
        ],
        "overflow_queue_id": backup["id"],
        "overflow_after_seconds": 600,
    }
    queue = await post(client, "/queues", body, admin)
    assert queue["channels"] == ["webchat"]
    assert queue["required_skills"] == [{"skill_id": billing["id"], "name": "Billing", "min_level": 3}]
    assert [r["after_seconds"] for r in queue["bullseye"]] == [30, 120]  # kept in order of waiting
    assert queue["overflow_queue_id"] == backup["id"]
    # Agents read queues (for transfers); only admins change them.
    listed = await get(client, "/queues", agent)
    assert [q["name"] for q in listed] == ["Billing chat", "Backup"]  # most urgent first
    r = await client.post(f"{API}/queues", json={**body, "name": "Mine"}, headers=agent)
    assert r.status_code == 403
    r = await client.post(f"{API}/queues", json={**body, "name": "Mine"}, headers=people["supervisor"])
    assert r.status_code == 403

    r = await client.patch(
        f"{API}/queues/{queue['id']}", json={"priority": 70, "required_skills": [], "auto_accept": True}, headers=admin
    )
    assert r.status_code == 200, r.text
    assert (r.json()["priority"], r.json()["required_skills"], r.json()["auto_accept"]) == (70, [], True)
    assert r.json()["selection"] == "least_occupied"  # untouched

    # What is refused, and why.
    r = await client.post(f"{API}/queues", json={**body, "name": "billing CHAT"}, headers=admin)
    assert r.status_code == 409
    bad_skill = {**body, "name": "X", "required_skills": [{"skill_id": backup["id"], "min_level": 1}]}
    r = await client.post(f"{API}/queues", json=bad_skill, headers=admin)
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "required_skills"
    r = await client.post(f"{API}/queues", json={**body, "name": "Y", "channels": []}, headers=admin)
    assert r.status_code == 422
    r = await client.post(f"{API}/queues", json={**body, "name": "Z", "overflow_after_seconds": None}, headers=admin)
    assert r.status_code == 422
    r = await client.patch(f"{API}/queues/{queue['id']}", json={"overflow_queue_id": queue["id"]}, headers=admin)
    assert r.status_code == 422
    r = await client.patch(f"{API}/queues/{queue['id']}", json={"priority": None}, headers=admin)
    assert r.status_code == 422
    r = await client.delete(f"{API}/skills/{billing['id']}", headers=admin)
    assert r.status_code == 204  # no queue requires it any more

    # Deleting: refused while a rule points at it; the overflow of others is cleared.
    rule = await post(client, "/routing/rules", {"name": "To backup", "queue_id": backup["id"]}, admin)
    r = await client.delete(f"{API}/queues/{backup['id']}", headers=admin)
    assert r.status_code == 409
    assert "To backup" in r.json()["detail"]
    r = await client.delete(f"{API}/routing/rules/{rule['id']}", headers=admin)
    assert r.status_code == 204
    r = await client.delete(f"{API}/queues/{backup['id']}", headers=admin)
    assert r.status_code == 204
    after = await get(client, f"/queues/{queue['id']}", admin)
    assert (after["overflow_queue_id"], after["overflow_after_seconds"]) == (None, None)
    r = await client.get(f"{API}/queues/{backup['id']}", headers=admin)
    assert r.status_code == 404


async def test_rule_tags_are_stored_as_conversation_tags_are(client, app, people):
    admin = people["admin"]
    queue = await create_queue_via_api(client, admin, name="Refunds")
    body = {"name": "Refunds", "queue_id": queue["id"], "conditions": {"tags": ["  Refund Request "]}}
    rule = await post(client, "/routing/rules", body, admin)
    assert rule["conditions"]["tags"] == ["refund-request"]  # what tagging "Refund Request" stores
    body["conditions"] = {"tags": ["refund/request"]}  # no conversation can carry this tag
    r = await client.post(f"{API}/routing/rules", json=body, headers=admin)
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "conditions.tags"


async def test_a_queue_with_waiting_conversations_cannot_be_deleted(client, app, people):
    admin = people["admin"]
    queue = await create_queue_via_api(client, admin, name="Busy")
    cid = await open_conversation(client, admin, (await make_customer(app.state.db)).id, queue_id=queue["id"])
    async with app.state.db.transaction() as s:  # what the routing leader would have written
        s.add(
            RoutingItem(
                conversation_id=uuid.UUID(cid), queue_id=uuid.UUID(queue["id"]), channel="webchat", state="waiting"
            )
        )
    r = await client.delete(f"{API}/queues/{queue['id']}", headers=admin)
    assert r.status_code == 409
    assert "waiting" in r.json()["detail"]


async def test_skills_are_unique_and_in_use_ones_cannot_be_deleted(client, app, people):
    admin, agent = people["admin"], people["agent"]
    skill = await post(client, "/skills", {"name": "Russian"}, admin)
    r = await client.post(f"{API}/skills", json={"name": "russian"}, headers=admin)
    assert r.status_code == 409
    r = await client.post(f"{API}/skills", json={"name": "French"}, headers=agent)
    assert r.status_code == 403
    assert [s["name"] for s in await get(client, "/skills", agent)] == ["Russian"]
    r = await client.patch(f"{API}/skills/{skill['id']}", json={"name": "Русский"}, headers=admin)
    assert r.status_code == 200
    assert r.json()["name"] == "Русский"
    r = await client.post(f"{API}/skills", json={"name": "РУССКИЙ"}, headers=admin)  # Unicode case, on SQLite too
    assert r.status_code == 409
    await create_queue_via_api(client, admin, name="RU", required_skills=[{"skill_id": skill["id"], "min_level": 2}])
    r = await client.delete(f"{API}/skills/{skill['id']}", headers=admin)
    assert r.status_code == 409
    assert "RU" in r.json()["detail"]


async def test_routing_profile_defaults_and_validation(client, app, people):
    admin, agent, agent_id = people["admin"], people["agent"], people["agent_id"]
    mine = await get(client, f"/agents/{agent_id}/routing-profile", agent)
    assert mine["is_default"] is True
    assert (mine["budget"], mine["cost"]["voice"], mine["cost"]["webchat"], mine["cost"]["email"]) == (100, 100, 25, 10)
    assert "webchat" in mine["blocks"]["voice"]  # nothing interrupts a call
    skill = await post(client, "/skills", {"name": "Billing"}, admin)
    body = {
        "skills": [{"skill_id": skill["id"], "level": 4}],
        "max_per_channel": {"webchat": 3, "email": 5, "voice": 1},
        "budget": 100,
        "cost": {"webchat": 25, "email": 10, "voice": 100},
        "blocks": {"voice": ["webchat", "email"], "webchat": ["voice"]},
        "after_call_work_seconds": 45,
    }
    out = await put(client, f"/agents/{agent_id}/routing-profile", body, admin)
    assert out["is_default"] is False
    assert out["skills"] == [{"skill_id": skill["id"], "name": "Billing", "level": 4}]
    assert out["blocks"] == {"voice": ["email", "webchat"], "webchat": ["voice"]}
    assert (await get(client, f"/agents/{agent_id}/routing-profile", people["supervisor"]))[
        "after_call_work_seconds"
    ] == 45

    r = await client.put(f"{API}/agents/{agent_id}/routing-profile", json=body, headers=agent)
    assert r.status_code == 403  # agents do not set their own capacity
    other, _ = await person(app, "agent", "Bob")
    r = await client.get(f"{API}/agents/{other}/routing-profile", headers=agent)
    assert r.status_code == 403
    r = await client.put(
        f"{API}/agents/{agent_id}/routing-profile", json={**body, "cost": {"voice": 120}}, headers=admin
    )
    assert r.status_code == 422
    assert "above the budget" in r.json()["detail"]
    assert r.json()["errors"][0]["field"] == "cost.voice"  # the admin page shows it next to that cost
    r = await client.put(
        f"{API}/agents/{agent_id}/routing-profile", json={**body, "max_per_channel": {"fax": 1}}, headers=admin
    )
    assert r.status_code == 422
    r = await client.put(
        f"{API}/agents/{agent_id}/routing-profile",
        json={**body, "skills": [{"skill_id": str(agent_id), "level": 2}]},  # not a skill
        headers=admin,
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "skills"
    r = await client.get(f"{API}/agents/{skill['id']}/routing-profile", headers=admin)
    assert r.status_code == 404


async def test_presence_is_stored_published_and_after_call_work_has_a_timer(client, app, people, frozen_clock):
    agent, agent_id = people["agent"], people["agent_id"]
    start = await get(client, "/agents/me/presence", agent)
    assert start["status"] == "offline"
    desk = await Recorder.open(app, "desk")
    try:
        out = await put(client, "/agents/me/presence", {"status": "available"}, agent)
        assert out["status"] == "available"
        assert out["until"] is None
        assert out["since"].startswith(clock.now().isoformat()[:19])
        [event] = desk.of("agent.presence")
        assert event["user_id"] == str(agent_id)
        assert event["status"] == "available"
        assert event["since"] == clock.now().isoformat()
        # The same status again keeps "since".
        frozen_clock.advance(seconds=30)
        again = await put(client, "/agents/me/presence", {"status": "available"}, agent)
        assert again["since"] == out["since"]
        acw = await put(client, "/agents/me/presence", {"status": "after_call_work"}, agent)
        assert acw["until"] is not None
        until = clock.now() + timedelta(seconds=60)
        assert acw["until"].startswith(until.isoformat()[:19])
        r = await client.put(
            f"{API}/agents/me/presence", json={"status": "away", "until": until.isoformat()}, headers=agent
        )
        assert r.status_code == 422
        r = await client.put(f"{API}/agents/me/presence", json={"status": "lunch"}, headers=agent)
        assert r.status_code == 422
        assert (await get(client, f"/agents/{agent_id}/presence", people["supervisor"]))["status"] == "after_call_work"
        r = await client.get(f"{API}/agents/{agent_id}/presence", headers=agent)
        assert r.status_code == 403
    finally:
        await desk.close()


async def test_routing_rules_are_ordered(client, app, people):
    admin = people["admin"]
    queue = await create_queue_via_api(client, admin, name="Any")
    a = await post(client, "/routing/rules", {"name": "A", "queue_id": queue["id"]}, admin)
    b = await post(client, "/routing/rules", {"name": "B", "queue_id": queue["id"]}, admin)
    c = await post(
        client,
        "/routing/rules",
        {
            "name": "C",
            "queue_id": queue["id"],
            "position": 0,
            "conditions": {
                "segments": ["VIP"],
                "languages": ["ru"],
                "attributes": {"plan": ["gold", "platinum"], "churn_risk": True},
            },
            "priority": 90,
        },
        admin,
    )
    assert c["conditions"]["segments"] == ["vip"]
    listed = await get(client, "/routing/rules", people["supervisor"])
    assert [(r["name"], r["position"]) for r in listed] == [("C", 0), ("A", 1), ("B", 2)]
    r = await client.patch(f"{API}/routing/rules/{c['id']}", json={"position": 5, "enabled": False}, headers=admin)
    assert r.status_code == 200
    assert [r["name"] for r in await get(client, "/routing/rules", admin)] == ["A", "B", "C"]
    r = await client.delete(f"{API}/routing/rules/{a['id']}", headers=admin)
    assert r.status_code == 204
    assert [(r["name"], r["position"]) for r in await get(client, "/routing/rules", admin)] == [("B", 0), ("C", 1)]
    r = await client.post(f"{API}/routing/rules", json={"name": "X", "queue_id": b["id"]}, headers=admin)
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "queue_id"
    r = await client.post(
        f"{API}/routing/rules",
        json={"name": "X", "queue_id": queue["id"], "conditions": {"moon_phase": "full"}},
        headers=admin,
    )
    assert r.status_code == 422
    r = await client.get(f"{API}/routing/rules", headers=people["agent"])
    assert r.status_code == 403


async def test_state_and_decisions_need_the_right_role(client, app, people):
    r = await client.get(f"{API}/routing/state", headers=people["agent"])
    assert r.status_code == 403
    state = await get(client, "/routing/state", people["supervisor"])
    assert state["queues"] == []
    assert state["leader"] is None
    r = await client.get(f"{API}/routing/conversations/{people['agent_id']}/decisions", headers=people["agent"])
    assert r.status_code == 404
    r = await client.post(f"{API}/routing/offers/{people['agent_id']}/accept", headers=people["agent"])
    assert r.status_code == 404
    assert await get(client, "/routing/offers", people["agent"]) == []
