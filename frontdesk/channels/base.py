"""The channel adapter interface: what the outbox dispatcher calls to send one message.

An adapter has a ``name`` (the ``Message.channel`` it serves) and ``async send(OutboundMessage)
-> SendResult``. It raises :class:`PermanentError` when retrying cannot help (bad address,
rejected by the provider, channel not configured) and anything else — :class:`TransientError`
or any exception — when a later attempt may succeed; the dispatcher retries those with backoff.

Adapters are added by name to an :class:`AdapterRegistry` by the wiring
(``frontdesk/wiring.py: adapter_registry``) and built once per dispatcher with a
:class:`ChannelContext` (hub, settings, db).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable


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
    name: str

    async def send(self, message: OutboundMessage) -> SendResult: ...


@dataclass
class ChannelContext:
    hub: Any = None
    settings: Any = None
    db: Any = None  # the Database, for adapters that read more than the OutboundMessage (email)


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
