"""Helpers every benchmark shares: a fresh database, the real server in a subprocess, a token,
load generators (``wrk`` when installed, else asyncio), and the one JSON line at the end.

Benchmarks print progress to stderr and exactly one JSON line to stdout. Run them with the
project's interpreter from the repository root: ``.venv/bin/python bench/<name>.py [--quick]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

POSTGRES_ADMIN_URL = os.environ.get(
    "FRONTDESK_BENCH_POSTGRES_URL",
    os.environ.get("FRONTDESK_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"),
)


def log(message: str) -> None:
    """Progress goes to stderr; stdout is kept for the one JSON line."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def emit(result: dict[str, Any]) -> None:
    """Print the benchmark's figures: ONE JSON line on stdout."""
    sys.stdout.write(json.dumps(result, sort_keys=False, default=str) + "\n")
    sys.stdout.flush()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url.replace("+asyncpg", ""))
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=1):
            return True
    except OSError:
        return False


def postgres_reachable() -> bool:
    return reachable(POSTGRES_ADMIN_URL, 5432)


# -- databases ------------------------------------------------------------------------------


@contextlib.contextmanager
def fresh_database(backend: str, workdir: Path) -> Iterator[str]:
    """A new, migrated database (``sqlite`` file under ``workdir`` or a new PostgreSQL database)."""
    from frontdesk import migrate

    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{(workdir / 'bench.db').as_posix()}"
        migrate.upgrade(url)
        yield url
        return
    if backend != "postgresql":
        raise ValueError(f"unknown backend {backend!r}")
    from frontdesk.dbadmin import scratch_database

    with scratch_database(POSTGRES_ADMIN_URL, "fd_bench") as url:
        migrate.upgrade(url)
        yield url


def analyse(database_url: str) -> dict[str, Any]:
    """Give the query planner statistics, as a database in service has them: ``ANALYZE``.

    A fresh database has none, and the planner then picks plans for empty tables (an identity
    lookup by kind alone, filtering every email identity by value). PostgreSQL's autovacuum
    analyses a growing table within a minute, so in service that lasts a minute at most; on a
    server that runs with autovacuum off (this development machine's) it lasts for ever. A
    benchmark calls this after its warm-up, then measures. Returns what was done and whether
    PostgreSQL's autovacuum is on, for the benchmark's JSON line."""

    async def _postgres() -> bool:
        import asyncpg

        conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            await conn.execute("ANALYZE")
            return bool((await conn.fetchval("SHOW autovacuum")) == "on")
        finally:
            await conn.close()

    if database_url.startswith("sqlite"):
        import sqlite3

        with contextlib.closing(sqlite3.connect(database_url.split("///", 1)[1])) as conn:
            conn.execute("ANALYZE")
            conn.commit()
        return {"analysed_after_warm_up": True}
    autovacuum = asyncio.run(_postgres())
    return {"analysed_after_warm_up": True, "postgres_autovacuum": autovacuum}


def make_token(database_url: str, role: str = "agent") -> str:
    """Create a user with ``role`` and an API token for it directly in the database."""

    async def _make() -> str:
        from frontdesk.db import Database
        from tests.builders.users import make_token as token_of
        from tests.builders.users import make_user

        db = Database(database_url)
        try:
            user = await make_user(db, role=role, name="Bench", email=f"bench-{uuid.uuid4().hex[:8]}@example.com")
            return await token_of(db, user)
        finally:
            await db.dispose()

    return asyncio.run(_make())


# -- the server -----------------------------------------------------------------------------


@dataclass
class Server:
    host: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the server process has used so far (Linux ``/proc``).

        Throughput on a shared 2-core machine moves with whatever else runs; the CPU a request
        costs the server barely does, so it is the figure to compare two versions by."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@contextlib.contextmanager
