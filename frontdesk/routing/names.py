"""Names routing shares between its rooms: the push topics and event types, the live item states.

Kept apart so the configuration, presence, offers and the leader name them the same way.
"""

from __future__ import annotations

from typing import Any

DESK_TOPIC = "desk"
EVENT_PRESENCE = "agent.presence"
EVENT_OFFER = "routing.offer"
EVENT_OFFER_WITHDRAWN = "routing.offer_withdrawn"
EVENT_CAPACITY_SHIFT = "routing.capacity_shift"

LIVE_STATES = ("waiting", "offered")


Actor = Any  # a Principal (user_id, actor_kind) or None for the system
