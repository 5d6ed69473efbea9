"""``frontdesk worker``: the background loops of the scaled mode, without a web server.

It runs what ``frontdesk serve`` runs beside its routes — the timer loop, the outbox dispatcher,
the webhook deliveries (``wiring.start_loops``) — and competes for routing leadership like every
``serve``. Several of them (and several servers) can run at once: due work is claimed row by row.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from frontdesk.app import prepare_database
from frontdesk.db import Database
from frontdesk.realtime import make_hub
from frontdesk.routing.leader import standalone
from frontdesk.settings import Settings
from frontdesk.wiring import start_loops

log = logging.getLogger(__name__)


async def run_worker(settings: Settings) -> None:
    """Run the loops until SIGINT/SIGTERM."""
    await prepare_database(settings)
    db = Database(settings.effective_database_url)
    hub = make_hub(settings.redis_url, prefix=settings.redis_prefix)
    await hub.start()
    db.attach_hub(hub)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    loops = await start_loops(db, settings)
    try:
        await stop.wait()
        log.info("worker stopping")
    finally:
        await loops.stop()
        await hub.close()
        await db.dispose()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)


async def main(settings: Settings) -> None:
    """What ``frontdesk worker`` runs: the loops, and a routing leader of its own."""
    async with standalone(settings):  # competes for routing leadership like every `serve`
        await run_worker(settings)
