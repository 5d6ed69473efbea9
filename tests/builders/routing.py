"""Routing test data and helpers: queues (in the database or through the API), routing profiles,
presence, conversations opened through the API, and driving the routing leader step by step."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from sqlalchemy import select

from frontdesk.db import Database
from frontdesk.models import Conversation, Queue
from frontdesk.models.routing import RoutingItem, RoutingOffer
from frontdesk.realtime import Event, Subscription
from frontdesk.routing.leader import RoutingLeader
from tests.builders.users import agent

API = "/api/v1"


async def person(app: Any, role: str = "agent", name: str = "Test User") -> tuple[uuid.UUID, dict[str, str]]:
    """A user's id (what the routing API speaks) and the headers that act as them."""
    user, headers = await agent(app, role, name)
    return user.id, headers


async def leader(app: Any) -> RoutingLeader:
    """The app's routing leader, once it leads (it rebuilt its state)."""
    routing: RoutingLeader = app.state.routing
    await asyncio.wait_for(routing.ready.wait(), 20)
    return routing


async def settle(app: Any, steps: int = 2) -> None:
    """Let the leader handle everything committed so far (inbox, timers, a decision cycle)."""
    routing = await leader(app)
    for _ in range(steps):
        assert await routing.step()


async def post(client: Any, path: str, body: Any, headers: dict[str, str], expect: int = 201) -> Any:
    r = await client.post(f"{API}{path}", json=body, headers=headers)
    assert r.status_code == expect, r.text
    return r.json() if r.content else None


async def put(client: Any, path: str, body: Any, headers: dict[str, str], expect: int = 200) -> Any:
    r = await client.put(f"{API}{path}", json=body, headers=headers)
    assert r.status_code == expect, r.text
    return r.json()


async def get(client: Any, path: str, headers: dict[str, str], expect: int = 200) -> Any:
    r = await client.get(f"{API}{path}", headers=headers)
    assert r.status_code == expect, r.text
    return r.json()


async def make_queue(db: Database, name: str | None = None, **fields: Any) -> Queue:
    async with db.transaction() as s:
        queue = Queue(name=name or f"queue-{uuid.uuid4().hex[:6]}", **fields)
        s.add(queue)
    return queue


async def create_queue_via_api(client: Any, admin: dict[str, str], **fields: Any) -> dict[str, Any]:
    body = {"name": f"q-{uuid.uuid4().hex[:6]}", "channels": ["webchat"], **fields}
    return await post(client, "/queues", body, admin)  # type: ignore[no-any-return]


async def profile(client: Any, admin: dict[str, str], user_id: uuid.UUID, **fields: Any) -> dict[str, Any]:
    body = {
        "max_per_channel": {"webchat": 3, "email": 5, "voice": 1},
        "budget": 100,
        "cost": {"webchat": 25, "email": 10, "voice": 100},
        **fields,
    }
    return await put(client, f"/agents/{user_id}/routing-profile", body, admin)  # type: ignore[no-any-return]


async def presence(client: Any, headers: dict[str, str], status: str, **extra: Any) -> dict[str, Any]:
    return await put(client, "/agents/me/presence", {"status": status, **extra}, headers)  # type: ignore[no-any-return]


async def open_conversation(
    client: Any, headers: dict[str, str], customer_id: uuid.UUID, channel: str = "webchat", **extra: Any
) -> str:
    body = {"customer_id": str(customer_id), "channel": channel, **extra}
    return str((await post(client, "/conversations", body, headers))["id"])


async def decisions(client: Any, headers: dict[str, str], conversation_id: str) -> list[dict[str, Any]]:
    return await get(client, f"/routing/conversations/{conversation_id}/decisions", headers)  # type: ignore[no-any-return]


def kinds(rows: list[dict[str, Any]]) -> list[str]:
    return [r["kind"] for r in rows]


async def pending_offers(app: Any, conversation_id: str | None = None) -> list[RoutingOffer]:
    async with app.state.db.transaction() as s:
        stmt = select(RoutingOffer).where(RoutingOffer.status == "pending")
        if conversation_id is not None:
            stmt = stmt.where(RoutingOffer.conversation_id == uuid.UUID(conversation_id))
        return list((await s.scalars(stmt.order_by(RoutingOffer.offered_at))).all())


async def item(app: Any, conversation_id: str) -> RoutingItem | None:
    async with app.state.db.transaction() as s:
        return await s.get(RoutingItem, uuid.UUID(conversation_id))


async def conversation(app: Any, conversation_id: str) -> Conversation:
    async with app.state.db.transaction() as s:
        found = await s.get(Conversation, uuid.UUID(conversation_id))
        assert found is not None
        return found


class Recorder:
    """Collects the hub events of some topics (the in-process hub delivers on publish)."""

    def __init__(self, sub: Subscription) -> None:
        self.sub = sub
        self.events: list[Event] = []

    @classmethod
    async def open(cls, app: Any, *topics: str) -> Recorder:
        return cls(await app.state.hub.open(list(topics)))

    def drain(self) -> list[Event]:
        while not self.sub.queue.empty():
            event = self.sub.queue.get_nowait()
            if event is not None:
                self.events.append(event)
        return self.events

    def of(self, type_: str, topic: str | None = None) -> list[dict[str, Any]]:
        return [e.data for e in self.drain() if e.type == type_ and (topic is None or e.topic == topic)]

    async def close(self) -> None:
        await self.sub.close()
