"""Routing's public face for other packages: the few entry points they call, re-exported.

Routing lives in rooms of its own (see docs/architecture/routing.md for the table):
``config.py`` (skills, queues, rules), ``profiles.py`` (agents' routing profiles), ``presence.py``,
``offers.py`` (list, accept, decline), ``inbox.py`` (forwarding changes to the leader),
``decisions.py`` (the decision log), ``state.py`` (capacity shifts and the state view), and the
leader (``leader.py`` and the modules it names). Code inside ``frontdesk/routing/`` imports those
modules directly; this module keeps ``from frontdesk.routing import service`` working for the
packages that call routing (the desk socket, web chat, the demo). Routing hears about conversation,
user and team changes as a subscriber of the bus (``inbox.forward_conversation_events``,
``subscribers.forward_user_events``, registered in ``frontdesk.wiring``).
"""

from __future__ import annotations

from frontdesk.routing.config import list_queues, queue_channels, queue_requirements
from frontdesk.routing.inbox import (
    NOTIFY_CHANNEL,
    desk_connected,
    desk_disconnected,
    forward,
    forward_conversation_events,
    register_wakeup,
    unregister_wakeup,
    wake_local_leaders,
)
from frontdesk.routing.names import DESK_TOPIC, EVENT_PRESENCE, LIVE_STATES
from frontdesk.routing.presence import publish_presence
from frontdesk.routing.profiles import DEFAULT_PROFILE, AgentConfig, agent_configs
from frontdesk.routing.state import able_for

__all__ = [
    "DEFAULT_PROFILE",
    "DESK_TOPIC",
    "EVENT_PRESENCE",
    "LIVE_STATES",
    "NOTIFY_CHANNEL",
    "AgentConfig",
    "able_for",
    "agent_configs",
    "desk_connected",
    "desk_disconnected",
    "forward",
    "forward_conversation_events",
    "list_queues",
    "publish_presence",
    "queue_channels",
    "queue_requirements",
    "register_wakeup",
    "unregister_wakeup",
    "wake_local_leaders",
]
