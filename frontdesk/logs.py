"""Logging: structlog over the standard library, human-readable by default, JSON for shippers.

``configure(settings)`` is called once by the CLI before serving. Libraries that log through
``logging`` (uvicorn, SQLAlchemy, our modules) are rendered the same way.

Records are rendered and written by one background thread (a ``QueueListener``): the event loop
only puts them on a queue, so a burst of logging — or a long traceback — never stalls requests.
Tracebacks are plain text without local variables: locals hold customer data (message bodies,
identities, tokens) and rendering them can take seconds.
"""

from __future__ import annotations

import atexit
import copy
import logging
import queue
import re
import sys
from collections.abc import Mapping
from logging.handlers import QueueHandler, QueueListener
from typing import Any

import structlog

from frontdesk.settings import Settings

_listener: QueueListener | None = None


class _Handoff(QueueHandler):
    """Puts the record on the queue as it is: the listener's formatter renders it.

    (``QueueHandler.prepare`` would format it here, on the event loop, and drop the exception
    and structlog's event dict.) A plain message's arguments are merged now, as they may change.
    """

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        if record.args and isinstance(record.msg, str):
            record = copy.copy(record)
            record.msg, record.args = record.getMessage(), None
        return record


def stop() -> None:
    """Write out what is queued and stop the logging thread (at exit, or before reconfiguring)."""
    global _listener
    if _listener is not None:
        _listener.stop()
        _listener = None


# Credentials that may still arrive in a URL (old widgets: ?visitor_token=, old API clients:
# ?token=, signed attachment links: &sig=) and the shapes of our secrets wherever they appear.
_SECRET_PARAM = re.compile(r"(?i)([?&;](?:token|visitor_token|access_token|api_key|sig|signature)=)[^&\s\"'#]+")
_SECRET_VALUE = re.compile(r"\bfd_[A-Za-z0-9_-]{16,}|\bv1\.[0-9a-fA-F-]{36}\.[A-Za-z0-9_-]+")
REDACTED = "[redacted]"


def redact(text: str) -> str:
    if "=" not in text and "fd_" not in text and "v1." not in text:
        return text
    return _SECRET_VALUE.sub(REDACTED, _SECRET_PARAM.sub(r"\1" + REDACTED, text))


class RedactSecrets(logging.Filter):
    """Takes tokens out of log records (uvicorn's access log prints the query string)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        args: Any = record.args
        if isinstance(args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in args)
        elif isinstance(args, Mapping):
            record.args = {k: redact(v) if isinstance(v, str) else v for k, v in args.items()}
        return True


_FILTER = RedactSecrets()


def install_redaction() -> None:
    """Redact the loggers that print URLs, whoever configured their handlers (idempotent)."""
    for name in ("uvicorn.access", "uvicorn.error"):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


def configure(settings: Settings) -> None:
    level = getattr(logging, settings.log_level.upper(), logging.INFO)
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderers: list[structlog.types.Processor] = (
        [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
        if settings.log_json
        else [
            structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback)
        ]
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(level),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler()
    handler.addFilter(_FILTER)  # every record, ours included
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *renderers],
        )
    )
    global _listener
    previous = _listener
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    _listener = QueueListener(records, handler)
    _listener.start()
    root = logging.getLogger()
    root.handlers[:] = [_Handoff(records)]
    root.setLevel(level)
    if previous is not None:
        previous.stop()
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    install_redaction()


atexit.register(stop)
