"""``/widget/ws``: one visitor's socket (the frames are in docs/architecture/webchat-protocol.md).

The visitor token comes in the first frame, ``{"type": "auth", "visitor_token": "…"}``, within
``ws_auth_timeout_seconds`` (``?visitor_token=`` in the URL still works for widgets cached before
that change; it is deprecated and redacted from our logs). Attachments in outgoing frames carry
short-lived signed links (``links.py``), never the token. More than ``ws_max_connections_per_ip``
sockets from one address are closed with 4429.

Per connection: a hub subscription to ``widget:<conversation_id>`` (replayable frames: messages
and agent read receipts, ``seq`` = the topic's event id) and ``conversation:<id>`` (agent typing
and status changes, live only). Visitor messages go through the ingest writer (idempotent on
``<visitor_id>:<client_id>``) and are acknowledged once committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from functools import lru_cache
from typing import Any

from fastapi import WebSocket
from starlette.applications import Starlette

from frontdesk import clock
from frontdesk.channels.webchat import (
    availability,
    confirm,
    inbound,
    links,
    protocol,
    receipts,
    runtime,
    snapshot,
    topics,
    uploads,
    visitor,
)
from frontdesk.conversations import delivery
from frontdesk.customers import service as customers
from frontdesk.customers.identity import normalise
from frontdesk.db import Database
from frontdesk.errors import ProblemError
from frontdesk.models import Inbox
from frontdesk.models.enums import Channel, IdentityKind
from frontdesk.realtime import (
    CLOSE_TOO_MANY,
    Event,
    Hub,
    Subscription,
    connection_counter,
    first_frame_credential,
    run_socket_loops,
)

log = logging.getLogger(__name__)

CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN_ORIGIN = 4403
CLOSE_TOO_SLOW = 4408
TYPING_REPEAT_SECONDS = 3.0


@lru_cache(maxsize=4)
def _link_key(visitor_key: bytes) -> bytes:
    return links.link_key(visitor_key)


class WidgetConnection:
    def __init__(
        self, ws: WebSocket, app: Starlette, visitor_id: uuid.UUID, customer_id: uuid.UUID, inbox: Inbox
    ) -> None:
        self.ws = ws
        self.app = app
        self.db: Database = app.state.db
        self.hub: Hub = app.state.hub
        self.settings = app.state.settings
        self.rt = runtime.runtime(app)
        self.visitor_id = visitor_id
        self.customer_id = customer_id
        self.inbox = inbox
        self.ip = runtime.client_ip(ws.client)
        self.conversation_id: uuid.UUID | None = None
        self.hint: uuid.UUID | None = None  # the conversation to join: open, not resolved
        self.sub: Subscription | None = None
        self.lock = asyncio.Lock()
        self.first_live: int | None = None
        self.last_sent = 0
        self.typing_on = False
        self.typing_at = 0.0
        self.email_known = False
        self.told: tuple[Any, ...] | None = None  # the availability this visitor last saw

    # -- sending ---------------------------------------------------------------------------------

    async def send(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind == "message" and isinstance(frame.get("message"), dict) and frame["message"].get("attachments"):
            frame = {**frame, "message": links.sign_views(_link_key(self.rt.key), [frame["message"]])[0]}
        elif kind == "snapshot" and frame.get("messages"):
            frame = {**frame, "messages": links.sign_views(_link_key(self.rt.key), frame["messages"])}
        await self.ws.send_text(protocol.dumps(frame))

    async def _frames(self, events: list[Event]) -> list[dict[str, Any]]:
        """Widget frames for events of the widget topic (messages loaded from the database)."""
        ids: list[uuid.UUID] = []
        for e in events:
            if e.type == topics.MESSAGE_CREATED and not isinstance(e.data.get("message"), dict):
                with contextlib.suppress(ValueError, TypeError):
                    ids.append(uuid.UUID(str(e.data.get("id"))))
        views: dict[str, dict[str, Any]] = {}
        if ids:
            async with self.db.transaction() as s:
                views = await snapshot.messages_by_id(s, ids)
        out = []
        for e in events:
            if e.type == topics.MESSAGE_CREATED:
                inline = e.data.get("message")
                view = inline if isinstance(inline, dict) else views.get(str(e.data.get("id")))
                if view is not None:
                    out.append({"type": "message", "seq": e.id, "message": view})
            elif e.type == topics.WIDGET_READ:
                out.append({"type": "read", "seq": e.id, "message_id": e.data.get("message_id")})
        return out

    async def deliver(self, event: Event) -> None:
        if event.topic == topics.customer_topic(self.customer_id):
            if event.type == confirm.CONFIRMED:  # this customer is someone else now: every tab follows
                await self.identity_confirmed()
            elif event.type == topics.CONVERSATION_OPENED and self.conversation_id is None:
                with contextlib.suppress(ValueError, TypeError):
                    target = uuid.UUID(str(event.data.get("conversation_id")))
                    await self.welcome(await self.follow(target))
            return
        if self.conversation_id is None:
            return
        if event.topic == topics.widget_topic(self.conversation_id):
            async with self.lock:
                if event.id <= self.last_sent:
                    return
                if self.first_live is None:
                    self.first_live = event.id
                self.last_sent = event.id
                for frame in await self._frames([event]):
                    await self.send(frame)
        elif event.topic == f"conversation:{self.conversation_id}":
            await self._conversation_event(event)

    async def _conversation_event(self, event: Event) -> None:
        data = event.data or {}
        if event.type == topics.TYPING:
            raw_author = data.get("author")
            author: dict[str, Any] = raw_author if isinstance(raw_author, dict) else {}
            kind = data.get("author_type") or author.get("type")
            if kind == "customer":
                return
            name = data.get("author_name") or author.get("name")
            await self.send({"type": "typing", "on": bool(data.get("on", True)), "author_name": name})
        elif event.type == "conversation.updated":
            raw_conv = data.get("conversation")
            conv: dict[str, Any] = raw_conv if isinstance(raw_conv, dict) else {}
            status = conv.get("status")
            if status == "resolved":
                self.hint = None
            elif status in ("open", "pending", "snoozed"):
                self.hint = self.conversation_id

    # -- conversation and resume ---------------------------------------------------------------

    async def follow(self, conversation_id: uuid.UUID | None) -> int:
        """Follow ``conversation_id``'s topics; returns the widget topic's head (0 without one)."""
        assert self.sub is not None
        if conversation_id == self.conversation_id and conversation_id is not None:
            return await topics.topic_head(self.hub, topics.widget_topic(conversation_id))
        old = self.conversation_id
        if old is not None:
            await self.sub.remove([topics.widget_topic(old), f"conversation:{old}"])
        self.conversation_id = self.hint = conversation_id
        self.first_live, self.last_sent = None, 0
        if conversation_id is None:
            return 0
        await self.sub.add([topics.widget_topic(conversation_id), f"conversation:{conversation_id}"])
        head = await topics.topic_head(self.hub, topics.widget_topic(conversation_id))
        async with self.lock:
            self.last_sent = max(self.last_sent, head)
        return head

    async def welcome(self, head: int) -> None:
        async with self.db.transaction() as s:
            self.email_known = await visitor.email_known(s, self.customer_id)
            agents = await self.rt.agents_online(s, self.inbox)
        state = availability.availability(self.inbox, agents, email_known=self.email_known)
        self.told = availability.availability_key(state)
        await self.send(
            {
                "type": "welcome",
                "visitor_id": str(self.visitor_id),
                "conversation_id": str(self.conversation_id) if self.conversation_id else None,
                "last_seq": head,
                "epoch": self.hub.epoch,
                "availability": state,
            }
        )

    async def tell_availability(self, inbox: Inbox, agents_online: int) -> None:
        """Whether someone can answer soon changed (an agent came or went, hours began or ended)."""
        state = availability.availability(inbox, agents_online, email_known=self.email_known)
        await self.send({"type": "availability", "availability": state})

    async def snapshot(self) -> None:
        async with self.lock:
            head = 0
            messages: list[dict[str, Any]] = []
            if self.conversation_id is not None:
                head = await topics.topic_head(self.hub, topics.widget_topic(self.conversation_id))
                async with self.db.transaction() as s:
                    messages = await snapshot.history(s, self.conversation_id)
                self.last_sent = max(self.last_sent, head)
            await self.send({"type": "snapshot", "messages": messages, "last_seq": head})

    async def hello(self, frame: protocol.Hello) -> None:
        stale = (frame.conversation_id is not None and frame.conversation_id != self.conversation_id) or (
            frame.epoch is not None and frame.epoch != self.hub.epoch
        )
        if self.conversation_id is None or frame.last_seq is None or stale:
            await self.snapshot()
            return
        topic = topics.widget_topic(self.conversation_id)
        async with self.lock:
            events = await self.hub.replay(topic, frame.last_seq)
            if events is None:
                events = []
                replayable = False
            else:
                replayable = True
                events = [e for e in events if self.first_live is None or e.id < self.first_live]
            if replayable:
                for f in await self._frames(events):
                    await self.send(f)
                if events:
                    self.last_sent = max(self.last_sent, events[-1].id)
        if not replayable:
            await self.snapshot()

    # -- client frames -----------------------------------------------------------------------------

    async def handle(self, raw: str) -> None:
        try:
            frame = protocol.parse_client_frame(raw)
        except protocol.FrameError as exc:
            # A message refused here (too long, malformed) names its client_id: the widget shows
            # that message as not sent instead of resending it. Nothing is cut, nothing is stored.
            extra = {"client_id": exc.client_id} if exc.client_id else {}
            await self.send(protocol.error(exc.code, exc.detail, **extra))
            return
        try:
            await self._dispatch(frame)
        except ProblemError as exc:
            code = "not_found" if exc.status == 404 else "rate_limited" if exc.status == 429 else "invalid"
            extra = {"client_id": str(frame.client_id)} if isinstance(frame, protocol.MessageFrame) else {}
            await self.send(protocol.error(code, exc.detail[:500], **extra))

    async def _dispatch(self, frame: Any) -> None:
        if isinstance(frame, protocol.Ping):
            await self.send({"type": "pong"})
        elif isinstance(frame, protocol.Hello):
            await self.hello(frame)
        elif isinstance(frame, protocol.MessageFrame):
            await self.message(frame)
        elif isinstance(frame, protocol.Typing):
            await self.typing(frame.on)
        elif isinstance(frame, protocol.Read):
            async with self.db.transaction() as s:
                await receipts.mark_read_by_visitor(s, self.customer_id, frame.message_id)
        elif isinstance(frame, protocol.Prechat):
            await self.prechat(frame)
        elif isinstance(frame, protocol.ConfirmEmail):
            await self.confirm_email(frame)
        elif isinstance(frame, protocol.Track):
            await self._limit("track", 2)
            async with self.db.transaction() as s:
                await inbound.track(s, self.customer_id, frame.event, frame.properties, self.visitor_id)
        elif isinstance(frame, protocol.OfferAnswer):
            async with self.db.transaction() as s:
                await inbound.answer_offer(s, self.customer_id, frame.offer_id, frame.answer == "accept")

    async def _limit(self, what: str, factor: int = 1) -> None:
        per_minute = self.settings.widget_messages_per_minute * factor
        for key, limit in ((f"{what}:visitor:{self.visitor_id}", per_minute), (f"{what}:ip:{self.ip}", per_minute * 5)):
            wait = await self.rt.limiter.hit(key, limit)
            if wait is not None:
                from frontdesk.errors import TooManyRequests

                raise TooManyRequests(f"Too many messages; retry in {wait} s.", extra={"retry_after": wait})

    async def message(self, frame: protocol.MessageFrame) -> None:
        external_id = inbound.external_id_of(self.visitor_id, frame.client_id)
        try:
            await self._limit("message")
        except ProblemError as exc:
            # Over the limit: a resend of something already stored is still acknowledged.
            async with self.db.transaction() as s:
                stored = await delivery.stored_message_id(s, Channel.webchat.value, external_id)
            if stored is not None:
                await self.send(protocol.ack(frame.client_id, stored, True))
                return
            await self.send(protocol.error("rate_limited", exc.detail, client_id=str(frame.client_id), **exc.extra))
            return
        text = frame.text
        if frame.attachment_ids:
            async with self.db.transaction() as s:
                if not await uploads.uploads_owned(s, self.visitor_id, frame.attachment_ids):
                    await self.send(
                        protocol.error("invalid", "attachment_ids: not your uploads", client_id=str(frame.client_id))
                    )
                    return
        result = await self.app.state.ingest.submit(
            inbound.visitor_message(
                self.inbox.id,
                self.visitor_id,
                frame.client_id,
                text,
                conversation_id=self.hint,
                attachment_ids=tuple(frame.attachment_ids),
            )
        )
        if result.customer_id != self.customer_id:
            await self.set_customer(result.customer_id)
        await self.send(protocol.ack(frame.client_id, result.message_id, not result.created))
        if result.conversation_id != self.conversation_id:
            head = await self.follow(result.conversation_id)
            await self.welcome(head)
        if result.created:
            # Other tabs of this visitor see the message too. Without attachments the frame is
            # complete here (no database read per socket); with them the sockets load it.
            data: dict[str, Any] = {"id": str(result.message_id)}
            if not frame.attachment_ids:
                data["message"] = snapshot.inbound_view(result.message_id, result.conversation_id, text)
            await self.hub.publish(topics.widget_topic(result.conversation_id), topics.MESSAGE_CREATED, data)

    async def typing(self, on: bool) -> None:
        if self.conversation_id is None:
            return
        now = time.monotonic()
        if on == self.typing_on and (not on or now - self.typing_at < TYPING_REPEAT_SECONDS):
            return
        self.typing_on, self.typing_at = on, now
        data = {
            "conversation_id": str(self.conversation_id),
            "customer_id": str(self.customer_id),
            "author_type": "customer",
            "on": on,
        }
        await self.hub.publish(f"conversation:{self.conversation_id}", topics.TYPING, data)
        await self.hub.publish("desk", topics.TYPING, data)

    async def prechat(self, frame: protocol.Prechat) -> None:
        link: confirm.LinkRequest | None = None
        async with self.db.transaction() as s:
            me = await visitor.get_visitor(s, self.visitor_id)
            if me is None:
                return
            outcome = await visitor.apply_contact(
                s, me, name=frame.name, email=frame.email, max_identities=self.settings.max_identities_per_customer
            )
            if outcome.outcome == "confirm" and outcome.email:
                # Someone else's address: the visitor stays who they are until the e-mailed link proves it.
                link = await confirm.request_link(s, me, outcome.email, self.settings)
            known = await visitor.email_known(s, outcome.customer_id)
        self.email_known = known
        await self.set_customer(outcome.customer_id)
        answer: dict[str, Any] = {"type": "prechat", "outcome": outcome.outcome, "email_known": known}
        if link is not None:
            answer["confirm"] = self._link_frame(link)
        await self.send(answer)

    @staticmethod
    def _link_frame(link: confirm.LinkRequest) -> dict[str, Any]:
        return {"email": link.email, "sent": link.sent, "retry_after": link.retry_after}

    async def confirm_email(self, frame: protocol.ConfirmEmail) -> None:
        """Another link to an address the visitor gave: only one they claimed (someone else's, or
        their own unproven one), never an address they already proved."""
        async with self.db.transaction() as s:
            me = await visitor.get_visitor(s, self.visitor_id)
            if me is None:
                return
            value = normalise(IdentityKind.email.value, frame.email, field="email")
            held = await visitor.holder_of(s, IdentityKind.email.value, value)
            if held is not None and held[1].id == self.customer_id and held[0].verified:
                await self.send({"type": "confirm_email", "email": value, "sent": False, "verified": True})
                return
            link = await confirm.request_link(s, me, value, self.settings)
        await self.send({"type": "confirm_email", **self._link_frame(link), "verified": False})

    async def identity_confirmed(self) -> None:
        """An e-mailed link proved the visitor's address: follow the customer they now are."""
        async with self.db.transaction() as s:
            me = await visitor.get_visitor(s, self.visitor_id)
            if me is None:
                return
            customer = await customers.follow_merges(s, await customers.get_customer(s, me.customer_id))
            known = await visitor.email_known(s, customer.id)
            conv = await snapshot.open_conversation(s, customer.id, self.inbox.id)
        self.email_known = known
        await self.set_customer(customer.id)
        await self.send({"type": "email_confirmed", "email_known": known})
        target = conv.id if conv else None
        if target != self.conversation_id:
            await self.welcome(await self.follow(target))
        await self.snapshot()

    # -- the connection's life ---------------------------------------------------------------------

    async def set_customer(self, customer_id: uuid.UUID) -> None:
        assert self.sub is not None
        if customer_id != self.customer_id:
            await self.sub.remove([topics.customer_topic(self.customer_id)])
            self.customer_id = customer_id
        await self.sub.add([topics.customer_topic(customer_id)])

    async def run(self, conversation_id: uuid.UUID | None) -> None:
        self.sub = await self.hub.open([topics.customer_topic(self.customer_id)])
        try:
            head = await self.follow(conversation_id)
            await self.welcome(head)
            self.rt.watch(self)  # told from now on when what the welcome said changes

            async def pump() -> None:
                assert self.sub is not None
                async for event in self.sub:
                    await self.deliver(event)
                if self.sub.overflowed:
                    await self.ws.close(code=CLOSE_TOO_SLOW, reason="too far behind; reconnect and resume")

            async def receive() -> None:
                while True:
                    await self.handle(await self.ws.receive_text())

            await run_socket_loops(pump(), receive(), label=f"widget visitor {self.visitor_id}")
        finally:
            self.rt.unwatch(self)
            await self.sub.close()


