"""Benchmark: many web-chat widget sockets on one server process.

For each level (1,000 and 5,000 connections; ``--quick``: 200 and 1,000) it creates the visitors
directly in the database, opens that many ``/widget/ws`` sockets with the ``websockets`` client,
then measures two things. Latency: ``--rate`` messages/s (default 200) for 10 s, each from the
next open socket in turn, timed from its scheduled send to the moment an agent socket
(``/ws``, following ``desk``) receives its ``conversation.message_created`` (p50/p99;
open loop). Throughput: every visitor sends ``--per-client`` messages at once, each waiting for
its ``ack`` before the next (messages/s over the sending window, and the saturated round trip as
``burst_rtt_*``). Also the server process's memory per connection (RSS delta with all sockets
open and idle, divided by N).

The load generator runs on the same 2-core machine as the server, so the figures are a floor.
Progress goes to stderr; ONE JSON line goes to stdout.

    .venv/bin/python bench/widget.py [--quick] [--backend sqlite|postgresql] [--per-client 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import time
import uuid
from pathlib import Path
from typing import Any

from _common import emit, fresh_database, log, make_token, percentile, postgres_reachable, server, workdir

SECRET = "bench-secret-key-0123456789abcdef"  # what _common.server gives the server


def raise_nofile(wanted: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(max(soft, wanted), hard) if hard != resource.RLIM_INFINITY else max(soft, wanted)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) process ``pid`` has used so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def make_visitors(database_url: str, n: int) -> tuple[str, list[str]]:
    """A web-chat inbox and ``n`` visitors (customer + identity + visitor row), bulk-inserted; their tokens."""
    import secrets as pysecrets

    from sqlalchemy import insert

    from frontdesk import clock
    from frontdesk.channels.webchat.visitor import sign_token, token_key
    from frontdesk.db import Database
    from frontdesk.ids import new_id
    from frontdesk.models import Customer, Identity, Inbox, WebchatVisitor

    db = Database(database_url)
    key = token_key(SECRET)
    now = clock.now()
    try:
        async with db.transaction() as s:
            inbox = Inbox(
                name=f"bench-{uuid.uuid4().hex[:6]}",
                channel="webchat",
                public_token=pysecrets.token_urlsafe(18),
                config={},
            )
            s.add(inbox)
            await s.flush()
            tokens = []
            for start in range(0, n, 1000):
                customers, identities, visitors = [], [], []
                for _ in range(min(1000, n - start)):
                    cid, vid = new_id(), uuid.uuid4()
                    customers.append({"id": cid, "attributes": {}, "created_at": now, "updated_at": now})
                    identities.append(
                        {
                            "id": new_id(),
                            "customer_id": cid,
                            "kind": "webchat_visitor",
                            "value": str(vid),
                            "created_at": now,
                        }
                    )
                    visitors.append(
                        {"id": vid, "inbox_id": inbox.id, "customer_id": cid, "created_at": now, "last_seen_at": now}
                    )
                    tokens.append(sign_token(key, vid))
                await s.execute(insert(Customer), customers)
                await s.execute(insert(Identity), identities)
                await s.execute(insert(WebchatVisitor), visitors)
            return inbox.public_token, tokens
    finally:
        await db.dispose()


async def run_level(
    base: str, pid: int, agent_token: str, tokens: list[str], per_client: int, rate: float, seconds: float
) -> dict[str, Any]:
    from websockets.asyncio.client import ClientConnection, connect

    n = len(tokens)
    host = base.replace("http://", "ws://")
    sent_at: dict[str, float] = {}
    latencies: list[float] = []  # the burst: every visitor sends at once
    paced_latencies: list[float] = []  # a steady rate spread over all open sockets
    done = asyncio.Event()
    expected = n * per_client

    rss_before = rss_kb(pid)
    agent = await connect(f"{host}/ws", max_size=None)
    await agent.send(json.dumps({"type": "auth", "token": agent_token}))  # credentials never in the URL

    async def agent_reader() -> None:
        async for raw in agent:
            msg = json.loads(raw)
            if msg.get("type") != "conversation.message_created":
                continue
            preview = (msg.get("data") or {}).get("preview") or ""
            started = sent_at.pop(preview, None)
            if started is None:
                continue
            if preview.startswith("paced "):
                paced_latencies.append(time.perf_counter() - started)
                continue
            latencies.append(time.perf_counter() - started)
            if len(latencies) >= expected:
                done.set()

    reader = asyncio.create_task(agent_reader())
    sockets: list[ClientConnection] = []
    gate = asyncio.Semaphore(100)
    failures = 0

    async def open_one(token: str) -> None:
        nonlocal failures
        async with gate:
            try:
                ws = await connect(f"{host}/widget/ws", open_timeout=60, ping_interval=None)
                await ws.send(json.dumps({"type": "auth", "visitor_token": token}))
                await asyncio.wait_for(ws.recv(), 60)  # welcome
                sockets.append(ws)
            except Exception as exc:
                failures += 1
                if failures <= 3:
                    log(f"connect failed: {exc!r}")

    t0 = time.perf_counter()
    await asyncio.gather(*(open_one(t) for t in tokens))
    log(f"{len(sockets)}/{n} widget sockets open in {time.perf_counter() - t0:.1f}s")
    await asyncio.sleep(1.0)
    rss_open = rss_kb(pid)

    # 1. Latency under a steady load: ``rate`` messages/s, each from the next socket in turn, timed
    #    from its scheduled send (open loop: a stalled server is charged for what queued behind it).
    locks = {id(ws): asyncio.Lock() for ws in sockets}

    async def send_paced(ws: ClientConnection, scheduled: float) -> None:
        async with locks[id(ws)]:
            marker = f"paced {uuid.uuid4().hex}"
            sent_at[marker] = scheduled
            await ws.send(json.dumps({"type": "message", "client_id": str(uuid.uuid4()), "text": marker}))
            while json.loads(await asyncio.wait_for(ws.recv(), 120)).get("type") not in ("ack", "error"):
                pass

    total = int(rate * seconds)
    paced_cpu = cpu_seconds(pid)
    log(f"level {n}: {rate:.0f} messages/s for {seconds:.0f}s over {len(sockets)} sockets")
    paced_tasks = []
    start = time.perf_counter() + 0.1
    for i in range(total):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        paced_tasks.append(asyncio.create_task(send_paced(sockets[i % len(sockets)], scheduled)))
    await asyncio.gather(*paced_tasks, return_exceptions=True)
    deadline = time.perf_counter() + 30
    while len(paced_latencies) < total and time.perf_counter() < deadline:
        await asyncio.sleep(0.05)
    paced_ms = sorted(v * 1000 for v in paced_latencies)
    paced_cpu = cpu_seconds(pid) - paced_cpu

    # 2. Throughput: every visitor sends ``per_client`` messages as fast as acks come back.
    acks = 0
    errors = 0
    first_send = time.perf_counter()
    last_ack = first_send
    burst_cpu = cpu_seconds(pid)

    async def client(ws: ClientConnection) -> None:
        nonlocal acks, errors, last_ack
        await asyncio.sleep(random.random())
        for _ in range(per_client):
            marker = f"bench {uuid.uuid4().hex}"
            sent_at[marker] = time.perf_counter()
            await ws.send(json.dumps({"type": "message", "client_id": str(uuid.uuid4()), "text": marker}))
            while True:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 120))
                if frame.get("type") == "ack":
                    acks += 1
                    last_ack = time.perf_counter()
                    break
                if frame.get("type") == "error":
                    errors += 1
                    sent_at.pop(marker, None)
                    break

    results = await asyncio.gather(*(client(ws) for ws in sockets), return_exceptions=True)
    errors += sum(1 for r in results if isinstance(r, BaseException))
    burst_cpu = cpu_seconds(pid) - burst_cpu
    expected = acks
    if len(latencies) < expected:
        try:
            await asyncio.wait_for(done.wait(), 30)
        except TimeoutError:
            log(f"agent saw {len(latencies)} of {expected} messages")
    window = max(1e-6, last_ack - first_send)
    reader.cancel()
    await agent.close()
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    ms = sorted(v * 1000 for v in latencies)
    return {
        "connections": len(sockets),
        "connect_failures": failures,
        "messages": acks,
        "errors": errors,
        "paced_messages_per_s": rate,
        "rtt_p50_ms": round(percentile(paced_ms, 50), 2),
        "rtt_p99_ms": round(percentile(paced_ms, 99), 2),
        "paced_received": len(paced_latencies),
        "messages_per_s": round(acks / window, 1),
        # CPU the server spent per message: steadier than the rates on a shared 2-core machine.
        "server_cpu_ms_per_message": round(1000 * burst_cpu / max(1, acks), 3),
        "paced_server_cpu_ms_per_message": round(1000 * paced_cpu / max(1, total), 3),
        "burst_rtt_p50_ms": round(percentile(ms, 50), 2),
        "burst_rtt_p99_ms": round(percentile(ms, 99), 2),
        "agent_received": len(latencies),
        "rss_kb_per_connection": round((rss_open - rss_before) / max(1, len(sockets)), 1),
        "server_rss_mb": round(rss_open / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--per-client", type=int, default=None)
    parser.add_argument("--levels", type=str, default=None, help="comma-separated connection counts")
    parser.add_argument("--rate", type=float, default=200.0, help="messages/s for the latency phase")
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")] if args.levels else ([200, 1000] if args.quick else [1000, 5000])
    per_client = args.per_client or (2 if args.quick else 3)
    nofile = raise_nofile(max(levels) * 2 + 1024)  # inherited by the server process too
    if nofile < max(levels) * 2 + 100:
        log(f"RLIMIT_NOFILE is {nofile}; levels are capped to fit")
        levels = [min(n, (nofile - 100) // 2) for n in levels]
    if args.backend == "postgresql" and not postgres_reachable():
        raise SystemExit("PostgreSQL is not reachable")
    out: dict[str, Any] = {"benchmark": "widget", "backend": args.backend, "per_client": per_client, "levels": []}
    with workdir() as wd, fresh_database(args.backend, wd) as url:
        _public, tokens = asyncio.run(make_visitors(url, max(levels)))
        agent_token = make_token(url)
        env = {"FRONTDESK_WIDGET_MESSAGES_PER_MINUTE": "10000000", "FRONTDESK_RUN_LOOPS": "true"}
        with server(url, wd, env=env) as srv:
            for n in levels:
                log(f"level {n}: opening sockets")
                result = asyncio.run(
                    run_level(
                        srv.base_url,
                        srv.process.pid,
                        agent_token,
                        tokens[:n],
                        per_client,
                        rate=args.rate,
                        seconds=3.0 if args.quick else 10.0,
                    )
                )
                log(f"level {n}: {result}")
                out["levels"].append(result)
    emit(out)


if __name__ == "__main__":
    main()
