"""The Redis hub: the same semantics as :class:`~frontdesk.realtime.MemoryHub` across processes.

Publishing runs one Lua script, so for each topic the id (``INCR``), the append to the resume
buffer (a list trimmed to ``BUFFER_PER_TOPIC``) and the ``PUBLISH`` happen atomically and in id
order, whichever process publishes. Each hub keeps one pub/sub connection, subscribes to a Redis
channel while at least one local subscriber wants the topic, and fans messages out locally.

Redis only carries notifications: the database is the truth. Buffers and counters expire after
``KEY_TTL_SECONDS`` without publishes; a client resuming from before that gets a snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import defaultdict
from typing import Any

import orjson
import redis.asyncio as redis

from frontdesk.realtime import BUFFER_PER_TOPIC, Event, Hub, Subscription, replay_from

log = logging.getLogger(__name__)

KEY_TTL_SECONDS = 7 * 24 * 3600

# KEYS: seq key, buffer key. ARGV: event JSON without its closing "}" and ending in "id":,
# buffer size, channel, ttl. Returns the new id.
_PUBLISH_LUA = """
local id = redis.call('INCR', KEYS[1])
local payload = ARGV[1] .. id .. '}'
redis.call('RPUSH', KEYS[2], payload)
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[2]), -1)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[4]))
redis.call('PUBLISH', ARGV[3], payload)
return id
"""


class RedisHub(Hub):
    def __init__(self, url: str, *, prefix: str = "fd", buffer: int = BUFFER_PER_TOPIC) -> None:
        self.url = url
        self.prefix = prefix
        self.buffer = buffer
        self._redis: redis.Redis | None = None
        self._pubsub: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._script: Any = None
        self._subs: dict[str, set[Subscription]] = defaultdict(set)
        self._lock = asyncio.Lock()
        self._pending: dict[str, list[asyncio.Future[None]]] = defaultdict(list)
        self._control = f"{prefix}:hub:control"
        self._closing = False

    # -- keys --------------------------------------------------------------------------------

    def _channel(self, topic: str) -> str:
        return f"{self.prefix}:ev:{topic}"

    def _seq_key(self, topic: str) -> str:
        return f"{self.prefix}:seq:{{{topic}}}"

    def _buf_key(self, topic: str) -> str:
        return f"{self.prefix}:buf:{{{topic}}}"

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        if self._redis is not None:
            return
        self._closing = False
        self._redis = redis.Redis.from_url(self.url)
        self._script = self._redis.register_script(_PUBLISH_LUA)
        # The epoch names the id sequence; it survives as long as Redis keeps its data.
        await self._redis.set(f"{self.prefix}:epoch", uuid.uuid4().hex, nx=True)
        raw = await self._redis.get(f"{self.prefix}:epoch")
        self.epoch = raw.decode() if isinstance(raw, bytes) else str(raw)
        self._pubsub = self._redis.pubsub()
        # A permanent subscription keeps the pub/sub connection open for the reader.
        await self._pubsub.subscribe(self._control)
        self._reader = asyncio.create_task(self._read(), name="redis-hub-reader")

    async def close(self) -> None:
        self._closing = True
        for subs in list(self._subs.values()):
            for sub in list(subs):
                sub._end()
        self._subs.clear()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
            self._reader = None
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
            self._pubsub = None
        if self._redis is not None:
            with contextlib.suppress(Exception):
                await self._redis.aclose()
            self._redis = None

    async def ping(self) -> bool:
        if self._redis is None:
            return False
        return bool(await self._redis.ping())

    def _client(self) -> redis.Redis:
        if self._redis is None:
            raise RuntimeError("RedisHub used before start()")
        return self._redis

    # -- publish / replay --------------------------------------------------------------------

    async def publish(self, topic: str, type: str, data: dict[str, Any]) -> Event:
        self._client()
        event = Event(topic=topic, type=type, data=data)
        body = orjson.dumps({"topic": topic, "type": type, "data": data, "at": event.at})
        prefix = body[:-1].decode() + ',"id":'
        new_id = await self._script(
            keys=[self._seq_key(topic), self._buf_key(topic)],
            args=[prefix, self.buffer, self._channel(topic), KEY_TTL_SECONDS],
        )
        event.id = int(new_id)
        return event

    async def head(self, topic: str) -> int:
        return int(await self._client().get(self._seq_key(topic)) or 0)

    async def replay(self, topic: str, after_id: int) -> list[Event] | None:
        client = self._client()
        async with client.pipeline(transaction=True) as pipe:
            pipe.get(self._seq_key(topic))
            pipe.lrange(self._buf_key(topic), 0, -1)
            last_raw, raw_events = await pipe.execute()
        last = int(last_raw or 0)
        events = [Event.from_dict(orjson.loads(r)) for r in raw_events]
        return replay_from(events, last, after_id)

    # -- subscriptions -----------------------------------------------------------------------

    async def _register(self, sub: Subscription, topics: list[str]) -> None:
        waits: list[asyncio.Future[None]] = []
        async with self._lock:
            new_channels = []
            for t in topics:
                if not self._subs[t]:
                    ch = self._channel(t)
                    fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                    self._pending[ch].append(fut)
                    waits.append(fut)
                    new_channels.append(ch)
                self._subs[t].add(sub)
            if new_channels:
                await self._pubsub.subscribe(*new_channels)
        # Live once Redis confirmed the subscription (the reader resolves the futures).
        if waits:
            await asyncio.wait_for(asyncio.gather(*waits), timeout=10)

    async def _unregister(self, sub: Subscription, topics: list[str]) -> None:
        async with self._lock:
            gone = []
            for t in topics:
                subs = self._subs.get(t)
                if subs is None:
                    continue
                subs.discard(sub)
                if not subs:
                    del self._subs[t]
                    gone.append(self._channel(t))
            if gone and self._pubsub is not None and not self._closing:
                with contextlib.suppress(Exception):
                    await self._pubsub.unsubscribe(*gone)

    async def _read(self) -> None:
        plen = len(self.prefix) + 4  # "<prefix>:ev:"
        while not self._closing:
            try:
                msg = await self._pubsub.get_message(timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception:
                if self._closing:
                    return
                log.warning("redis hub: pub/sub connection lost; reconnecting", exc_info=True)
                await asyncio.sleep(0.5)
                continue
            if msg is None:
                continue
            kind = msg.get("type")
            channel = msg.get("channel")
            if isinstance(channel, bytes):
                channel = channel.decode()
            if kind == "subscribe":
                waiting = self._pending.get(channel)
                if waiting:
                    fut = waiting.pop(0)
                    if not fut.done():
                        fut.set_result(None)
                    if not waiting:
                        del self._pending[channel]
                continue
            if kind != "message" or channel == self._control:
                continue
            topic = channel[plen:]
            subs = self._subs.get(topic)
            if not subs:
                continue
            try:
                event = Event.from_dict(orjson.loads(msg["data"]))
            except Exception:
                log.warning("redis hub: undecodable message on %s", channel)
                continue
            for s in list(subs):
                s._deliver(event)
