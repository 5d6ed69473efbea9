"""Where web-chat pushes go: the hub topics an open widget listens on, and the event names on them."""

from __future__ import annotations

from frontdesk.events import MESSAGE_CREATED as MESSAGE_CREATED
from frontdesk.events import TYPING as TYPING
from frontdesk.events import customer_topic as customer_topic
from frontdesk.events import widget_topic as widget_topic
from frontdesk.realtime import Hub

WIDGET_READ = "widget.read"  # an agent read the visitor's message (replayable frame)
CONVERSATION_OPENED = "widget.conversation_opened"


async def topic_head(hub: Hub, topic: str) -> int:
    """The id of the last event published on ``topic`` (0 if none)."""
    return await hub.head(topic)
