"""The domain events: what happened, typed, in one module; topic builders and wire names too.

A service that changes something emits one of these (``frontdesk.bus.emit(session, event)``);
subscribers registered at wiring time (``frontdesk.wiring.register_subscribers``) receive them, inside the
transaction (routing's inbox, webhook deliveries: rows of the same commit) or after the commit
(pushes to browsers). An event is never the browser payload: ``frontdesk.realtime_payloads``
builds the frames from it, in one place, so renaming a field for the UI cannot break routing.

Events carry ids as :class:`uuid.UUID` and, where a subscriber needs the state after the change,
the API view of it (``ConversationOut``, ``MessageOut``) — a snapshot taken in the transaction.
Dispatch is by exact class, resolved once per class along its bases (``bus.Bus``), so a
subscriber of :class:`ConversationUpdated` also gets :class:`ConversationCreated`.

Docs: docs/architecture/realtime.md ("Domain events and the bus").
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # views only; no domain module is imported at run time
    from frontdesk.conversations.schemas import ConversationOut, MessageOut
    from frontdesk.proactive.schemas import EventOut

# -- topics ----------------------------------------------------------------------------------

DESK = "desk"  # every agent desktop


def desk_topic() -> str:
    return DESK


def user_topic(user_id: uuid.UUID | str) -> str:
    """One user's tabs."""
    return f"user:{user_id}"


def conversation_topic(conversation_id: uuid.UUID | str) -> str:
    """An open conversation view."""
    return f"conversation:{conversation_id}"


def widget_topic(conversation_id: uuid.UUID | str) -> str:
    """The customer's chat widget of one conversation."""
    return f"widget:{conversation_id}"


def customer_topic(customer_id: uuid.UUID | str) -> str:
    """Everything shown about one customer (profile pages, the widget before a conversation)."""
    return f"customer:{customer_id}"


def conversation_topics(conversation_id: uuid.UUID | str, assignee_id: uuid.UUID | str | None = None) -> list[str]:
    """Where a conversation's events go: every desktop, the open conversation view, its assignee."""
    topics = [DESK, conversation_topic(conversation_id)]
    if assignee_id is not None:
        topics.append(user_topic(assignee_id))
    return topics


# -- wire names (browser frames and webhook types) -------------------------------------------

CONVERSATION_UPDATED = "conversation.updated"
MESSAGE_CREATED = "conversation.message_created"
MESSAGE_UPDATED = "conversation.message_updated"
MENTIONED = "conversation.mentioned"
TYPING = "conversation.typing"
PRESENCE = "agent.presence"
CUSTOMER_MERGED = "customer.merged"
CUSTOMER_UNMERGED = "customer.unmerged"
CUSTOMER_EVENT_CREATED = "customer.event_created"

# -- who acted ---------------------------------------------------------------------------------


class Actor(Protocol):
    """Whoever made a change: a user or API token (``auth.deps.Principal``) or the system."""

    @property
    def user_id(self) -> uuid.UUID | None: ...  # None: not a user (e.g. an e-mailed link proved it)

    @property
    def actor_kind(self) -> str: ...


# -- events ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DomainEvent:
    """Base of every event (dispatch follows the class and its bases)."""


@dataclass(frozen=True, slots=True)
class ConversationUpdated(DomainEvent):
    """A conversation changed; ``changes`` names the fields, in the order they were changed.

    ``conversation`` is the view after the change. ``notify`` are users to tell besides the
    assignee (the previous assignee of a transfer). ``by`` is ``"routing"`` when the routing
    leader made the change (routing does not hear its own changes back).
    """

    conversation: ConversationOut
    changes: tuple[str, ...]
    notify: tuple[uuid.UUID, ...] = ()
    by: str | None = None

    @property
    def conversation_id(self) -> uuid.UUID:
        return self.conversation.id

    @property
    def assigned(self) -> bool:
        """Assigned or transferred (assignee, team or queue changed)."""
        return not {"assignee_id", "team_id", "queue_id"}.isdisjoint(self.changes)

    @property
    def status_changed(self) -> bool:
        return "status" in self.changes

    @property
    def resolved(self) -> bool:
        return self.status_changed and self.conversation.status == "resolved"


@dataclass(frozen=True, slots=True)
class ConversationCreated(ConversationUpdated):
    """A conversation opened by a person or a service (``changes == ("created",)``)."""

    changes: tuple[str, ...] = ("created",)


@dataclass(frozen=True, slots=True)
class MessageReceived(DomainEvent):
    """An inbound message stored by the ingest path (group commit, Core): a flat summary."""

    conversation_id: uuid.UUID
    message_id: uuid.UUID
    customer_id: uuid.UUID
    channel: str
    inbox_id: uuid.UUID | None
    direction: str
    author_type: str
    created_at: datetime
    preview: str
    new_conversation: bool
    reopened: bool


@dataclass(frozen=True, slots=True)
class MessageCreated(DomainEvent):
    """A message written by a person or by Frontdesk itself, with its view."""

    conversation_id: uuid.UUID
    assignee_id: uuid.UUID | None
    message: MessageOut


@dataclass(frozen=True, slots=True)
class MessageSent(MessageCreated):
    """An outbound message (agent reply, widget notice), queued for delivery in the same commit."""


@dataclass(frozen=True, slots=True)
class NoteAdded(MessageCreated):
    """An internal note (never delivered)."""


@dataclass(frozen=True, slots=True)
class CustomerMessageCreated(MessageCreated):
    """A customer's message written outside the ingest path (the web-chat socket)."""


@dataclass(frozen=True, slots=True)
class MessageStatusChanged(DomainEvent):
    """A message's delivery status (or read mark) changed; ``extra`` holds the extra fields shown."""

    conversation_id: uuid.UUID
    message_id: uuid.UUID
    channel: str
    delivery_status: str
    external_id: str | None
    error: str | None
    status_at: datetime | None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class UserMentioned(DomainEvent):
    """``@handle`` in a note named ``user_id``."""

    user_id: uuid.UUID
    conversation_id: uuid.UUID
    message_id: uuid.UUID
    by_id: uuid.UUID
    by_name: str | None
    excerpt: str


@dataclass(frozen=True, slots=True)
class PresenceChanged(DomainEvent):
    """An agent's presence changed (``extra``: fields shown besides user, status and since)."""

    user_id: uuid.UUID
    status: str
    since: datetime
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CustomerCreated(DomainEvent):
    customer_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class CustomerChanged(DomainEvent):
    customer_id: uuid.UUID
    changes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CustomerMerged(DomainEvent):
    """Customer ``merged_id`` was merged into ``survivor_id`` (``merge_id``: the undoable record)."""

    merge_id: uuid.UUID
    survivor_id: uuid.UUID
    merged_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class CustomerUnmerged(DomainEvent):
    """The merge ``merge_id`` was undone: ``merged_id`` stands apart from ``survivor_id`` again."""

    merge_id: uuid.UUID
    survivor_id: uuid.UUID
    merged_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class EventIngested(DomainEvent):
    """A customer event (``POST /api/v1/events``, the widget's track) was stored; ``event`` is its view."""

    customer_id: uuid.UUID
    event: EventOut


@dataclass(frozen=True, slots=True)
class UserChanged(DomainEvent):
    """A user was created, edited, (de)activated or removed from teams: routing re-reads the agent."""

    user_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class TeamChanged(DomainEvent):
    """A team was created, renamed or deleted (``deleted``): routing re-reads its configuration."""

    team_id: uuid.UUID
    deleted: bool = False
