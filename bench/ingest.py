"""Benchmark: the ways a message comes in, each against the bare ceiling of the same server.

For each backend (SQLite, PostgreSQL) it builds a fresh, migrated database, starts the real
server (one uvicorn process, routing on), creates an agent and an API token in the database, then
for each way in (``--ways``, default all):

* ``ingest``: ``POST /api/v1/messages/inbound`` with a Bearer token (the original way; its figures
  keep their old, unprefixed keys too);
* ``apichannel``: ``POST /api/v1/inboxes/{id}/messages``, HMAC-signed with the API inbox's
  ``inbound_secret`` (``X-Frontdesk-Signature``/``-Timestamp``, a unique ``Idempotency-Key``);
* ``events``: ``POST /api/v1/events`` (a customer event, the customer found or made by identity);
* ``widget``: ``message`` frames on ``--sockets`` open ``/widget/ws`` sockets, each sending the
  next as soon as the last is acknowledged (the rate is acks/s).

Every HTTP way: 30% of the senders are new customers, 70% come from a pool of returning ones;
loaded with concurrent clients (``wrk`` when installed, else an asyncio load generator) →
per second, p50/p99, the server's CPU per item; then paced at half that rate (open loop, latency
from the scheduled time, like wrk2) → p99 at half load; then paced at ``--fixed-rate`` (100/s),
the same for every version → p99 and the server's CPU per item there, the figures to compare two
versions by (half load follows each version's own throughput). ``POST /api/v1/echo`` (a bare endpoint
parsing a small JSON body) loaded the same way is the ceiling; each way's ratio is to it.

After the warm-up the database is analysed (``ANALYZE``), as PostgreSQL's autovacuum does within a
minute for a table that grows: without statistics the planner plans for empty tables. On PostgreSQL
the CPU its own processes spent per item is reported too (``*_postgres_cpu_ms_per_*``).

Progress goes to stderr; ONE JSON line goes to stdout, per backend, keys naming the way and the
unit (``apichannel_messages_per_s``, ``events_p99_half_load_ms``, ``widget_ratio_to_ceiling`` …).
Goals for one process on PostgreSQL: ≥ 1,000 messages/s, ≥ 0.35 of the ceiling, p99 < 50 ms at
half load.

    .venv/bin/python bench/ingest.py [--quick] [--backend sqlite|postgresql|both]
                                     [--ways ingest,apichannel,events,widget] [--fixed-rate 100]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    WRK_DONE_LUA,
    LoadResult,
    ProcessesCpu,
    Request,
    analyse,
    closed_loop,
    emit,
    fresh_database,
    have_wrk,
    log,
    make_token,
    paced,
    postgres_reachable,
    run_wrk,
    server,
    summarise,
    workdir,
)

INBOUND = "/api/v1/messages/inbound"
ECHO = "/api/v1/echo"
NEW_CUSTOMER_FRACTION = 0.3
RETURNING_POOL = 2000
TEXT = "Hello, my order has not arrived yet. Could you check where it is? Thanks!"

# One wrk script for the token-authenticated ways (ingest, events): 30% new senders, the rest from
# a pool of returning ones; %(body)s is the Lua format of the JSON body (sender, run, thread, n).
SENDER_LUA = """
local counter = 0
local run = "run"
local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  run = args[1] or "run"
  math.randomseed(os.time() * 1000 + (tid or 0))
  wrk.headers["Authorization"] = "Bearer %(token)s"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  counter = counter + 1
  local who
  if math.random() < %(new_fraction)s then
    who = string.format("new-%%s-%%d-%%d@example.com", run, tid or 0, counter)
  else
    who = string.format("returning-%%d@example.com", math.random(%(pool)d))
  end
  local body = string.format(%(body)s, who, run, tid or 0, counter)
  return wrk.format("POST", "%(path)s", nil, body)
