"""The HTTP protocol ``frontdesk serve`` gives uvicorn: httptools plus a deadline for request headers.

Uvicorn closes idle keep-alive connections, but a client that connects and sends nothing, or half
a request line, and then waits, holds its socket (and a slot of the process's file descriptors)
forever — the slow-loris pattern. :class:`HeaderTimeoutProtocol` gives every request
``settings.http_header_timeout_seconds`` from its first byte (the first request: from the
connection) until its last header line; then the connection is closed. Once the headers are in,
the deadline is off: slow uploads, long responses and WebSockets are not affected.

Used by name (``http="frontdesk.httpserver:HeaderTimeoutProtocol"``), so ``--workers`` processes
import it too. Servers started another way (``uvicorn frontdesk.app:create_app --factory``, the
benchmarks) keep uvicorn's own protocol.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

IMPORT_NAME = "frontdesk.httpserver:HeaderTimeoutProtocol"


def _configured_timeout() -> float:
    from frontdesk.settings import get_settings

    return float(get_settings().http_header_timeout_seconds)


class HeaderTimeoutProtocol(HttpToolsProtocol):
    header_timeout: float | None = None  # seconds; None: FRONTDESK_HTTP_HEADER_TIMEOUT_SECONDS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_deadline = self.header_timeout if self.header_timeout is not None else _configured_timeout()
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._header_timer is None:  # the next request on a kept-alive connection
            self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def _arm(self) -> None:
        self._header_timer = self.loop.call_later(self._header_deadline, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()
