"""The domain-event bus: services emit typed events; subscribers run in the transaction or after it.

A foundation module: it imports no domain module. Subscribers are registered explicitly at
wiring time (``frontdesk.wiring.register_subscribers``), never found by module name.

- ``emit(session, event)`` records the event in the unit of work. Just before the boundary
  commits (``db.run_before_commit``) every **in-transaction** subscriber gets the connection and
  the list of its events and may write rows there (routing's inbox, webhook deliveries); it
  returns plain callables to run once the commit succeeded (wake-ups). After the commit, every
  **after-commit** subscriber gets the events and the hub (pushes to browsers). A rolled-back unit
  of work runs neither the after-commit subscribers nor anything the in-transaction ones queued.
- The ingest writer (Core, group commit) calls :meth:`Bus.run_in_transaction` on its connection
  and :meth:`Bus.run_after_commit` once the batch committed: the same subscribers.

Dispatch is a dict lookup by the event's class (resolved along its bases once per class and
cached), so the hot path pays no reflection per event.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from frontdesk.events import DomainEvent

log = logging.getLogger(__name__)

Phase = Literal["in_transaction", "after_commit"]
Wakeup = Callable[[], None]
# (connection of the transaction, this subscriber's events in emit order) -> wake-ups after commit
InTransaction = Callable[[AsyncConnection, list[Any]], Awaitable[list[Wakeup]]]


class Publisher(Protocol):
    """What after-commit subscribers push through (``realtime.Hub``)."""

    async def publish(self, topic: str, type: str, data: dict[str, Any]) -> Any: ...


# (this subscriber's events, the hub or None) -> None
AfterCommit = Callable[[list[Any], Publisher | None], Awaitable[None]]

EVENTS_KEY = "domain_events"  # session.info: the unit of work's events, for in-transaction subscribers


class Bus:
    def __init__(self) -> None:
        self._subs: dict[Phase, list[tuple[type[DomainEvent], Callable[..., Any]]]] = {
            "in_transaction": [],
            "after_commit": [],
        }
        self._resolved: dict[Phase, dict[type, tuple[Callable[..., Any], ...]]] = {
            "in_transaction": {},
            "after_commit": {},
        }

    def subscribe(
        self, event_type: type[DomainEvent], fn: InTransaction | AfterCommit, *, phase: Phase = "in_transaction"
    ) -> None:
        """``fn`` receives every event of ``event_type`` (and its subclasses). Idempotent."""
        entry = (event_type, fn)
        if entry not in self._subs[phase]:
            self._subs[phase].append(entry)
            self._resolved[phase].clear()

    def clear(self) -> None:
        for phase in self._subs:
            self._subs[phase].clear()
            self._resolved[phase].clear()

    def subscribers(self, phase: Phase, event_type: type) -> tuple[Callable[..., Any], ...]:
        """The subscribers of ``event_type`` in registration order (cached per class)."""
        found = self._resolved[phase].get(event_type)
        if found is None:
            found = tuple(dict.fromkeys(fn for t, fn in self._subs[phase] if issubclass(event_type, t)))
            self._resolved[phase][event_type] = found
        return found

    def _group(self, phase: Phase, events: Sequence[DomainEvent]) -> dict[Callable[..., Any], list[Any]]:
        groups: dict[Callable[..., Any], list[Any]] = {}
        resolved = self._resolved[phase]
        for event in events:
            fns = resolved.get(type(event))
            if fns is None:
                fns = self.subscribers(phase, type(event))
            for fn in fns:
                group = groups.get(fn)
                if group is None:
                    groups[fn] = [event]
                else:
                    group.append(event)
        return groups

    def emit(self, session: AsyncSession, event: DomainEvent) -> None:
        """Record ``event`` in ``session``'s unit of work (dropped if it rolls back).

        The first event of a unit of work also queues the after-commit dispatch of all of them,
        at that place among the session's other after-commit effects (pushes keep their order).
        """
        events: list[DomainEvent] | None = session.info.get(EVENTS_KEY)
        if events is None:
            events = session.info[EVENTS_KEY] = []
            hub = session.info.get("hub")

            async def _after() -> None:
                await self.run_after_commit(events, hub)

            session.info.setdefault("after_commit", []).append(_after)
        events.append(event)

    async def run_in_transaction(self, conn: AsyncConnection, events: Sequence[DomainEvent]) -> list[Wakeup]:
        """Call the in-transaction subscribers on ``conn``; the wake-ups to run after the commit."""
        if not events:
            return []
        wakeups: list[Wakeup] = []
        for fn, mine in self._group("in_transaction", events).items():
            wakeups.extend(await fn(conn, mine))
        return wakeups

    async def run_after_commit(self, events: Sequence[DomainEvent], hub: Publisher | None) -> None:
        """Call the after-commit subscribers; a failing one is logged (the commit stands)."""
        if not events:
            return
        for fn, mine in self._group("after_commit", events).items():
            try:
                await fn(mine, hub)
            except Exception:
                log.exception("after-commit subscriber %s failed", getattr(fn, "__qualname__", fn))


bus = Bus()  # the process's bus; subscribers are registered at wiring time


def emit(session: AsyncSession, event: DomainEvent) -> None:
    """Record ``event`` in the unit of work for the subscribers of the process's bus."""
    bus.emit(session, event)