end
"""
INGEST_BODY_LUA = (  # the Lua format string of one inbound message
    '\'{"identity":{"kind":"email","value":"%s"},"channel":"api","external_id":"%s-%d-%d","text":"' + TEXT + "\"}'"
)

ECHO_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"identity":{"kind":"email","value":"returning-1@example.com"},"channel":"api",' ..
  '"external_id":"echo-1","text":"%(text)s"}'
"""


def _ingest_body(run: str, n: int) -> bytes:
    if random.random() < NEW_CUSTOMER_FRACTION:
        who = f"new-{run}-{n}@example.com"
    else:
        who = f"returning-{random.randint(1, RETURNING_POOL)}@example.com"
    return json.dumps(
        {"identity": {"kind": "email", "value": who}, "channel": "api", "external_id": f"{run}-{n}", "text": TEXT}
    ).encode()


def ingest_requests(token: str, run: str) -> Any:
    counter = itertools.count(1)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def make() -> Request:
        return ("POST", INBOUND, _ingest_body(run, next(counter)), headers)

    return make


def echo_requests() -> Any:
    body = json.dumps(
        {
            "identity": {"kind": "email", "value": "returning-1@example.com"},
            "channel": "api",
            "external_id": "echo-1",
            "text": TEXT,
        }
    ).encode()
    headers = {"Content-Type": "application/json"}

    def make() -> Request:
        return ("POST", ECHO, body, headers)

    return make


EVENTS = "/api/v1/events"
EVENTS_BODY_LUA = (
    '\'{"type":"order.shipped","identity":{"kind":"email","value":"%s"},"properties":{"order":"%s-%d-%d"}}\''
)

# The API channel's bodies are signed (HMAC-SHA256 of "<timestamp>.<body>"), which Lua cannot do
# cheaply: the bodies and their signatures are made beforehand, one "signature<TAB>body" a line.
APICHANNEL_LUA = """
local counter = 0
local run = "run"
local threads = {}
local fresh, returning = {}, {}
local next_fresh = 0

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

local function read(path, into)
  for line in io.lines(path) do
    local tab = line:find("\\t", 1, true)
    table.insert(into, {line:sub(1, tab - 1), line:sub(tab + 1)})
  end
end

function init(args)
  run = args[1] or "run"
  math.randomseed(os.time() * 1000 + (tid or 0))
  read("%(fresh)s", fresh)
  read("%(returning)s", returning)
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["X-Frontdesk-Timestamp"] = "%(stamp)s"
end

function request()
  counter = counter + 1
  local item
  if math.random() < %(new_fraction)s and next_fresh < #fresh then
    next_fresh = next_fresh + 1
    item = fresh[next_fresh]
  else
    item = returning[math.random(#returning)]
  end
  wrk.headers["X-Frontdesk-Signature"] = item[1]
  wrk.headers["Idempotency-Key"] = string.format("%%s-%%d-%%d", run, tid or 0, counter)
  return wrk.format("POST", "%(path)s", nil, item[2])
end
"""

WAYS = ("ingest", "apichannel", "events", "widget")
# What one item of each way is called in the figures' keys.
UNIT = {"ingest": "messages", "apichannel": "messages", "events": "events", "widget": "messages"}


def _who(run: str, n: int) -> str:
    if random.random() < NEW_CUSTOMER_FRACTION:
        return f"new-{run}-{n}@example.com"
    return f"returning-{random.randint(1, RETURNING_POOL)}@example.com"


def _api_body(who: str) -> bytes:
    return json.dumps({"sender": {"kind": "email", "value": who}, "text": TEXT}, separators=(",", ":")).encode()


def apichannel_requests(inbox_id: str, secret: str, run: str) -> Any:
    from frontdesk.signing import sign

    counter = itertools.count(1)
    path = f"/api/v1/inboxes/{inbox_id}/messages"

    def make() -> Request:
        n = next(counter)
        body = _api_body(_who(run, n))
        stamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "X-Frontdesk-Timestamp": stamp,
            "X-Frontdesk-Signature": sign(body, secret, stamp),
            "Idempotency-Key": f"{run}-{n}",
        }
        return ("POST", path, body, headers)

    return make