async def widget_socket(ws: WebSocket) -> None:
    """The widget's socket. Not in the OpenAPI document (WebSocket)."""
    app = ws.app
    counter = connection_counter(app)
    ip = runtime.client_ip(ws.client)
    await ws.accept()
    if not counter.acquire(ip, app.state.settings.ws_max_connections_per_ip):
        await ws.close(code=CLOSE_TOO_MANY, reason="too many connections from your address")
        return
    try:
        await _serve(ws)
    finally:
        counter.release(ip)


async def _serve(ws: WebSocket) -> None:
    app = ws.app
    rt = runtime.runtime(app)
    db: Database = app.state.db
    token = ws.query_params.get("visitor_token")  # deprecated: URLs are logged; the first frame carries it
    if token is None:
        token = await first_frame_credential(ws, "visitor_token", app.state.settings.ws_auth_timeout_seconds)
    visitor_id = visitor.verify_token(rt.key, token)
    if visitor_id is None:
        await ws.close(code=CLOSE_UNAUTHORIZED, reason="a valid visitor_token is needed")
        return
    async with db.transaction() as s:
        me = await visitor.get_visitor(s, visitor_id)
        inbox = await s.get(Inbox, me.inbox_id) if me else None
        if me is None or inbox is None or not inbox.is_active:
            me = None
        else:
            customer = await customers.follow_merges(s, await customers.get_customer(s, me.customer_id))
            me.last_seen_at = clock.now()
            conversation = await snapshot.open_conversation(s, customer.id, inbox.id)
    if me is None or inbox is None:
        await ws.close(code=CLOSE_UNAUTHORIZED, reason="unknown visitor")
        return
    if not snapshot.origin_allowed(inbox, ws.headers.get("origin")):
        await ws.close(code=CLOSE_FORBIDDEN_ORIGIN, reason="this site may not embed the widget")
        return
    conn = WidgetConnection(ws, app, visitor_id, customer.id, inbox)
    try:
        await conn.run(conversation.id if conversation else None)
    finally:
        with contextlib.suppress(Exception):
            await ws.close()
