"""Who hears which domain event: the one place the bus's subscribers are registered.

Called by ``create_app`` (the server), by the worker and by tests that build a ``Database``
without the app. Registering twice is harmless (``Bus.subscribe`` is idempotent).
See docs/architecture/realtime.md ("Domain events and the bus").
"""

from __future__ import annotations

from frontdesk import events as ev
from frontdesk import realtime_payloads
from frontdesk.bus import Bus
from frontdesk.bus import bus as process_bus


def register_subscribers(bus: Bus = process_bus) -> Bus:
    """Routing's inbox and webhook deliveries in the transaction; the browser push after the commit."""
    from frontdesk.routing import service as routing
    from frontdesk.routing import subscribers as routing_subscribers
    from frontdesk.webhooks import service as webhooks

    # In the transaction, in this order (both write rows of the change's own commit).
    bus.subscribe(ev.ConversationUpdated, webhooks.enqueue_deliveries)
    bus.subscribe(ev.MessageReceived, webhooks.enqueue_deliveries)
    bus.subscribe(ev.MessageCreated, webhooks.enqueue_deliveries)
    bus.subscribe(ev.MessageStatusChanged, webhooks.enqueue_deliveries)
    bus.subscribe(ev.ConversationUpdated, routing.forward_conversation_events)
    bus.subscribe(ev.MessageReceived, routing.forward_conversation_events)
    bus.subscribe(ev.UserChanged, routing_subscribers.forward_user_events)
    bus.subscribe(ev.TeamChanged, routing_subscribers.forward_user_events)
    # After the commit: every event a page shows.
    for event_type in realtime_payloads.PUSHED:
        bus.subscribe(event_type, realtime_payloads.push, phase="after_commit")
    return bus