def events_requests(token: str, run: str) -> Any:
    counter = itertools.count(1)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def make() -> Request:
        n = next(counter)
        body = {"type": "order.shipped", "identity": {"kind": "email", "value": _who(run, n)}}
        body["properties"] = {"order": f"{run}-{n}"}
        return ("POST", EVENTS, json.dumps(body).encode(), headers)

    return make


@dataclass
class Setup:
    """What the ways need, made in the database before the server starts."""

    token: str
    api_inbox_id: str = ""
    api_secret: str = ""
    visitor_tokens: list[str] = field(default_factory=list)


def load(
    srv: Any, tmp: Path, target: str, setup: Setup | str, seconds: float, connections: int, use_wrk: bool
) -> LoadResult:
    """Closed-loop load on ``target`` ("ingest", "apichannel", "events" or "echo")."""
    if isinstance(setup, str):  # the old signature: a token
        setup = Setup(token=setup)
    token = setup.token
    run = f"{target}-{uuid.uuid4().hex[:6]}"
    api_path = f"/api/v1/inboxes/{setup.api_inbox_id}/messages"
    path = {"ingest": INBOUND, "echo": ECHO, "events": EVENTS, "apichannel": api_path}[target]
    if use_wrk:
        script = tmp / f"{run}.lua"
        values: dict[str, Any] = {
            "token": token,
            "new_fraction": NEW_CUSTOMER_FRACTION,
            "pool": RETURNING_POOL,
            "text": TEXT,
            "path": path,
        }
        if target == "apichannel":
            values.update(_signed_bodies(tmp, run, setup.api_secret, fresh=int(seconds * 2000) + 1000))
        values["body"] = {"ingest": INGEST_BODY_LUA, "events": EVENTS_BODY_LUA}.get(target, "")
        template = {"ingest": SENDER_LUA, "echo": ECHO_LUA, "events": SENDER_LUA, "apichannel": APICHANNEL_LUA}
        script.write_text(template[target] % values + WRK_DONE_LUA)
        return run_wrk(srv.base_url + path, script, seconds=seconds, connections=connections, args=[run])
    return asyncio.run(
        closed_loop(srv.host, srv.port, requests_for(target, setup, run), seconds=seconds, connections=connections)
    )


def requests_for(target: str, setup: Setup, run: str) -> Any:
    if target == "ingest":
        return ingest_requests(setup.token, run)
    if target == "events":
        return events_requests(setup.token, run)
    if target == "apichannel":
        return apichannel_requests(setup.api_inbox_id, setup.api_secret, run)
    return echo_requests()


def _signed_bodies(tmp: Path, run: str, secret: str, *, fresh: int) -> dict[str, Any]:
    """Files of signed bodies for the API channel's wrk script: new senders, returning ones."""
    from frontdesk.signing import sign

    stamp = str(int(time.time()))  # fresh for 5 minutes: longer than any one run
    files = {"fresh": tmp / f"{run}.fresh.tsv", "returning": tmp / f"{run}.returning.tsv"}
    senders = {
        "fresh": (f"new-{run}-{i}@example.com" for i in range(fresh)),
        "returning": (f"returning-{i}@example.com" for i in range(1, RETURNING_POOL + 1)),
    }
    for kind, path in files.items():
        lines = []
        for who in senders[kind]:
            body = _api_body(who)
            lines.append(f"{sign(body, secret, stamp)}\t{body.decode()}")
        path.write_text("\n".join(lines) + "\n")
    return {"fresh": files["fresh"], "returning": files["returning"], "stamp": stamp}


def make_setup(url: str, ways: list[str], sockets: int) -> Setup:
    setup = Setup(token=make_token(url))
    if "apichannel" in ways:
        setup.api_inbox_id, setup.api_secret = asyncio.run(_make_api_inbox(url))
    if "widget" in ways:
        from widget import make_visitors

        _public, setup.visitor_tokens = asyncio.run(make_visitors(url, sockets))
    return setup


