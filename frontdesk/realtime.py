"""Publish/subscribe hub for pushes to agent desktops and widgets.

Two backends with one interface: in-process (embedded mode) and Redis pub/sub (scaled mode).
Events carry a per-topic increasing ``id`` so a client that reconnects can resume from the last
one it saw; when the gap is no longer buffered it is told to fetch a fresh snapshot.

Services never publish directly: they call :func:`publish_after_commit` so nothing is pushed
for work that was rolled back.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict, deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk import clock
from frontdesk.db import after_commit

BUFFER_PER_TOPIC = 1000


@dataclass
class Event:
    topic: str
    type: str  # domain.verb, e.g. conversation.message_created
    data: dict[str, Any]
    id: int = 0
    at: str = field(default_factory=lambda: clock.now().isoformat())

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "topic": self.topic, "type": self.type, "data": self.data, "at": self.at}


class Hub:
    """Interface of every hub backend."""

    async def start(self) -> None:
        """Connect (no-op for the memory hub)."""

    async def close(self) -> None:
        """Disconnect and end every subscription."""

    async def publish(self, topic: str, type: str, data: dict[str, Any]) -> Event:
        raise NotImplementedError

    def subscribe(self, topics: list[str]) -> AsyncIterator[Event]:
        raise NotImplementedError

    async def replay(self, topic: str, after_id: int) -> list[Event] | None:
        """Events of ``topic`` after ``after_id``; ``None`` if some are no longer buffered."""
        raise NotImplementedError

    async def ping(self) -> bool:
        return True


class MemoryHub(Hub):
    """In-process hub: fan-out to asyncio queues, a ring buffer per topic for resume."""

    def __init__(self, buffer: int = BUFFER_PER_TOPIC) -> None:
        self._subs: dict[str, set[asyncio.Queue[Event | None]]] = defaultdict(set)
        self._buffers: dict[str, deque[Event]] = defaultdict(lambda: deque(maxlen=buffer))
        self._seq: dict[str, int] = defaultdict(int)

    async def close(self) -> None:
        for queues in self._subs.values():
            for q in queues:
                q.put_nowait(None)

    async def publish(self, topic: str, type: str, data: dict[str, Any]) -> Event:
        self._seq[topic] += 1
        event = Event(topic=topic, type=type, data=data, id=self._seq[topic])
        self._buffers[topic].append(event)
        for q in list(self._subs.get(topic, ())):
            q.put_nowait(event)
        return event

    async def subscribe(self, topics: list[str]) -> AsyncIterator[Event]:  # type: ignore[override]
        q: asyncio.Queue[Event | None] = asyncio.Queue()
        for t in topics:
            self._subs[t].add(q)
        try:
            while True:
                event = await q.get()
                if event is None:
                    return
                yield event
        finally:
            for t in topics:
                self._subs[t].discard(q)

    async def replay(self, topic: str, after_id: int) -> list[Event] | None:
        buf = self._buffers.get(topic)
        last = self._seq.get(topic, 0)
        if after_id >= last:
            return []
        if not buf or buf[0].id > after_id + 1:
            return None
        return [e for e in buf if e.id > after_id]


def publish_after_commit(session: AsyncSession, topic: str, type: str, data: dict[str, Any]) -> None:
    """Queue a push that happens only if the unit of work commits.

    The hub comes from the session (``Database.attach_hub``); without one nothing is pushed.
    """
    hub: Hub | None = session.info.get("hub")
    if hub is None:
        return

    async def _push() -> None:
        await hub.publish(topic, type, data)

    after_commit(session, _push)


def make_hub(redis_url: str | None) -> Hub:
    if redis_url:
        from frontdesk.realtime_redis import RedisHub

        return RedisHub(redis_url)
    return MemoryHub()