def server(
    database_url: str,
    workdir: Path,
    *,
    env: dict[str, str] | None = None,
    startup_timeout: float = 60.0,
    app: str = "frontdesk.app:create_app",
) -> Iterator[Server]:
    """Run ``uvicorn frontdesk.app:create_app --factory`` (one process) until the block ends.

    ``app`` names another factory for experiments (it must be importable from the repository root).
    """
    port = free_port()
    log_path = workdir / f"server-{port}.log"
    full_env = {
        **os.environ,
        "FRONTDESK_DATABASE_URL": database_url,
        "FRONTDESK_DATA_DIR": str(workdir / "var"),
        "FRONTDESK_SECRET_KEY": "bench-secret-key-0123456789abcdef",
        "FRONTDESK_AUTO_MIGRATE": "false",
        "FRONTDESK_LOG_LEVEL": "warning",
        "FRONTDESK_CONFIG": str(workdir / "none.toml"),  # ignore a developer's frontdesk.toml
        # Every load generator connects from 127.0.0.1 (bench/widget.py holds 5,000 sockets).
        "FRONTDESK_WS_MAX_CONNECTIONS_PER_IP": "1000000",
        **(env or {}),
    }
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=full_env, stdout=out, stderr=subprocess.STDOUT)
    srv = Server("127.0.0.1", port, proc, log_path)
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited with {proc.returncode}:\n{srv.log_tail()}")
            if _healthy(srv.host, port):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not answer /healthz in {startup_timeout:.0f}s:\n{srv.log_tail()}")
            time.sleep(0.1)
        yield srv
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


class ProcessesCpu:
    """CPU time (user + system) that every process called ``name`` (e.g. ``postgres``: the
    database's own share of a request's cost, on the same machine) uses from now until
    :meth:`seconds` is asked. Counted per process, so a backend that starts meanwhile counts from
    zero; one that ends meanwhile is left out (its last figures are gone with it)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.start = self._now()

    def _now(self) -> dict[str, int]:
        ticks: dict[str, int] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                head, tail = stat.read_text().rsplit(")", 1)
            except OSError:  # the process ended meanwhile
                continue
            if head.split("(", 1)[1] == self.name:
                fields = tail.split()
                ticks[stat.parent.name] = int(fields[11]) + int(fields[12])
        return ticks

    def seconds(self) -> float:
        now = self._now()
        return sum(t - self.start.get(pid, 0) for pid, t in now.items()) / os.sysconf("SC_CLK_TCK")


def _healthy(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5) as s:
            s.sendall(f"GET /healthz HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            return s.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


@contextlib.contextmanager
def workdir(prefix: str = "fd-bench-") -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# -- measurements ---------------------------------------------------------------------------


@dataclass
class LoadResult:
    """One load run: requests/s and latency percentiles in milliseconds."""

    tool: str
    requests: int
    seconds: float
    requests_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    error_sample: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def percentile(sorted_values: list[float], pct: float) -> float:
    if not sorted_values:
        return math.nan
    k = max(0, min(len(sorted_values) - 1, math.ceil(pct / 100 * len(sorted_values)) - 1))
    return sorted_values[k]


def summarise(tool: str, latencies_s: list[float], seconds: float, errors: int, sample: list[str]) -> LoadResult:
    lat = sorted(latencies_s)
    ms = [v * 1000 for v in lat]
    return LoadResult(
        tool=tool,
        requests=len(lat),
        seconds=round(seconds, 3),
        requests_per_s=round(len(lat) / seconds, 1) if seconds > 0 else 0.0,
        p50_ms=round(percentile(ms, 50), 2),
        p90_ms=round(percentile(ms, 90), 2),
        p99_ms=round(percentile(ms, 99), 2),
        max_ms=round(ms[-1], 2) if ms else math.nan,
        errors=errors,
        error_sample=sample[:3],
    )


# -- wrk ------------------------------------------------------------------------------------

WRK_DONE_LUA = r"""
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,' ..
    '"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def run_wrk(
    url: str, script: Path, *, seconds: float, connections: int = 64, threads: int = 1, args: list[str] | None = None
) -> LoadResult:
    """Closed-loop load with ``wrk``; the script must include :data:`WRK_DONE_LUA`."""
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        url,
    ]
    if args:
        cmd += ["--", *args]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    match = re.search(r"^WRKJSON (\{.*\})$", out.stdout, re.M)
    if out.returncode != 0 or match is None:
        raise RuntimeError(f"wrk failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    d = json.loads(match.group(1))
    errors = d["connect"] + d["read"] + d["write"] + d["status"] + d["timeout"]
    sample = [f"{k}={d[k]}" for k in ("connect", "read", "write", "status", "timeout") if d[k]]
    seconds_run = d["duration_us"] / 1e6
    ok = d["requests"] - d["status"]
    return LoadResult(
        tool="wrk",
        requests=d["requests"],
        seconds=round(seconds_run, 3),
        requests_per_s=round(ok / seconds_run, 1) if seconds_run else 0.0,
        p50_ms=round(d["p50_us"] / 1000, 2),
        p90_ms=round(d["p90_us"] / 1000, 2),
        p99_ms=round(d["p99_us"] / 1000, 2),
        max_ms=round(d["max_us"] / 1000, 2),
        errors=errors,
        error_sample=sample,
    )


# -- a minimal asyncio HTTP/1.1 client (keep-alive; cheap enough not to be the bottleneck) ---


class HttpConnection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str) -> None:
        self.reader, self.writer, self.host = reader, writer, host

    @classmethod
    async def open(cls, host: str, port: int) -> HttpConnection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer, host)

    async def request(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Length: {len(body)}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.writer.write(head.encode() + b"\r\n" + body)
        status_line = await self.reader.readuntil(b"\r\n")
        status = int(status_line.split(b" ", 2)[1])
        length = 0
        chunked = False
        while True:
            line = await self.reader.readuntil(b"\r\n")
            if line == b"\r\n":
                break
            name, _, value = line.partition(b":")
            lname = name.strip().lower()
            if lname == b"content-length":
                length = int(value.strip())
            elif lname == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if chunked:
            data = b""
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
                chunk = await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                data += chunk[:-2]
            return status, data
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


Request = tuple[str, str, bytes, dict[str, str]]  # method, path, body, headers


async def closed_loop(
    host: str, port: int, make_request: Callable[[], Request], *, seconds: float, connections: int = 64
) -> LoadResult:
    """``wrk`` stand-in: ``connections`` clients sending back to back for ``seconds``."""
    latencies: list[float] = []
    errors: list[str] = []
    stop_at = time.perf_counter() + seconds

    async def client() -> None:
        conn = await HttpConnection.open(host, port)
        try:
            while time.perf_counter() < stop_at:
                method, path, body, headers = make_request()
                t0 = time.perf_counter()
                status, data = await conn.request(method, path, body, headers)
                if status >= 400:
                    errors.append(f"{status} {data[:200]!r}")
                else:
                    latencies.append(time.perf_counter() - t0)
        finally:
            conn.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(connections)))
    return summarise("asyncio", latencies, time.perf_counter() - t0, len(errors), errors)