async def _make_api_inbox(url: str) -> tuple[str, str]:
    import secrets

    from frontdesk.db import Database
    from frontdesk.models import Inbox

    db = Database(url)
    secret = secrets.token_urlsafe(32)
    try:
        async with db.transaction() as s:
            inbox = Inbox(
                name=f"bench-api-{uuid.uuid4().hex[:6]}",
                channel="api",
                public_token=secrets.token_urlsafe(18),
                config={"inbound_secret": secret},
            )
            s.add(inbox)
            await s.flush()
            return str(inbox.id), secret
    finally:
        await db.dispose()


# -- the widget socket ------------------------------------------------------------------------


async def _open_widgets(base_url: str, tokens: list[str]) -> list[Any]:
    from websockets.asyncio.client import connect

    host = base_url.replace("http://", "ws://")

    async def one(token: str) -> Any:
        ws = await connect(f"{host}/widget/ws", open_timeout=60, ping_interval=None, max_size=None)
        await ws.send(json.dumps({"type": "auth", "visitor_token": token}))
        await asyncio.wait_for(ws.recv(), 60)  # welcome
        return ws

    return list(await asyncio.gather(*(one(t) for t in tokens)))


async def _widget_send(ws: Any, run: str, n: int) -> str | None:
    """Send one message frame and wait for its ack; None when acknowledged, else the error."""
    await ws.send(json.dumps({"type": "message", "client_id": str(uuid.uuid4()), "text": f"{TEXT} {run}-{n}"}))
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), 60))
        kind = frame.get("type")
        if kind == "ack":
            return None
        if kind == "error":
            return str(frame)[:200]


async def widget_closed_loop(base_url: str, tokens: list[str], seconds: float) -> LoadResult:
    """Every socket sends its next message as soon as the last is acknowledged, for ``seconds``."""
    sockets = await _open_widgets(base_url, tokens)
    latencies: list[float] = []
    errors: list[str] = []
    run = uuid.uuid4().hex[:6]
    counter = itertools.count(1)
    stop_at = time.perf_counter() + seconds

    async def client(ws: Any) -> None:
        while time.perf_counter() < stop_at:
            t0 = time.perf_counter()
            error = await _widget_send(ws, run, next(counter))
            if error is None:
                latencies.append(time.perf_counter() - t0)
            else:
                errors.append(error)

    t0 = time.perf_counter()
    try:
        await asyncio.gather(*(client(ws) for ws in sockets))
    finally:
        elapsed = time.perf_counter() - t0
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    return summarise("websockets", latencies, elapsed, len(errors), errors)


async def widget_paced(base_url: str, tokens: list[str], rate: float, seconds: float) -> LoadResult:
    """``rate`` messages/s, each from the next socket in turn; latency from its scheduled send to its ack."""
    sockets = await _open_widgets(base_url, tokens)
    locks = [asyncio.Lock() for _ in sockets]
    latencies: list[float] = []
    errors: list[str] = []
    run = uuid.uuid4().hex[:6]

    async def one(i: int, scheduled: float) -> None:
        async with locks[i % len(sockets)]:
            try:
                error = await _widget_send(sockets[i % len(sockets)], run, i)
            except Exception as exc:
                error = repr(exc)
            if error is None:
                latencies.append(time.perf_counter() - scheduled)
            else:
                errors.append(error)

    tasks = []
    total = int(rate * seconds)
    start = time.perf_counter() + 0.05
    for i in range(total):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, scheduled)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    return summarise("paced-websockets", latencies, elapsed, len(errors), errors)


# -- one backend ------------------------------------------------------------------------------


