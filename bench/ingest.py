"""Benchmark: inbound messages through the public API, against the bare ceiling of the same server.

For each backend (SQLite, PostgreSQL) it builds a fresh, migrated database, starts the real
server (one uvicorn process), creates an agent and an API token in the database, then:

1. loads ``POST /api/v1/messages/inbound`` with concurrent clients (``wrk`` when installed, else
   an asyncio load generator): every request has a unique external_id; 30% come from new
   customers, 70% from a pool of returning ones → messages/s, p50/p99;
2. loads ``POST /api/v1/echo`` (a bare endpoint parsing a small JSON body) the same way → the
   ceiling, and the ratio of the two;
3. sends inbound messages at a fixed rate of half the measured throughput (open loop, latency from
   the scheduled time, like wrk2) → p99 at half load.

Progress goes to stderr; ONE JSON line goes to stdout. Goals for one process: ≥ 1,000
messages/s on PostgreSQL, ≥ 25% of the ceiling, p99 < 50 ms at half load.

    .venv/bin/python bench/ingest.py [--quick] [--backend sqlite|postgresql|both]
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
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    WRK_DONE_LUA,
    LoadResult,
    Request,
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
    workdir,
)

INBOUND = "/api/v1/messages/inbound"
ECHO = "/api/v1/echo"
NEW_CUSTOMER_FRACTION = 0.3
RETURNING_POOL = 2000
TEXT = "Hello, my order has not arrived yet. Could you check where it is? Thanks!"

INGEST_LUA = """
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
  local body = string.format(
    '{"identity":{"kind":"email","value":"%%s"},"channel":"api","external_id":"%%s-%%d-%%d","text":"%(text)s"}',
    who, run, tid or 0, counter)
  return wrk.format("POST", "%(path)s", nil, body)
end
"""

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


def load(srv: Any, tmp: Path, target: str, token: str, seconds: float, connections: int, use_wrk: bool) -> LoadResult:
    """Closed-loop load on ``target`` ("ingest" or "echo")."""
    run = f"{target}-{uuid.uuid4().hex[:6]}"
    if use_wrk:
        script = tmp / f"{run}.lua"
        template = INGEST_LUA if target == "ingest" else ECHO_LUA
        script.write_text(
            template
            % {
                "token": token,
                "new_fraction": NEW_CUSTOMER_FRACTION,
                "pool": RETURNING_POOL,
                "text": TEXT,
                "path": INBOUND,
            }
            + WRK_DONE_LUA
        )
        return run_wrk(
            srv.base_url + (INBOUND if target == "ingest" else ECHO),
            script,
            seconds=seconds,
            connections=connections,
            args=[run],
        )
    make = ingest_requests(token, run) if target == "ingest" else echo_requests()
    return asyncio.run(closed_loop(srv.host, srv.port, make, seconds=seconds, connections=connections))


def bench_backend(backend: str, quick: bool, connections: int, use_wrk: bool) -> dict[str, Any]:
    warm = 1.0 if quick else 3.0
    measure = 2.0 if quick else 10.0
    with workdir() as tmp, fresh_database(backend, tmp) as url:
        token = make_token(url)
        with server(url, tmp) as srv:
            log(f"{backend}: server up at {srv.base_url}; warming up {warm:.0f}s")
            load(srv, tmp, "ingest", token, warm, connections, use_wrk)
            if not quick:
                load(srv, tmp, "echo", token, warm / 2, connections, use_wrk)

            log(f"{backend}: inbound messages at full load ({connections} connections, {measure:.0f}s)")
            before = batch_stats(srv.base_url)
            cpu = srv.cpu_seconds()
            ingest = load(srv, tmp, "ingest", token, measure, connections, use_wrk)
            ingest_cpu = srv.cpu_seconds() - cpu
            after = batch_stats(srv.base_url)
            batches = after[1] - before[1]
            mean_batch = round((after[0] - before[0]) / batches, 1) if batches else 0.0
            log(
                f"{backend}:   {ingest.requests_per_s:.0f} messages/s, p50 {ingest.p50_ms} ms, "
                f"p99 {ingest.p99_ms} ms, errors {ingest.errors} {ingest.error_sample}"
            )

            log(f"{backend}: bare echo endpoint (the ceiling)")
            cpu = srv.cpu_seconds()
            echo = load(srv, tmp, "echo", token, measure, connections, use_wrk)
            echo_cpu = srv.cpu_seconds() - cpu
            log(f"{backend}:   {echo.requests_per_s:.0f} requests/s, p50 {echo.p50_ms} ms, p99 {echo.p99_ms} ms")

            rate = max(10.0, ingest.requests_per_s / 2)
            log(f"{backend}: inbound messages paced at {rate:.0f}/s (half the measured throughput)")
            half = asyncio.run(
                paced(
                    srv.host,
                    srv.port,
                    ingest_requests(token, f"half-{uuid.uuid4().hex[:6]}"),
                    rate=rate,
                    seconds=measure,
                )
            )
            log(
                f"{backend}:   achieved {half.requests_per_s:.0f}/s, p50 {half.p50_ms} ms, p99 {half.p99_ms} ms, "
                f"errors {half.errors} {half.error_sample}"
            )
            stored = asyncio.run(_count_messages(url))
    ratio = ingest.requests_per_s / echo.requests_per_s if echo.requests_per_s else 0.0
    return {
        "messages_per_s": ingest.requests_per_s,
        "p50_ms": ingest.p50_ms,
        "p99_ms": ingest.p99_ms,
        "errors": ingest.errors + half.errors,
        "ceiling_requests_per_s": echo.requests_per_s,
        "ceiling_p50_ms": echo.p50_ms,
        "ceiling_p99_ms": echo.p99_ms,
        "ratio_to_ceiling": round(ratio, 3),
        # CPU the server spent per message / per bare request: steadier than the rates on a busy machine.
        "server_cpu_ms_per_message": _per(ingest_cpu, ingest),
        "ceiling_server_cpu_ms_per_request": _per(echo_cpu, echo),
        "half_load_messages_per_s": half.requests_per_s,
        "p50_ms_at_half_load": half.p50_ms,
        "p99_ms_at_half_load": half.p99_ms,
        "messages_stored": stored,
        "mean_messages_per_commit": mean_batch,
        "load_tool": ingest.tool,
        "connections": connections,
        "seconds_per_run": measure,
    }


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
    opts = parser.parse_args()

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
        "goals": {"postgresql_messages_per_s": 1000, "ratio_to_ceiling": 0.25, "p99_ms_at_half_load": 50},
    }
    for backend in backends:
        result[backend] = bench_backend(backend, opts.quick, opts.connections, use_wrk)
    result["wall_seconds"] = round(time.perf_counter() - started, 1)
    emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