async def paced(
    host: str,
    port: int,
    make_request: Callable[[], Request],
    *,
    rate: float,
    seconds: float,
    max_connections: int = 256,
) -> LoadResult:
    """Open-loop load at a fixed ``rate`` (requests/s), the way wrk2 does it.

    Each request has a scheduled start time and its latency is counted from that time, so a
    stalled server is charged for the requests that queued behind the stall (no coordinated
    omission).
    """
    latencies: list[float] = []
    errors: list[str] = []
    idle: list[HttpConnection] = []
    opened = 0
    limiter = asyncio.Semaphore(max_connections)
    tasks: set[asyncio.Task[None]] = set()

    async def one(scheduled: float) -> None:
        nonlocal opened
        async with limiter:
            if idle:
                conn = idle.pop()
            else:
                opened += 1
                conn = await HttpConnection.open(host, port)
            method, path, body, headers = make_request()
            try:
                try:
                    status, data = await conn.request(method, path, body, headers)
                except (asyncio.IncompleteReadError, ConnectionError):
                    # A kept-alive connection the server closed while it sat idle (uvicorn's
                    # keep-alive timeout): reconnect and send again, as HTTP clients do.
                    conn.close()
                    opened += 1
                    conn = await HttpConnection.open(host, port)
                    status, data = await conn.request(method, path, body, headers)
            except Exception as exc:
                errors.append(repr(exc))
                conn.close()
                return
            idle.append(conn)
            if status >= 400:
                errors.append(f"{status} {data[:200]!r}")
            else:
                latencies.append(time.perf_counter() - scheduled)

    interval = 1.0 / rate
    total = int(rate * seconds)
    start = time.perf_counter() + 0.05
    for i in range(total):
        scheduled = start + i * interval
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(scheduled))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    for conn in idle:
        conn.close()
    result = summarise("paced-asyncio", latencies, elapsed, len(errors), errors)
    return result


if __name__ == "__main__":  # `make bench` loops over bench/*.py; this module is a library
    sys.exit(0)
