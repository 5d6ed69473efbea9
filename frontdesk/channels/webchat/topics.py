"""Where web-chat pushes go: the hub topics an open widget listens on, and the event names on them."""

from __future__ import annotations

import uuid

from frontdesk.realtime import Hub

WIDGET_TOPIC = "widget:{conversation_id}"
MESSAGE_CREATED = "conversation.message_created"
WIDGET_READ = "widget.read"  # an agent read the visitor's message (replayable frame)
TYPING = "conversation.typing"


CONVERSATION_OPENED = "widget.conversation_opened"


def widget_topic(conversation_id: uuid.UUID | str) -> str:
    return WIDGET_TOPIC.format(conversation_id=conversation_id)


def customer_topic(customer_id: uuid.UUID | str) -> str:
    """Where a customer's open widgets learn that Frontdesk opened a conversation with them."""
    return f"widget-customer:{customer_id}"


async def topic_head(hub: Hub, topic: str) -> int:
    """The id of the last event published on ``topic`` (0 if none)."""
    return await hub.head(topic)
