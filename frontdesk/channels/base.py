"""The channel adapter interface: what the outbox dispatcher calls to send one message.

An adapter has a ``name`` (the ``Message.channel`` it serves) and ``async send(OutboundMessage)
-> SendResult``. It raises :class:`PermanentError` when retrying cannot help (bad address,
rejected by the provider, channel not configured) and anything else — :class:`TransientError`
or any exception — when a later attempt may succeed; the dispatcher retries those with backoff.

Adapters are registered by name with :func:`register_adapter` and built once per dispatcher
with a :class:`ChannelContext` (hub, settings). A channel's module is listed in
``ADAPTER_MODULES`` so :func:`load_adapters` imports it.
"""

from __future__ import annotations

import importlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

ADAPTER_MODULES: list[str] = [
    "frontdesk.channels.apichannel.outbound",
    "frontdesk.channels.webchat.adapter",
    "frontdesk.channels.email.outbound",
]


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
_registry: dict[str, AdapterFactory] = {}


def register_adapter(name: str) -> Callable[[AdapterFactory], AdapterFactory]:
    """Decorator: ``@register_adapter("sms")`` on a class or factory taking a ChannelContext."""

    def deco(factory: AdapterFactory) -> AdapterFactory:
        _registry[name] = factory
        return factory

    return deco


def load_adapters() -> None:
    for module in ADAPTER_MODULES:
        importlib.import_module(module)


def build_adapters(ctx: ChannelContext) -> dict[str, ChannelAdapter]:
    """One instance of every registered adapter."""
    load_adapters()
    return {name: factory(ctx) for name, factory in _registry.items()}


def registered_channels() -> list[str]:
    load_adapters()
    return sorted(_registry)
