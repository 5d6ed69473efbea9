"""The channel interface: what every channel folder implements, for both directions.

A channel (web chat, e-mail, the API channel; next SMS, Telegram, WhatsApp, voice) is one folder
under ``frontdesk/channels/`` with the same modules — ``inbound.py`` (provider input →
``InboundMessage`` → the ingest writer), ``outbound.py`` (the adapter's send side), ``api.py``
(its HTTP routes), ``schemas.py`` (Pydantic in/out) — and one :class:`ChannelSpec` in
``channel.py`` that says what the app registers for it. See docs/architecture/channels.md.

**Outbound.** An adapter (:class:`ChannelAdapter`) has a ``name`` (the ``Message.channel`` it
serves) and ``async send(OutboundMessage) -> SendResult``. It raises :class:`PermanentError` when
retrying cannot help (bad address, rejected by the provider, channel not configured) and anything
else — :class:`TransientError` or any exception — when a later attempt may succeed; the outbox
dispatcher retries those with backoff. The wiring (``frontdesk/wiring.py``) adds each channel's adapter
to an :class:`AdapterRegistry`, built once per dispatcher with a
:class:`ChannelContext` (hub, settings, db).

**Inbound.** A channel turns what its provider sends into ``InboundMessage`` s
(``frontdesk.conversations.ingest``: identity, channel, inbox, the provider's id as
``external_id`` — the idempotency key — text, attachments) and hands each to the group-commit
ingest writer (:class:`Ingest`, ``app.state.ingest``), from an HTTP route (``api.py``: provider
webhooks, signed posts) or from a listener that lives as long as the server (:data:`Starter`:
an SMTP receiver, an IMAP poller, the widget's runtime). What it refuses is kept through
``frontdesk.rejected``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from frontdesk.channels.listeners import Starter

if TYPE_CHECKING:
    from frontdesk.db import Database
    from frontdesk.realtime import Hub
    from frontdesk.settings import Settings


class ChannelError(Exception):
    """A send failed; ``str(error)`` is shown to agents on the message."""


class TransientError(ChannelError):
    """A later attempt may succeed (timeouts, 5xx, rate limits)."""


class PermanentError(ChannelError):
    """Retrying cannot help; the message is marked failed at once."""


@dataclass(frozen=True)
class OutboundMessage:
    """Everything an adapter needs to deliver one message, read before the send."""

    delivery_id: uuid.UUID  # the outbox item id: stable across retries, receivers dedupe by it
    message_id: uuid.UUID
    conversation_id: uuid.UUID
    customer_id: uuid.UUID
    channel: str
    text: str
    html: str | None
    author_type: str
    author_id: uuid.UUID | None
    created_at: datetime
    inbox_id: uuid.UUID | None = None
    inbox_config: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    attempt: int = 1

    def as_payload(self) -> dict[str, Any]:
        """The JSON shape integrators receive (webhook body)."""
        return {
            "event": "message.outbound",
            "delivery_id": str(self.delivery_id),
            "attempt": self.attempt,
            "message": {
                "id": str(self.message_id),
                "conversation_id": str(self.conversation_id),
                "customer_id": str(self.customer_id),
                "channel": self.channel,
                "text": self.text,
                "html": self.html,
                "author_type": self.author_type,
                "author_id": str(self.author_id) if self.author_id else None,
                "created_at": self.created_at.isoformat(),
                "meta": self.meta,
            },
            "inbox_id": str(self.inbox_id) if self.inbox_id else None,
        }


@dataclass(frozen=True)
class SendResult:
    status: str = "sent"  # a DeliveryStatus value: sent (handed over) or delivered
    external_id: str | None = None  # the provider's id for the message
    detail: str | None = None


@runtime_checkable
class ChannelAdapter(Protocol):
    """The outbound side of a channel: the outbox dispatcher calls ``send`` once per attempt."""

    name: str

    async def send(self, message: OutboundMessage) -> SendResult: ...


class Ingest(Protocol):
    """The inbound side's one way in: the group-commit ingest writer (``app.state.ingest``,
    ``frontdesk.conversations.ingest.IngestWriter``). ``submit`` takes an ``InboundMessage`` and
    answers an ``IngestResult`` (ids, and whether it was new: a provider's retry is not)."""

    async def submit(self, message: Any) -> Any: ...


# A listener (``frontdesk.channels.listeners``): started with the server, given the
# ``ListenerContext`` (db, hub, settings, ingest, store), it returns how to stop it, or ``None``
# when it has nothing to run (not configured).


@dataclass(frozen=True)
class ChannelSpec:
    """What one channel folder gives the app (its ``channel.py``), registered once in ``wiring.py``."""

    name: str  # the Message.channel value (``models.enums.Channel``)
    adapter: AdapterFactory  # outbound: ``outbound.py``
    # inbound and admin HTTP routes (``api.py``), each with the prefix it is mounted under
    routes: tuple[tuple[Any, str], ...] = ()
    listeners: tuple[Starter[Any], ...] = ()  # inbound receivers that live as long as the server


@dataclass
class ChannelContext:
    """What an adapter is built with (once per outbox dispatcher); ``None`` where a test leaves it out."""

    hub: Hub | None = None
    settings: Settings | None = None
    db: Database | None = None  # for adapters that read more than the OutboundMessage (email)


AdapterFactory = Callable[[ChannelContext], ChannelAdapter]


class AdapterRegistry:
    """The channels this process can send on: ``name`` (a ``Message.channel``) → adapter factory."""

    def __init__(self) -> None:
        self._factories: dict[str, AdapterFactory] = {}

    def add_adapter(self, name: str, factory: AdapterFactory) -> None:
        """``registry.add_adapter("sms", SmsAdapter)``: a class or factory taking a ChannelContext."""
        if self._factories.get(name, factory) is not factory:
            raise ValueError(f"channel {name!r} already has an adapter")
        self._factories[name] = factory

    def build(self, ctx: ChannelContext) -> dict[str, ChannelAdapter]:
        """One instance of every adapter."""
        return {name: factory(ctx) for name, factory in self._factories.items()}

    def channels(self) -> list[str]:
        return sorted(self._factories)