def bench_backend(
    backend: str,
    quick: bool,
    connections: int,
    use_wrk: bool,
    ways: list[str] | None = None,
    sockets: int = 64,
    fixed_rate: float = 0.0,
) -> dict[str, Any]:
    ways = list(ways or WAYS)
    warm = 1.0 if quick else 3.0
    measure = 2.0 if quick else 10.0
    out: dict[str, Any] = {}
    runs: dict[str, tuple[LoadResult, float, LoadResult]] = {}  # way → (full load, its CPU, half load)
    env = {"FRONTDESK_WIDGET_MESSAGES_PER_MINUTE": "10000000"}  # one client IP sends for all sockets
    with workdir() as tmp, fresh_database(backend, tmp) as url:
        setup = make_setup(url, ways, sockets)
        with server(url, tmp, env=env) as srv:
            log(f"{backend}: server up at {srv.base_url}; warming up {warm:.0f}s")
            load(srv, tmp, "ingest", setup, warm, connections, use_wrk)
            if not quick:
                load(srv, tmp, "echo", setup, warm / 2, connections, use_wrk)
            out.update(analyse(url))
            log(f"{backend}: ANALYZE (statistics for the query planner, as autovacuum would give them)")
            for way in ways:
                runs[way] = _bench_way(
                    backend, srv, tmp, way, setup, warm, measure, connections, use_wrk, out, fixed_rate
                )
                if way == ways[0]:  # the ceiling in the same run, early (before the database grows)
                    echo, echo_cpu = _ceiling(backend, srv, tmp, setup, measure, connections, use_wrk)
            stored = asyncio.run(_count_messages(url))
    ceiling = echo.requests_per_s
    if "ingest" in ways:  # the original way keeps its original keys, so old figures compare
        ingest, ingest_cpu, half = runs["ingest"]
        out.update(
            {
                "messages_per_s": ingest.requests_per_s,
                "p50_ms": ingest.p50_ms,
                "p99_ms": ingest.p99_ms,
                "errors": ingest.errors + half.errors,
                "ceiling_requests_per_s": ceiling,
                "ceiling_p50_ms": echo.p50_ms,
                "ceiling_p99_ms": echo.p99_ms,
                "ratio_to_ceiling": round(ingest.requests_per_s / ceiling, 3) if ceiling else 0.0,
                # CPU the server spent per message / per bare request: steadier than the rates on a busy machine.
                "server_cpu_ms_per_message": _per(ingest_cpu, ingest),
                "ceiling_server_cpu_ms_per_request": _per(echo_cpu, echo),
                "half_load_messages_per_s": half.requests_per_s,
                "p50_ms_at_half_load": half.p50_ms,
                "p99_ms_at_half_load": half.p99_ms,
            }
        )
    else:
        out.update(
            {
                "ceiling_requests_per_s": ceiling,
                "ceiling_p99_ms": echo.p99_ms,
                "ceiling_server_cpu_ms_per_request": _per(echo_cpu, echo),
            }
        )
    for way, (full, cpu_s, half) in runs.items():
        unit = UNIT[way]
        out.update(
            {
                f"{way}_{unit}_per_s" if way != "events" else "events_per_s": full.requests_per_s,
                f"{way}_ratio_to_ceiling": round(full.requests_per_s / ceiling, 3) if ceiling else 0.0,
                f"{way}_p99_ms": full.p99_ms,
                f"{way}_p99_half_load_ms": half.p99_ms,
                f"{way}_half_load_{unit}_per_s": half.requests_per_s,
                f"{way}_server_cpu_ms_per_{unit[:-1]}": _per(cpu_s, full),
                f"{way}_errors": full.errors + half.errors,
            }
        )
    out.update(
        {
            "messages_stored": stored,
            "load_tool": "wrk" if use_wrk else "asyncio",
            "connections": connections,
            "widget_sockets": sockets if "widget" in ways else 0,
            "seconds_per_run": measure,
        }
    )
    return out


