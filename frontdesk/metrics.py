"""Prometheus metrics: request counts and latency, plus domain counters other modules bump."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

REQUESTS = Counter("frontdesk_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "frontdesk_http_request_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
INBOUND_MESSAGES = Counter("frontdesk_inbound_messages_total", "Inbound messages stored", ["channel"])
OUTBOUND_DELIVERIES = Counter(
    "frontdesk_outbound_deliveries_total", "Outbound delivery attempts", ["channel", "result"]
)
INGEST_BATCH = Histogram(
    "frontdesk_ingest_batch_size",
    "Inbound messages written per group commit",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
EVENTS_BATCH = Histogram(
    "frontdesk_events_batch_size",
    "Customer events written per group commit",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
TIMERS_RUN = Counter("frontdesk_timers_run_total", "Timers run", ["kind", "result"])
REJECTED_DROPPED = Counter(
    "frontdesk_rejected_inputs_dropped_total", "Refused inputs not kept (or cut) by the limits", ["source", "why"]
)


class MetricsMiddleware:
    """Pure ASGI middleware (cheap on the hot path): counts and times every HTTP request."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 500}

        async def _send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, _send)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "GET")
            key = (method, path, status["code"])
            children = self._children.get(key)
            if children is None:  # label lookups take a lock; do them once per route and status
                children = (REQUESTS.labels(method, path, str(status["code"])), LATENCY.labels(method, path))
                self._children[key] = children
            children[0].inc()
            children[1].observe(time.perf_counter() - start)


def render() -> tuple[bytes, str]:
    return generate_latest(), CONTENT_TYPE_LATEST
