"""Benchmark: time to first render of the agent desk in a real browser (Debian's Chromium).

It builds a fresh, migrated database and bulk-inserts (SQLAlchemy Core, executemany) one agent,
2,000 customers with an email identity each, 10,000 conversations across channels, statuses,
priorities and tags (a fifth assigned to the agent; each with its opening message) and one
conversation with 5,000 messages (customer messages, agent replies and internal notes) that is
the newest in the inbox. It starts the real server (one uvicorn process), signs the agent in
through ``POST /api/v1/auth/login`` and gives that session cookie to headless Chromium.

Then, for each run, in a new browser context (empty HTTP cache, no service worker; only the
session cookie) and in this order:

1. the ceiling: the sign-in page ``/`` (no data; the same server, the same session lookup) —
   ``domContentLoadedEventEnd`` of its navigation, i.e. the HTML parsed, the stylesheet loaded
   and its module script run;
2. the inbox: ``/desk`` until the desk sets ``document.body.dataset.inboxReady = "1"`` (the first
   page of the list is on screen);
3. the conversation: ``/desk#/c/<id>`` until ``document.body.dataset.conversationReady`` equals
   the conversation's id (its newest messages are on screen).

Each time is ``performance.now()`` when the page reached that point, i.e. milliseconds since the
navigation started; an init script's MutationObserver records the moment the desk sets the
marker, so the polling interval of the wait does not count. One unmeasured warm-up round comes
first (the server's and Chromium's first-use costs). Figures are the median (p50) of ``--runs``
rounds (5; ``--quick``: 3, same data sizes). ``*_ratio_to_ceiling`` is ceiling time divided by
the page's time: 1.0 would be as fast as a bare page, like ``ratio_to_ceiling`` in
``bench/ingest.py``.

Progress goes to stderr (with the slowest requests of the last run); ONE JSON line goes to
stdout. A page that never sets its marker stops the benchmark with a clear error after
``--timeout`` seconds, and so does a marker reached while a request answered 5xx (exit status 1).

    .venv/bin/python bench/desktop.py [--quick] [--backend sqlite|postgresql] [--runs 5]
                                      [--timeout 30]

Needs ``apt-get install -y chromium`` (or ``FRONTDESK_CHROMIUM=/path``) and the ``playwright``
Python package (dev extra; never ``playwright install``).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import statistics
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from _common import emit, fresh_database, log, postgres_reachable, server, workdir

from tests.e2e.chromium import chromium_missing, launch_chromium, playwright_missing

CONVERSATIONS = 10_000
MESSAGES = 5_000
CUSTOMERS = 2_000
BATCH = 1_000
VIEWPORT = {"width": 1280, "height": 800}

# Runs before any of the page's scripts: records performance.now() the moment the desk sets a
# readiness marker on <body> (the observer's callback runs in the microtask checkpoint right
# after the script that set it).
INIT_SCRIPT = """
(() => {
  const marks = { conversation: {} };
  Object.defineProperty(window, "__fdBench", { value: marks });
  const check = () => {
    const data = document.body ? document.body.dataset : null;
    if (!data) return;
    if (data.inboxReady === "1" && marks.inbox === undefined) marks.inbox = performance.now();
    const id = data.conversationReady;
    if (id && marks.conversation[id] === undefined) marks.conversation[id] = performance.now();
  };
  new MutationObserver(check).observe(document, {
    subtree: true, childList: true, attributes: true,
    attributeFilter: ["data-inbox-ready", "data-conversation-ready"],
  });
})();
"""

# The three longest requests that finished before the first render (Resource Timing), for the log.
SLOWEST_REQUESTS = """
(until) => performance.getEntriesByType("resource")
  .filter((e) => e.responseEnd <= until)
  .sort((a, b) => b.duration - a.duration)
  .slice(0, 3)
  .map((e) => `${new URL(e.name).pathname} ${Math.round(e.startTime)}+${Math.round(e.duration)} ms`)
