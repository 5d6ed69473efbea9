"""The wiring names every adapter, listener and timer handler the app runs, once."""

from __future__ import annotations

import pytest

from frontdesk import timers, wiring
from frontdesk.channels.base import AdapterRegistry, ChannelContext
from frontdesk.settings import Settings


def test_every_channel_adapter_is_built_under_its_own_name():
    adapters = wiring.channel_adapters(ChannelContext(settings=Settings()))
    assert sorted(adapters) == ["api", "email", "webchat"]
    assert all(adapter.name == name for name, adapter in adapters.items())


def test_the_timer_kinds_the_app_schedules_have_handlers():
    kinds = wiring.timer_handlers().kinds()
    assert {timers.DELETE_OBJECTS, "conversation.snooze_ended", "webchat.send_email_confirmation"} <= set(kinds)


def test_listeners_are_named_in_start_order():
    names = [fn.__module__ for fn in wiring.listeners()]
    assert names == [
        "frontdesk.channels.email.imap",
        "frontdesk.channels.email.smtp_server",
        "frontdesk.channels.webchat.runtime",
    ]


def test_a_kind_or_channel_registered_twice_is_refused():
    handlers = timers.Registry()

    async def one(session, timer): ...

    async def other(session, timer): ...

    handlers.add("test.once", one)
    handlers.add("test.once", one)  # the same function again is harmless
    with pytest.raises(ValueError, match="already has a handler"):
        handlers.add("test.once", other)
    with pytest.raises(ValueError, match=r"domain\.verb"):
        handlers.add("nodot", one)
    adapters = AdapterRegistry()
    adapters.add_adapter("sms", lambda ctx: object())
    with pytest.raises(ValueError, match="already has an adapter"):
        adapters.add_adapter("sms", lambda ctx: object())