def _ceiling(
    backend: str, srv: Any, tmp: Path, setup: Setup, measure: float, connections: int, use_wrk: bool
) -> tuple[LoadResult, float]:
    log(f"{backend}: bare echo endpoint (the ceiling)")
    cpu = srv.cpu_seconds()
    echo = load(srv, tmp, "echo", setup, measure, connections, use_wrk)
    echo_cpu = srv.cpu_seconds() - cpu
    log(f"{backend}:   {echo.requests_per_s:.0f} requests/s, p50 {echo.p50_ms} ms, p99 {echo.p99_ms} ms")
    return echo, echo_cpu


def _bench_way(
    backend: str,
    srv: Any,
    tmp: Path,
    way: str,
    setup: Setup,
    warm: float,
    measure: float,
    connections: int,
    use_wrk: bool,
    out: dict[str, Any],
    fixed_rate: float = 0.0,
) -> tuple[LoadResult, float, LoadResult]:
    """Full load, then half load, on one way in; (full-load result, server CPU seconds, half-load result)."""
    unit = UNIT[way]
    if way == "widget":
        log(f"{backend}: widget: {len(setup.visitor_tokens)} sockets sending back to back ({measure:.0f}s)")
        asyncio.run(widget_closed_loop(srv.base_url, setup.visitor_tokens, warm))
        cpu, db = srv.cpu_seconds(), ProcessesCpu("postgres")
        full = asyncio.run(widget_closed_loop(srv.base_url, setup.visitor_tokens, measure))
        cpu_s, db_cpu = srv.cpu_seconds() - cpu, db.seconds()
    else:
        if way != "ingest":
            load(srv, tmp, way, setup, warm, connections, use_wrk)
        log(f"{backend}: {way}: full load ({connections} connections, {measure:.0f}s)")
        before = batch_stats(srv.base_url)
        cpu, db = srv.cpu_seconds(), ProcessesCpu("postgres")
        full = load(srv, tmp, way, setup, measure, connections, use_wrk)
        cpu_s, db_cpu = srv.cpu_seconds() - cpu, db.seconds()
        after = batch_stats(srv.base_url)
        if way == "ingest":
            batches = after[1] - before[1]
            out["mean_messages_per_commit"] = round((after[0] - before[0]) / batches, 1) if batches else 0.0
    db_note = ""
    if backend == "postgresql":  # its own processes; SQLite's work is inside the server's CPU
        out[f"{way}_postgres_cpu_ms_per_{unit[:-1]}"] = _per(db_cpu, full)
        db_note = f" (+ {_per(db_cpu, full)} ms in PostgreSQL)"
    log(
        f"{backend}:   {full.requests_per_s:.0f} {unit}/s, p50 {full.p50_ms} ms, p99 {full.p99_ms} ms, "
        f"{_per(cpu_s, full)} ms CPU each{db_note}, errors {full.errors} {full.error_sample}"
    )
    rate = max(10.0, full.requests_per_s / 2)
    log(f"{backend}: {way}: paced at {rate:.0f}/s (half the measured throughput)")
    half, _ = _paced(backend, srv, way, setup, rate, measure)
    if fixed_rate > 0:
        # Half load follows the measured throughput, so a faster version gets a harder half load;
        # the same rate for every version is what compares them (latency, and CPU per item).
        log(f"{backend}: {way}: paced at {fixed_rate:.0f}/s (the fixed rate)")
        fixed, fixed_cpu = _paced(backend, srv, way, setup, fixed_rate, measure if measure >= 10 else 1.0)
        unit = UNIT[way]
        out[f"{way}_fixed_rate_p99_ms"] = fixed.p99_ms
        out[f"{way}_fixed_rate_server_cpu_ms_per_{unit[:-1]}"] = _per(fixed_cpu, fixed)
    return full, cpu_s, half


