"""Where the app is wired: the one place that names the channel adapters, the channel listeners,
the due-work (timer) handlers and the background loops of a process.

``frontdesk/app.py`` (``frontdesk serve``) and ``frontdesk/worker.py`` (``frontdesk worker``) call
these functions; nothing else registers anything, and the foundation modules (``timers``,
``channels.base``, ``channels.listeners``, ``db``…) import no domain module. A new channel adds
its adapter to :func:`adapter_registry` and, if it listens for inbound traffic, its starter to
:func:`listeners`; a new kind of due work adds its handler to :func:`timer_handlers`; a new
reaction to a domain event subscribes in :func:`register_subscribers`.
"""

from __future__ import annotations

import logging
from typing import Any

from frontdesk import events as ev
from frontdesk import realtime_payloads, timers
from frontdesk.bus import Bus
from frontdesk.bus import bus as process_bus
from frontdesk.channels.apichannel.channel import CHANNEL as API_CHANNEL
from frontdesk.channels.base import AdapterRegistry, ChannelAdapter, ChannelContext, ChannelSpec
from frontdesk.channels.context import ListenerContext
from frontdesk.channels.email.channel import CHANNEL as EMAIL_CHANNEL
from frontdesk.channels.listeners import Starter
from frontdesk.channels.webchat import confirm as webchat_confirm
from frontdesk.channels.webchat.channel import CHANNEL as WEBCHAT_CHANNEL
from frontdesk.conversations import service as conversations
from frontdesk.conversations.dispatcher import Dispatcher
from frontdesk.db import Database
from frontdesk.routing import inbox as routing_inbox
from frontdesk.routing import subscribers as routing_subscribers
from frontdesk.webhooks import service as webhooks
from frontdesk.webhooks.service import WebhookLoop

log = logging.getLogger(__name__)


# -- channels: each folder's ChannelSpec (adapter, routes, listeners) --------------------------

# A new channel is a folder that implements frontdesk.channels.base and one line here.
CHANNELS: tuple[ChannelSpec, ...] = (API_CHANNEL, EMAIL_CHANNEL, WEBCHAT_CHANNEL)


def adapter_registry() -> AdapterRegistry:
    """Outbound: what the outbox dispatcher sends through, one adapter per channel."""
    registry = AdapterRegistry()
    for spec in CHANNELS:
        registry.add_adapter(spec.name, spec.adapter)
    return registry


def channel_adapters(ctx: ChannelContext) -> dict[str, ChannelAdapter]:
    """One instance of every channel adapter, for one dispatcher."""
    return adapter_registry().build(ctx)


# -- due work (timers) -------------------------------------------------------------------------


def timer_handlers() -> timers.Registry:
    registry = timers.Registry()
    registry.add(timers.DELETE_OBJECTS, timers.delete_objects)
    registry.add(conversations.SNOOZE_TIMER, conversations.reopen_snoozed)
    registry.add(webchat_confirm.SEND_TIMER, webchat_confirm.send_confirmation)
    return registry


# -- channel listeners (inbound: started and stopped with the server) --------------------------


def listeners() -> list[Starter[ListenerContext]]:
    """Inbound receivers that live as long as the server, in start order (stopped in reverse)."""
    return [start for spec in CHANNELS for start in spec.listeners]


# -- domain-event subscribers ------------------------------------------------------------------


def register_subscribers(bus: Bus = process_bus) -> Bus:
    """Who hears which domain event (docs/architecture/realtime.md, "Domain events and the bus").

    In the transaction, in this order, writing rows of the change's own commit: webhook deliveries,
    routing's inbox. After the commit: the browser push of every event a page shows. Called by
    ``create_app``, the CLI (worker, demo, import) and the tests; registering twice is harmless.
    """
    delivered: tuple[type[ev.DomainEvent], ...] = (
        ev.ConversationUpdated,
        ev.MessageReceived,
        ev.MessageCreated,
        ev.MessageStatusChanged,
    )
    for event_type in delivered:
        bus.subscribe(event_type, webhooks.enqueue_deliveries)
    bus.subscribe(ev.ConversationUpdated, routing_inbox.forward_conversation_events)
    bus.subscribe(ev.MessageReceived, routing_inbox.forward_conversation_events)
    bus.subscribe(ev.UserChanged, routing_subscribers.forward_user_events)
    bus.subscribe(ev.TeamChanged, routing_subscribers.forward_user_events)
    for pushed in realtime_payloads.PUSHED:
        bus.subscribe(pushed, realtime_payloads.push, phase="after_commit")
    return bus


# -- the background loops of a process ---------------------------------------------------------


async def start_loops(db: Database, settings: Any) -> timers.Loops:
    """Start the timer loop, the outbox dispatcher and the webhook deliveries (``serve`` and ``worker``)."""
    worker = timers.worker_name()
    adapters = channel_adapters(ChannelContext(hub=db.hub, settings=settings, db=db))
    dispatcher = Dispatcher(db, settings, adapters=adapters, worker=worker)
    loop = timers.TimerLoop(db, settings, handlers=timer_handlers(), worker=worker)
    webhooks = WebhookLoop(db, settings, worker=worker)
    db.attach_hub(db.hub, outbox_wakeup=dispatcher.wake)
    loop.start()
    dispatcher.start()
    webhooks.start()
    log.info("loops started as %s", worker)
    return timers.Loops(loop, dispatcher, webhooks)