"""

CHANNELS = ["webchat"] * 40 + ["email"] * 35 + ["api"] * 10 + ["sms"] * 10 + ["whatsapp"] * 5
STATUSES = ["open"] * 55 + ["pending"] * 30 + ["snoozed"] * 5 + ["resolved"] * 10
PRIORITIES = ["normal"] * 70 + ["low"] * 10 + ["high"] * 15 + ["urgent"] * 5
TAGS = ["billing", "delivery", "returns", "login", "refund", "warranty", "complaint", "vip"]
SUBJECTS = [
    "Where is my order?",
    "Refund for a damaged item",
    "Cannot sign in to my account",
    "Change of delivery address",
    "Заказ не пришёл",
    "Invoice for March",
    "Warranty claim",
    "Question about my subscription",
]
CUSTOMER_TEXTS = [
    "Hello, my order has not arrived yet. Could you check where it is? Thanks!",
    "The parcel came today but the box was crushed and one of the glasses is broken.",
    "Здравствуйте! Посылка всё ещё в пути, можно уточнить сроки доставки?",
    "I tried resetting my password twice and the email never came.",
    "ok thanks",
    "Could you send me the invoice again? I need it for my accountant by Friday, ideally as a PDF.",
]
AGENT_TEXTS = [
    "Thanks for getting in touch! Let me check that for you.",
    "I've asked the warehouse and the parcel left yesterday; it should arrive within two days.",
    "Sorry about that — I've issued a refund, you'll see it in 3 to 5 business days.",
    "Could you send me a photo of the damaged item, please?",
]
NOTE_TEXTS = [
    "Checked the carrier portal: stuck at the sorting centre since Monday.",
    "Customer is on the VIP plan, escalate if the refund is not through by Thursday.",
]


class BenchError(RuntimeError):
    """A clear reason the benchmark could not measure (shown without a traceback)."""


@dataclass
class Seeded:
    email: str
    password: str
    big_conversation_id: uuid.UUID
    conversations: int
    messages_in_big: int
    messages_total: int


# -- data ---------------------------------------------------------------------------------------


async def seed(database_url: str) -> Seeded:
    """One agent, the customers, 10,000 conversations and the 5,000-message one, in bulk."""
    from sqlalchemy import insert

    from frontdesk import clock
    from frontdesk.auth.security import hash_password
    from frontdesk.db import Database
    from frontdesk.ids import new_id
    from frontdesk.models import Conversation, ConversationTag, Customer, Identity, Inbox, Message, User

    rnd = random.Random(20240607)
    now = clock.now()
    password = secrets.token_urlsafe(12)
    email = f"desk-bench-{uuid.uuid4().hex[:6]}@example.com"
    db = Database(database_url)

    async def many(session: Any, model: Any, rows: list[dict[str, Any]]) -> None:
        """Core executemany on the table (the ORM's bulk path would send row by row here)."""
        conn = await session.connection()
        for start in range(0, len(rows), BATCH):
            await conn.execute(insert(model.__table__), rows[start : start + BATCH])

    try:
        async with db.transaction() as s:
            agent_id = new_id()
            await many(
                s,
                User,
                [
                    {
                        "id": agent_id,
                        "email": email,
                        "name": "Bench Agent",
                        "password_hash": hash_password(password),
                        "role": "agent",
                        "time_zone": "UTC",
                        "is_active": True,
                        "created_at": now,
                        "updated_at": now,
                    }
                ],
            )
            inboxes: dict[str, uuid.UUID] = {}
            inbox_rows = []
            for channel in sorted(set(CHANNELS)):
                inboxes[channel] = new_id()
                inbox_rows.append(
                    {
                        "id": inboxes[channel],
                        "name": f"Bench {channel}",
                        "channel": channel,
                        "public_token": secrets.token_urlsafe(18),
                        "config": {},
                        "is_active": True,
                        "created_at": now,
                        "updated_at": now,
                    }
                )
            await many(s, Inbox, inbox_rows)

            customers = [new_id() for _ in range(CUSTOMERS)]
            first = ["Anna", "Boris", "Chloé", "Dmitri", "Elif", "Farid", "Grace", "Hiro", "Ирина", "José"]
            last = ["Smith", "Ivanova", "Müller", "García", "Chen", "Okafor", "Kowalski", "Петров", "Rossi"]
            await many(
                s,
                Customer,
                [
                    {
                        "id": cid,
                        "name": f"{rnd.choice(first)} {rnd.choice(last)}",
                        "attributes": {},
                        "satisfaction_tier": "unknown",
                        "lifetime_value": 0,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for cid in customers
                ],
            )
            await many(
                s,
                Identity,
                [
                    {
                        "id": new_id(),
                        "customer_id": cid,
                        "kind": "email",
                        "value": f"customer-{i}@example.com",
                        "verified": False,
                        "undeliverable": False,
                        "created_at": now,
                    }
                    for i, cid in enumerate(customers)
                ],
            )

            conversations: list[dict[str, Any]] = []
            openers: list[dict[str, Any]] = []
            tags: list[dict[str, Any]] = []
            for _ in range(CONVERSATIONS - 1):
                cid = new_id()
                customer_id = rnd.choice(customers)
                channel = rnd.choice(CHANNELS)
                status = rnd.choice(STATUSES)
                last_at = now - timedelta(seconds=rnd.randint(60, 30 * 86400))
                opened_at = last_at - timedelta(seconds=rnd.randint(0, 3 * 86400))
                conversations.append(
                    {
                        "id": cid,
                        "customer_id": customer_id,
                        "channel": channel,
                        "inbox_id": inboxes[channel],
                        "subject": rnd.choice(SUBJECTS),
                        "status": status,
                        "priority": rnd.choice(PRIORITIES),
                        "assignee_id": agent_id if rnd.random() < 0.2 else None,
                        "snoozed_until": now + timedelta(days=1) if status == "snoozed" else None,
                        "last_message_at": last_at,
                        "resolved_at": last_at if status == "resolved" else None,
                        "message_count": 1,
                        "created_at": opened_at,
                        "updated_at": last_at,
                    }
                )
                openers.append(
                    _message(cid, customer_id, channel, "in", None, rnd.choice(CUSTOMER_TEXTS), last_at, "received")
                )
                if rnd.random() < 0.3:
                    tags.append({"conversation_id": cid, "tag": rnd.choice(TAGS), "created_at": opened_at})

            big_id = new_id()
            big_customer = customers[0]
            started = now - timedelta(seconds=30 * MESSAGES)
            conversations.append(
                {
                    "id": big_id,
                    "customer_id": big_customer,
                    "channel": "email",
                    "inbox_id": inboxes["email"],
                    "subject": "A very long thread (5,000 messages)",
                    "status": "open",
                    "priority": "high",
                    "assignee_id": agent_id,
                    "snoozed_until": None,
                    "last_message_at": now,
                    "resolved_at": None,
                    "message_count": MESSAGES,
                    "created_at": started,
                    "updated_at": now,
                }
            )
            tags.append({"conversation_id": big_id, "tag": "vip", "created_at": started})
            thread = []
            for i in range(MESSAGES):
                at = started + timedelta(seconds=30 * (i + 1))
                roll = rnd.random()
                if roll < 0.45:
                    row = _message(
                        big_id, big_customer, "email", "in", None, rnd.choice(CUSTOMER_TEXTS), at, "received"
                    )
                elif roll < 0.9:
                    row = _message(big_id, big_customer, "email", "out", agent_id, rnd.choice(AGENT_TEXTS), at, "sent")
                else:
                    row = _message(big_id, big_customer, "email", "note", agent_id, rnd.choice(NOTE_TEXTS), at, "sent")
                thread.append(row)

            await many(s, Conversation, conversations)
            await many(s, ConversationTag, tags)
            await many(s, Message, openers + thread)
    finally:
        await db.dispose()
    return Seeded(
        email=email,
        password=password,
        big_conversation_id=big_id,
        conversations=len(conversations),
        messages_in_big=len(thread),
        messages_total=len(openers) + len(thread),
    )


def _message(
    conversation_id: uuid.UUID,
    customer_id: uuid.UUID,
    channel: str,
    direction: str,
    author_id: uuid.UUID | None,
    text: str,
    at: Any,
    delivery_status: str,
) -> dict[str, Any]:
    from frontdesk.ids import new_id

    author_type = "customer" if direction == "in" else "agent"
    return {
        "id": new_id(),
        "conversation_id": conversation_id,
        "customer_id": customer_id,
        "direction": direction,
        "channel": channel,
        "author_type": author_type,
        "author_id": author_id,
        "text": text,
        "html": None,
        "external_id": f"bench-{uuid.uuid4().hex}" if direction == "in" else None,
        "delivery_status": delivery_status,
        "meta": {},
        "created_at": at,
        "status_at": at,
    }


# -- the browser --------------------------------------------------------------------------------


async def sign_in(base_url: str, email: str, password: str) -> str:
    """The agent's session cookie, from the real sign-in endpoint."""
    import httpx

    from frontdesk.auth.deps import SESSION_COOKIE

    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        resp = await client.post("/api/v1/auth/login", json={"email": email, "password": password})
        if resp.status_code != 200:
            raise BenchError(f"sign-in failed: {resp.status_code} {resp.text[:300]}")
        cookie = resp.cookies.get(SESSION_COOKIE)
        if not cookie:
            raise BenchError(f"sign-in answered 200 without a {SESSION_COOKIE} cookie")
        return cookie


@dataclass
class Target:
    name: str  # "ceiling" | "inbox" | "conversation"
    path: str
    marker: str  # how the error message names what never happened
    conversation_id: str | None = None


async def first_render(
    browser: Any,
    base_url: str,
    cookie: str,
    target: Target,
    timeout_s: float,
    srv: Any,
    slowest: list[str] | None = None,
) -> float:
    """Milliseconds from navigation start to ``target``'s first render, in a fresh browser context.

    ``slowest`` (when given) is filled with the requests that took longest before that moment.
    """
    from playwright.async_api import TimeoutError as PlaywrightTimeout

    from frontdesk.auth.deps import SESSION_COOKIE

    context = await browser.new_context(viewport=VIEWPORT, service_workers="block")
    problems: list[str] = []
    try:
        await context.add_cookies([{"name": SESSION_COOKIE, "value": cookie, "url": base_url}])
        await context.add_init_script(INIT_SCRIPT)
        page = await context.new_page()
        page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
        page.on("console", lambda msg: problems.append(f"console: {msg.text}") if msg.type == "error" else None)
        page.on(
            "response",
            lambda resp: problems.append(f"HTTP {resp.status} {resp.url}") if resp.status >= 400 else None,
        )
        if target.name == "ceiling":
            await page.goto(base_url + target.path, wait_until="domcontentloaded", timeout=timeout_s * 1000)
            ms = await page.evaluate("() => performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd")
            return float(ms)
        # Functions, not expressions: the desk's CSP forbids eval, which Playwright uses for expressions.
        read = "(id) => (id ? window.__fdBench.conversation[id] : window.__fdBench.inbox)"
        done = f"(id) => ({read})(id) !== undefined"
        await page.goto(base_url + target.path, wait_until="commit", timeout=timeout_s * 1000)
        try:
            await page.wait_for_function(done, arg=target.conversation_id, polling=50, timeout=timeout_s * 1000)
        except PlaywrightTimeout:
            detail = f"the desk never set {target.marker} within {timeout_s:.0f} s (page {page.url!r})"
            if problems:
                detail += "\n  " + "\n  ".join(problems[:8])
            tail = srv.log_tail(12).strip()
            if tail:
                detail += f"\nserver log tail:\n{tail}"
            raise BenchError(detail) from None
        ms = float(await page.evaluate(read, target.conversation_id))
        if failed := [p for p in problems if p.startswith("HTTP 5")]:
            # The desk sets its marker after an error too; a render of an error page is not a figure.
            detail = f"the {target.name} rendered, but requests failed: " + "; ".join(failed[:4])
            tail = srv.log_tail(12).strip()
            if tail:
                detail += f"\nserver log tail:\n{tail}"
            raise BenchError(detail)
        if slowest is not None:
            slowest[:] = await page.evaluate(SLOWEST_REQUESTS, ms)
        return ms
    finally:
        await context.close()


def check_browser() -> None:
    if missing := chromium_missing():
        raise BenchError(f"{missing}: apt-get install -y chromium")
    if missing := playwright_missing():
        raise BenchError(f"{missing}: pip install -e '.[dev]'")


async def measure(
    base_url: str, cookie: str, seeded: Seeded, runs: int, timeout_s: float, srv: Any
) -> dict[str, list[float]]:
    cid = str(seeded.big_conversation_id)
    targets = [
        Target("ceiling", "/", "the sign-in page's DOMContentLoaded"),
        Target("inbox", "/desk", "data-inbox-ready"),
        Target("conversation", f"/desk#/c/{cid}", f'data-conversation-ready="{cid}"', conversation_id=cid),
    ]
    times: dict[str, list[float]] = {t.name: [] for t in targets}
    async with launch_chromium() as browser:
        log(f"browser: Chromium {browser.version}; warm-up round (not counted)")
        for target in targets:
            ms = await first_render(browser, base_url, cookie, target, timeout_s, srv)
            log(f"  warm-up {target.name}: {ms:.1f} ms")
        slowest: dict[str, list[str]] = {}
        for n in range(1, runs + 1):
            line = []
            for target in targets:
                slowest[target.name] = []
                ms = await first_render(browser, base_url, cookie, target, timeout_s, srv, slowest[target.name])
                times[target.name].append(ms)
                line.append(f"{target.name} {ms:.1f} ms")
            log(f"run {n}/{runs}: " + ", ".join(line))
        for name, requests in slowest.items():
            if name != "ceiling" and requests:
                log(f"  slowest requests before the {name} rendered (last run): " + "; ".join(requests))
    return times


def p50(values: list[float]) -> float:
    return round(statistics.median(values), 1)


def run(backend: str, runs: int, timeout_s: float) -> dict[str, Any]:
    started = time.perf_counter()
    with workdir("fd-bench-desktop-") as wd, fresh_database(backend, wd) as url:
        log(f"{backend}: seeding {CONVERSATIONS:,} conversations and one of {MESSAGES:,} messages")
        t0 = time.perf_counter()
        seeded = asyncio.run(seed(url))
        seed_s = time.perf_counter() - t0
        log(
            f"{backend}: seeded {seeded.conversations:,} conversations, "
            f"{seeded.messages_total:,} messages in {seed_s:.1f}s"
        )
        with server(url, wd) as srv:
            log(f"{backend}: server up at {srv.base_url}")
            cookie = asyncio.run(sign_in(srv.base_url, seeded.email, seeded.password))
            times = asyncio.run(measure(srv.base_url, cookie, seeded, runs, timeout_s, srv))
    ceiling = p50(times["ceiling"])
    inbox = p50(times["inbox"])
    conversation = p50(times["conversation"])
    return {
        "benchmark": "desktop",
        "backend": backend,
        "conversations": seeded.conversations,
        "messages": seeded.messages_in_big,
        "runs": runs,
        "inbox_first_render_p50_ms": inbox,
        "conversation_first_render_p50_ms": conversation,
        "ceiling_first_render_p50_ms": ceiling,
        "inbox_ratio_to_ceiling": round(ceiling / inbox, 3) if inbox else None,
        "conversation_ratio_to_ceiling": round(ceiling / conversation, 3) if conversation else None,
        "inbox_first_render_ms": [round(v, 1) for v in times["inbox"]],
        "conversation_first_render_ms": [round(v, 1) for v in times["conversation"]],
        "ceiling_first_render_ms": [round(v, 1) for v in times["ceiling"]],
        "cache": "cold: a new browser context per run (empty HTTP cache), one warm-up round first",
        "viewport": f"{VIEWPORT['width']}x{VIEWPORT['height']}",
        "seed_seconds": round(seed_s, 1),
        "wall_seconds": round(time.perf_counter() - started, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 runs instead of 5, same data (< 30 s in all)")
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--runs", type=int, default=None, help="measured runs per page (default 5; --quick: 3)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for a page's readiness marker")
    opts = parser.parse_args()
    runs = opts.runs or (3 if opts.quick else 5)
    if runs < 1:
        parser.error("--runs must be at least 1")
    if opts.backend == "postgresql" and not postgres_reachable():
        log("PostgreSQL is not reachable (FRONTDESK_BENCH_POSTGRES_URL)")
        return 1
    try:
        check_browser()
        result = run(opts.backend, runs, opts.timeout)
    except BenchError as exc:
        log(f"desktop benchmark failed: {exc}")
        return 1
    result["quick"] = opts.quick
    emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
