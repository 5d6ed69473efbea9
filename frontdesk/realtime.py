"""Publish/subscribe hub for pushes to agent desktops and widgets.

Two backends with one interface: in-process (embedded mode) and Redis pub/sub (scaled mode,
``frontdesk.realtime_redis``). Events carry a per-topic increasing ``id`` so a client that
reconnects can resume from the last one it saw; when the gap is no longer buffered it is told to
fetch a fresh snapshot. ``Hub.epoch`` names the id sequence: a client holding ids of another epoch
(the in-process hub restarted, Redis was flushed) must take a snapshot too.

Topics: ``desk`` (every agent desktop), ``user:<id>`` (one user), ``conversation:<id>`` (an open
conversation view), ``widget:<conversation_id>`` (the customer's chat widget).

Services never publish directly. A domain change is emitted as a typed event
(``frontdesk.bus.emit``); ``frontdesk.realtime_payloads`` builds its frames and pushes them after
the commit. Pushes that are not domain events (offers to one agent, typing, widget notices) use
:func:`publish_after_commit`, so nothing is pushed for work that was rolled back either way.
Topic names are built in ``frontdesk.events``. See docs/architecture/realtime.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import OrderedDict, defaultdict, deque
from collections.abc import AsyncIterator, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.applications import Starlette
from starlette.websockets import WebSocket, WebSocketDisconnect

from frontdesk import clock
from frontdesk.db import after_commit
from frontdesk.events import conversation_topics as conversation_topics

log = logging.getLogger(__name__)

BUFFER_PER_TOPIC = 1000
# The memory hub keeps resume buffers for this many topics, dropping the least recently published
# (the Redis hub expires idle topics instead). A client resuming a dropped topic gets a snapshot.
MEMORY_HUB_TOPICS = 10_000
# A subscriber that falls this far behind is cut off (its iterator ends) rather than letting
# one stuck browser grow the server's memory without bound; it reconnects and resumes.
SUBSCRIBER_QUEUE_MAX = 10_000


@dataclass
class Event:
    topic: str
    type: str  # domain.verb, e.g. conversation.message_created
    data: dict[str, Any]
    id: int = 0
    at: str = field(default_factory=lambda: clock.now().isoformat())

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "topic": self.topic, "type": self.type, "data": self.data, "at": self.at}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Event:
        return cls(topic=d["topic"], type=d["type"], data=d.get("data") or {}, id=int(d["id"]), at=d.get("at", ""))


class Subscription:
    """A live subscription to a set of topics that can grow and shrink.

    Returned by :meth:`Hub.open` once it is registered: every event published after ``open``
    returns reaches it. Iterate it for events; the iteration ends when the hub closes or the
    subscriber fell too far behind (``overflowed``).
    """

    def __init__(self, hub: Hub) -> None:
        self._hub = hub
        self.topics: set[str] = set()
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self.closed = False
        self.overflowed = False

    def _deliver(self, event: Event) -> None:
        if self.closed:
            return
        if self.queue.qsize() >= SUBSCRIBER_QUEUE_MAX:
            self.overflowed = True
            self.queue.put_nowait(None)
            self.closed = True
            return
        self.queue.put_nowait(event)

    def _end(self) -> None:
        if not self.closed:
            self.closed = True
            self.queue.put_nowait(None)

    async def add(self, topics: Iterable[str]) -> None:
        new = [t for t in topics if t not in self.topics]
        if new:
            self.topics.update(new)
            await self._hub._register(self, new)

    async def remove(self, topics: Iterable[str]) -> None:
        gone = [t for t in topics if t in self.topics]
        if gone:
            self.topics.difference_update(gone)
            await self._hub._unregister(self, gone)

    async def close(self) -> None:
        topics = list(self.topics)
        self.topics.clear()
        self._end()
        if topics:
            await self._hub._unregister(self, topics)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        event = await self.queue.get()
        if event is None:
            self.closed = True
            raise StopAsyncIteration
        return event


class Hub:
    """Interface of every hub backend."""

    epoch: str = ""

    async def start(self) -> None:
        """Connect (no-op for the memory hub)."""

    async def close(self) -> None:
        """Disconnect and end every subscription."""

    async def publish(self, topic: str, type: str, data: dict[str, Any]) -> Event:
        raise NotImplementedError

    async def open(self, topics: Iterable[str] = ()) -> Subscription:
        """A subscription, registered (live) when this returns."""
        sub = Subscription(self)
        await sub.add(topics)
        return sub

    async def subscribe(self, topics: list[str]) -> AsyncIterator[Event]:
        """Iterate the events of ``topics`` (registration happens on the first iteration)."""
        sub = await self.open(topics)
        try:
            async for event in sub:
                yield event
        finally:
            await sub.close()

    async def replay(self, topic: str, after_id: int) -> list[Event] | None:
        """Events of ``topic`` after ``after_id``; ``None`` if some are no longer buffered."""
        raise NotImplementedError

    async def ping(self) -> bool:
        return True

    async def head(self, topic: str) -> int:
        """The id of the last event published on ``topic`` (0 if none)."""
        raise NotImplementedError

    def local_topics(self) -> set[str]:
        """Topics with at least one live subscription in this process."""
        subs: dict[str, set[Subscription]] = getattr(self, "_subs", {})
        return {topic for topic, live in list(subs.items()) if live}

    # -- backend hooks ---------------------------------------------------------------------

    async def _register(self, sub: Subscription, topics: list[str]) -> None:
        raise NotImplementedError

    async def _unregister(self, sub: Subscription, topics: list[str]) -> None:
        raise NotImplementedError


def replay_from(buffer: Iterable[Event], last_id: int, after_id: int) -> list[Event] | None:
    """The resume rule both backends share.

    ``after_id == last_id``: nothing missed. ``after_id > last_id``: the client holds ids this
    sequence never issued (state was lost) → ``None``. Otherwise the buffer must still hold
    ``after_id + 1``, else the gap is gone → ``None``.
    """
    if after_id == last_id:
        return []
    if after_id > last_id or after_id < 0:
        return None
    events = [e for e in buffer if e.id > after_id]
    if not events or events[0].id != after_id + 1:
        return None
    return events


class MemoryHub(Hub):
    """In-process hub: fan-out to asyncio queues, a ring buffer per topic for resume."""

    def __init__(self, buffer: int = BUFFER_PER_TOPIC, max_topics: int = MEMORY_HUB_TOPICS) -> None:
        self.epoch = uuid.uuid4().hex
        self._subs: dict[str, set[Subscription]] = defaultdict(set)
        self._buffer = buffer
        self._max_topics = max_topics
        # topic -> (last id, recent events); ordered by last publish, oldest first.
        self._topics: OrderedDict[str, tuple[int, deque[Event]]] = OrderedDict()
        # Highest id of any dropped topic: a topic seen again continues above it, so a client still
        # holding an old id finds a gap (and takes a snapshot) instead of replaying the wrong events.
        self._floor = 0

    async def close(self) -> None:
        for subs in list(self._subs.values()):
            for sub in list(subs):
                sub._end()
        self._subs.clear()

    async def head(self, topic: str) -> int:
        entry = self._topics.get(topic)
        return entry[0] if entry else 0

    async def publish(self, topic: str, type: str, data: dict[str, Any]) -> Event:
        entry = self._topics.pop(topic) if topic in self._topics else None
        last, events = entry or (self._floor, deque(maxlen=self._buffer))
        event = Event(topic=topic, type=type, data=data, id=last + 1)
        events.append(event)
        self._topics[topic] = (event.id, events)
        while len(self._topics) > self._max_topics:
            _dropped, (dropped_last, _events) = self._topics.popitem(last=False)
            self._floor = max(self._floor, dropped_last)
        for sub in list(self._subs.get(topic, ())):
            sub._deliver(event)
        return event

    async def replay(self, topic: str, after_id: int) -> list[Event] | None:
        last, events = self._topics.get(topic) or (0, deque())
        return replay_from(events, last, after_id)

    async def _register(self, sub: Subscription, topics: list[str]) -> None:
        for t in topics:
            self._subs[t].add(sub)

    async def _unregister(self, sub: Subscription, topics: list[str]) -> None:
        for t in topics:
            subs = self._subs.get(t)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subs[t]


def publish_after_commit(session: AsyncSession, topic: str, type: str, data: dict[str, Any]) -> None:
    """Queue a push that happens only if the unit of work commits (not a domain event: see above).

    The hub comes from the session (``Database.attach_hub``); without one nothing is pushed.
    """
    hub: Hub | None = session.info.get("hub")
    if hub is None:
        return

    async def _push() -> None:
        await hub.publish(topic, type, data)

    after_commit(session, _push)


def make_hub(redis_url: str | None, *, prefix: str = "fd") -> Hub:
    if redis_url:
        from frontdesk.realtime_redis import RedisHub

        return RedisHub(redis_url, prefix=prefix)
    return MemoryHub()


CLOSE_TOO_MANY = 4429


class ConnectionCounter:
    """Open WebSockets per client address in this process (desk and widget sockets together).

    ``app.state.ws_connections``; the cap is ``settings.ws_max_connections_per_ip``. A socket over
    the cap is accepted and closed at once with :data:`CLOSE_TOO_MANY`.
    """

    def __init__(self) -> None:
        self._open: dict[str, int] = {}

    def acquire(self, ip: str, limit: int) -> bool:
        count = self._open.get(ip, 0)
        if count >= limit:
            return False
        self._open[ip] = count + 1
        return True

    def release(self, ip: str) -> None:
        count = self._open.get(ip, 0) - 1
        if count > 0:
            self._open[ip] = count
        else:
            self._open.pop(ip, None)

    def count(self, ip: str) -> int:
        return self._open.get(ip, 0)


def connection_counter(app: Starlette) -> ConnectionCounter:
    counter: ConnectionCounter | None = getattr(app.state, "ws_connections", None)
    if counter is None:
        counter = app.state.ws_connections = ConnectionCounter()
    return counter


FIRST_FRAME_MAX_BYTES = 4096


async def first_frame_credential(ws: WebSocket, field: str, timeout: float) -> str | None:
    """The credential a socket sends in its first frame, ``{"type": "auth", <field>: …}``, or ``None``
    (silent for ``timeout`` seconds, gone, a binary or oversized frame, not JSON, no such field).

    Credentials travel in a frame, never in the URL, where proxies and logs would keep them. The
    desk socket sends ``token``, the widget ``visitor_token``.
    """
    try:
        raw = await asyncio.wait_for(ws.receive_text(), timeout)
    except (TimeoutError, WebSocketDisconnect, RuntimeError, KeyError):  # silent, gone, or a binary frame
        return None
    if len(raw) > FIRST_FRAME_MAX_BYTES:
        return None
    try:
        frame = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    value = frame.get(field) if isinstance(frame, dict) and frame.get("type") == "auth" else None
    return value if isinstance(value, str) and value else None


async def run_socket_loops(*loops: Coroutine[Any, Any, None], label: str) -> None:
    """Run a WebSocket's loops (push, receive, heartbeat) until the first one ends, then stop the rest.

    The peer leaving ends the receive loop; that is normal and not logged. Anything else that ends a
    loop with an error is logged with ``label`` (whose socket it was).
    """
    tasks = [asyncio.create_task(loop) for loop in loops]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            exc = task.exception()
            if exc is not None and not isinstance(exc, WebSocketDisconnect | RuntimeError | OSError):
                log.warning("socket of %s ended: %r", label, exc)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        # A loop's exception (the peer's WebSocketDisconnect) holds its traceback, whose frames hold
        # the socket's whole state in a reference cycle: only the collector would free it, and after
        # thousands of sockets close that is a pause of over a second. Drop the tracebacks here.
        for task in tasks:
            if not task.cancelled() and (exc := task.exception()) is not None:
                exc.__traceback__ = None
                exc.__context__ = None
