"""Browser frames built from domain events: the one place that knows what a desk or widget sees.

``frames(event)`` gives the ``(topic, type, data)`` pushes of one event, exactly as the pages'
JavaScript reads them; :func:`push` is the bus's after-commit subscriber that publishes them on
the hub. Services emit typed events (``frontdesk.events``) and never build these payloads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from frontdesk import events as ev
from frontdesk.bus import Publisher

Frame = tuple[str, str, dict[str, Any]]


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def conversation_updated(e: ev.ConversationUpdated) -> list[Frame]:
    """``conversation.updated`` to every desktop, the conversation's view and its (old and new) assignee."""
    view = e.conversation
    data: dict[str, Any] = {"conversation": view.model_dump(mode="json"), "changes": list(e.changes)}
    if e.by is not None:
        data["by"] = e.by
    topics = ev.conversation_topics(view.id, view.assignee_id)
    topics += [ev.user_topic(u) for u in e.notify if u is not None and ev.user_topic(u) not in topics]
    return [(topic, ev.CONVERSATION_UPDATED, data) for topic in topics]


def message_received_data(e: ev.MessageReceived) -> dict[str, Any]:
    """The flat summary of a message stored by the ingest path."""
    return {
        "conversation_id": str(e.conversation_id),
        "message_id": str(e.message_id),
        "customer_id": str(e.customer_id),
        "channel": e.channel,
        "inbox_id": str(e.inbox_id) if e.inbox_id else None,
        "direction": e.direction,
        "author_type": e.author_type,
        "created_at": e.created_at.isoformat(),
        "preview": e.preview,
        "new_conversation": e.new_conversation,
        "reopened": e.reopened,
    }


def message_received(e: ev.MessageReceived) -> list[Frame]:
    data = message_received_data(e)
    return [(ev.DESK, ev.MESSAGE_CREATED, data), (ev.conversation_topic(e.conversation_id), ev.MESSAGE_CREATED, data)]


def message_created(e: ev.MessageCreated) -> list[Frame]:
    data = {"conversation_id": str(e.conversation_id), "message": e.message.model_dump(mode="json")}
    return [(topic, ev.MESSAGE_CREATED, data) for topic in ev.conversation_topics(e.conversation_id, e.assignee_id)]


def message_status_changed(e: ev.MessageStatusChanged) -> list[Frame]:
    data = {
        "conversation_id": str(e.conversation_id),
        "message": {
            "id": str(e.message_id),
            "channel": e.channel,
            "delivery_status": e.delivery_status,
            "external_id": e.external_id,
            "error": e.error,
            "status_at": _iso(e.status_at),
            **e.extra,
        },
    }
    return [(topic, ev.MESSAGE_UPDATED, data) for topic in ev.conversation_topics(e.conversation_id)]


def user_mentioned(e: ev.UserMentioned) -> list[Frame]:
    data = {
        "conversation_id": str(e.conversation_id),
        "message_id": str(e.message_id),
        "by": {"id": str(e.by_id), "name": e.by_name},
        "excerpt": e.excerpt,
    }
    return [(ev.user_topic(e.user_id), ev.MENTIONED, data)]


def presence_changed(e: ev.PresenceChanged) -> list[Frame]:
    """``agent.presence`` to every desktop (the wallboard, supervisors) and the agent's own tabs."""
    data = {"user_id": str(e.user_id), "status": e.status, "since": e.since.isoformat(), **e.extra}
    return [(ev.DESK, ev.PRESENCE, data), (ev.user_topic(e.user_id), ev.PRESENCE, data)]


def _customer_frames(type_: str) -> Callable[[Any], list[Frame]]:
    def build(e: ev.CustomerMerged | ev.CustomerUnmerged) -> list[Frame]:
        data = {"merge_id": str(e.merge_id), "survivor_id": str(e.survivor_id), "merged_id": str(e.merged_id)}
        return [(ev.customer_topic(cid), type_, data) for cid in (e.survivor_id, e.merged_id)]

    return build


def event_ingested(e: ev.EventIngested) -> list[Frame]:
    return [(ev.customer_topic(e.customer_id), ev.CUSTOMER_EVENT_CREATED, e.event.model_dump(mode="json"))]


_BUILDERS: dict[type, Callable[[Any], list[Frame]]] = {
    ev.ConversationUpdated: conversation_updated,
    ev.ConversationCreated: conversation_updated,
    ev.MessageReceived: message_received,
    ev.MessageCreated: message_created,
    ev.MessageSent: message_created,
    ev.NoteAdded: message_created,
    ev.CustomerMessageCreated: message_created,
    ev.MessageStatusChanged: message_status_changed,
    ev.UserMentioned: user_mentioned,
    ev.PresenceChanged: presence_changed,
    ev.CustomerMerged: _customer_frames(ev.CUSTOMER_MERGED),
    ev.CustomerUnmerged: _customer_frames(ev.CUSTOMER_UNMERGED),
    ev.EventIngested: event_ingested,
}
PUSHED: tuple[type[ev.DomainEvent], ...] = tuple(_BUILDERS)


def frames(event: ev.DomainEvent) -> list[Frame]:
    """The browser pushes of ``event`` (none for events no page shows)."""
    build = _BUILDERS.get(type(event))
    return build(event) if build is not None else []


async def push(events: list[ev.DomainEvent], hub: Publisher | None) -> None:
    """After-commit subscriber: publish each event's frames on the hub, in emit order."""
    if hub is None:
        return
    for event in events:
        for topic, type_, data in frames(event):
            await hub.publish(topic, type_, data)