def _paced(backend: str, srv: Any, way: str, setup: Setup, rate: float, seconds: float) -> tuple[LoadResult, float]:
    """Open-loop load on ``way`` at ``rate``; (its result, the server's CPU seconds meanwhile)."""
    cpu = srv.cpu_seconds()
    if way == "widget":
        result = asyncio.run(widget_paced(srv.base_url, setup.visitor_tokens, rate, seconds))
    else:
        run = f"paced-{uuid.uuid4().hex[:6]}"
        result = asyncio.run(paced(srv.host, srv.port, requests_for(way, setup, run), rate=rate, seconds=seconds))
    cpu = srv.cpu_seconds() - cpu
    log(
        f"{backend}:   achieved {result.requests_per_s:.0f}/s, p50 {result.p50_ms} ms, p99 {result.p99_ms} ms, "
        f"{_per(cpu, result)} ms CPU each, errors {result.errors} {result.error_sample}"
    )
    return result, cpu


def _per(cpu_seconds: float, result: LoadResult) -> float:
    return round(1000 * cpu_seconds / result.requests, 3) if result.requests else 0.0


def batch_stats(base_url: str) -> tuple[float, float]:
    """(messages, commits) so far, from the server's ``frontdesk_ingest_batch_size`` histogram."""
    import urllib.request

    with urllib.request.urlopen(f"{base_url}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    values = {"sum": 0.0, "count": 0.0}
    for line in text.splitlines():
        for key in values:
            if line.startswith(f"frontdesk_ingest_batch_size_{key} "):
                values[key] = float(line.split()[1])
    return values["sum"], values["count"]


async def _count_messages(url: str) -> int:
    from sqlalchemy import func, select

    from frontdesk.db import Database
    from frontdesk.models import Message

    db = Database(url)
    try:
        async with db.sessionmaker() as s:
            return int((await s.execute(select(func.count()).select_from(Message))).scalar_one())
    finally:
        await db.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short runs (< 30 s in all): checks that it works")
    parser.add_argument(
        "--backend",
        choices=["sqlite", "postgresql", "both"],
        default=None,
        help="default: both when PostgreSQL is reachable, else sqlite",
    )
    parser.add_argument("--connections", type=int, default=64, help="concurrent clients at full load")
    parser.add_argument("--no-wrk", action="store_true", help="use the asyncio load generator even if wrk exists")
    parser.add_argument(
        "--ways", default=",".join(WAYS), help=f"comma-separated ways in to measure (default: {','.join(WAYS)})"
    )
    parser.add_argument("--sockets", type=int, default=64, help="widget sockets sending at once")
    parser.add_argument(
        "--fixed-rate",
        type=float,
        default=100.0,
        help="also pace every way at this rate (items/s) for p99 and CPU per item that compare across versions; 0: no",
    )
    opts = parser.parse_args()
    ways = [w.strip() for w in opts.ways.split(",") if w.strip()]
    unknown = sorted(set(ways) - set(WAYS))
    if unknown:
        parser.error(f"unknown ways: {', '.join(unknown)} (known: {', '.join(WAYS)})")

    pg = postgres_reachable()
    if opts.backend in (None, "both"):
        backends = ["sqlite", "postgresql"] if pg else ["sqlite"]
        if not pg:
            log("PostgreSQL not reachable; measuring SQLite only")
    else:
        backends = [opts.backend]
    use_wrk = have_wrk() and not opts.no_wrk
    log(f"load generator: {'wrk' if use_wrk else 'asyncio (install wrk for better figures)'}")

    started = time.perf_counter()
    result: dict[str, Any] = {
        "benchmark": "ingest",
        "quick": opts.quick,
        "ways": ways,
        "goals": {"postgresql_messages_per_s": 1000, "ratio_to_ceiling": 0.35, "p99_ms_at_half_load": 50},
        "fixed_rate_per_s": opts.fixed_rate,
    }
    for backend in backends:
        result[backend] = bench_backend(
            backend, opts.quick, opts.connections, use_wrk, ways, opts.sockets, opts.fixed_rate
        )
    result["wall_seconds"] = round(time.perf_counter() - started, 1)
    emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
