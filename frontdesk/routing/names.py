"""Names routing shares between its rooms: the push topics and event types, the live item states.

Kept apart so the configuration, presence, offers and the leader name them the same way.
"""

from __future__ import annotations

from frontdesk.events import DESK, PRESENCE
from frontdesk.events import Actor as Actor

DESK_TOPIC = DESK
EVENT_PRESENCE = PRESENCE
EVENT_OFFER = "routing.offer"
EVENT_OFFER_WITHDRAWN = "routing.offer_withdrawn"
EVENT_CAPACITY_SHIFT = "routing.capacity_shift"

LIVE_STATES = ("waiting", "offered")
