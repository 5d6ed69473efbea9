"""Builders of test data, one definition each. Those that write rows take a :class:`Database`
(``make_*``); those that go through the HTTP API take a client and the headers of who acts
(``create_*_via_api``). The modules beside this one hold the helpers of one area each (routing,
web chat, ``/ws`` sockets, e-mail); the builders most tests need are importable from here."""

from tests.builders.conversations import make_conversation, make_inbox
from tests.builders.customers import create_customer_via_api, make_customer
from tests.builders.routing import create_queue_via_api, make_queue
from tests.builders.users import (
    DEFAULT_PASSWORD,
    agent,
    auth_headers,
    bearer,
    make_team,
    make_token,
    make_user,
    token_headers,
)

__all__ = [
    "DEFAULT_PASSWORD",
    "agent",
    "auth_headers",
    "bearer",
    "create_customer_via_api",
    "create_queue_via_api",
    "make_conversation",
    "make_customer",
    "make_inbox",
    "make_queue",
    "make_team",
    "make_token",
    "make_user",
    "token_headers",
]
