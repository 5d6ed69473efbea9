"""What a channel listener (and a replay of rejected input) works with, typed: the process's
database, realtime hub, settings, inbound ingest writer and attachment store.

The app's lifespan makes one :class:`ListenerContext` when the database and hub are up and keeps it
as ``app.state.context``; :func:`context_of` finds it from a request's app. ``state`` is where a
listener leaves what its routes use (the web-chat runtime, the SMTP receiver, the IMAP poller).
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.datastructures import State

from frontdesk.conversations.ingest import IngestWriter
from frontdesk.db import Database
from frontdesk.realtime import Hub
from frontdesk.settings import Settings
from frontdesk.storage import AttachmentStore, app_store


@dataclass
class ListenerContext:
    db: Database
    hub: Hub
    settings: Settings
    ingest: IngestWriter
    state: State

    @property
    def store(self) -> AttachmentStore:
        """The attachment store: made from the settings on first use, then kept (closed by the app)."""
        return app_store(self.state)


def context_of(app: Starlette) -> ListenerContext:
    """The context of a running app (``request.app``), made by its lifespan."""
    ctx: ListenerContext = app.state.context
    return ctx
