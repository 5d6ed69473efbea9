"""Benchmark: inbound emails parsed per second, and parsed + stored per second.

Builds a corpus of real-world-shaped messages in memory (plain text, HTML alternatives with an
inline image, PDF and image attachments, KOI8-R and windows-1251 bodies, replies with quoted
history and signatures, threaded by In-Reply-To), then measures:

1. ``emails_parsed_per_s``: :func:`frontdesk.channels.email.parse.parse` alone, one core;
2. ``emails_stored_per_s`` per backend: :func:`receive_raw` through the real ingest writer (group
   commit) and a local attachment store, on a fresh migrated SQLite file and PostgreSQL database,
   with ``--concurrency`` deliveries in flight (like an MTA's parallel connections).

Progress goes to stderr; ONE JSON line goes to stdout.

    .venv/bin/python bench/mail.py [--quick] [--backend sqlite|postgresql|both]
"""
# ruff: noqa: RUF001  (Cyrillic text is what these samples are about)

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any, cast

from _common import emit, fresh_database, log, postgres_reachable, workdir

MAIL_DOMAIN = "support.example.net"
SENDERS = 400

EN = (
    "Hello,\n\nI ordered a pair of running shoes last Tuesday (order 4471-2208) and the tracking page "
    "has not moved since Friday. Could you check where the parcel is and when it will arrive?\n\n"
    "Thanks,\n"
)
RU = (
    "Здравствуйте!\n\nЯ оформил заказ на прошлой неделе, номер 4471-2208, но посылка до сих пор не пришла. "
    "Подскажите, пожалуйста, где она сейчас и когда её ждать?\n\nСпасибо,\n"
)
QUOTE = "\n".join(f"> {line}" for line in (EN * 3).splitlines())
SIGNATURE = "\n-- \nAnna Smith\nHead of Purchasing, ACME Ltd\n+44 20 7946 0958\n"
HTML = (
    "<html><head><style>p{{margin:0}}</style></head><body><div dir='ltr'><p>Hello,</p><p>the <b>blue</b> "
    "jacket I received is the wrong size (see photo):</p><img src='cid:{cid}' width='320'>"
    "<p>Can I exchange it for an <i>L</i>?</p><script>track()</script></div>"
    "<div class='gmail_quote'>On Mon, Support wrote:<blockquote>We have shipped your order.</blockquote></div>"
    "</body></html>"
)


def _base(rng: random.Random, i: int) -> EmailMessage:
    m = EmailMessage()
    n = rng.randrange(SENDERS)
    m["From"] = f"Customer {n} <customer{n}@example.com>"
    m["To"] = f"help@{MAIL_DOMAIN}"
    m["Subject"] = rng.choice(["Where is my order?", "Wrong size", "Refund please", "Вопрос по заказу"])
    m["Date"] = format_datetime(datetime.now(UTC))
    m["Message-ID"] = make_msgid(idstring=f"b{i}", domain="mail.example.com")
    return m


def build_corpus(n: int, seed: int = 7) -> list[bytes]:
    """``n`` distinct messages of the mix described in the module docstring."""
    rng = random.Random(seed)
    pdf = b"%PDF-1.4\n" + os.urandom(48 * 1024)
    jpeg = b"\xff\xd8\xff\xe0" + os.urandom(120 * 1024)
    png = b"\x89PNG\r\n\x1a\n" + os.urandom(20 * 1024)
    earlier: list[str] = []
    out: list[bytes] = []
    for i in range(n):
        m = _base(rng, i)
        kind = rng.random()
        if kind < 0.35:  # plain text
            m.set_content(EN + "Anna" + SIGNATURE)
        elif kind < 0.55:  # HTML alternative with an inline image
            cid = make_msgid(domain="x")[1:-1]
            m.set_content(EN)
            m.add_alternative(HTML.format(cid=cid), subtype="html")
            html_part = cast(list[EmailMessage], m.get_payload())[1]
            html_part.add_related(png, maintype="image", subtype="png", cid=f"<{cid}>")
        elif kind < 0.70:  # attachments
            m.set_content(EN + "Invoice and a photo attached.")
            m.add_attachment(pdf, maintype="application", subtype="pdf", filename="invoice-4471.pdf")
            if rng.random() < 0.5:
                m.add_attachment(jpeg, maintype="image", subtype="jpeg", filename="фото.jpg")
        elif kind < 0.82:  # Cyrillic charsets
            m.set_content(RU + "Иван", charset=rng.choice(["koi8-r", "windows-1251"]), cte="8bit")
        else:  # a reply with quoted history
            if earlier:
                parent = rng.choice(earlier)
                m["In-Reply-To"] = parent
                m["References"] = parent
            m.set_content("Any news on this?\n\nOn Mon, 23 Nov 2026 at 10:00, Support <help@x> wrote:\n" + QUOTE)
        earlier.append(str(m["Message-ID"]))
        out.append(m.as_bytes())
    return out


def bench_parse(corpus: list[bytes], seconds: float) -> dict[str, Any]:
    from frontdesk.channels.email.parse import parse

    parsed = 0
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        for raw in corpus:
            parse(raw)
            parsed += 1
    elapsed = time.perf_counter() - started
    return {"emails": parsed, "seconds": round(elapsed, 2), "emails_parsed_per_s": round(parsed / elapsed, 1)}


async def _store(url: str, root: Path, corpus: list[bytes], concurrency: int) -> dict[str, Any]:
    from frontdesk.channels.email.inbound import EmailComponents, receive_raw
    from frontdesk.conversations.ingest import IngestWriter
    from frontdesk.db import Database
    from frontdesk.settings import Settings
    from frontdesk.storage import LocalStore

    settings = Settings(
        database_url=url, data_dir=root / "var", secret_key="bench-secret-0123456789", mail_domain=MAIL_DOMAIN
    )
    db = Database(url)
    writer = IngestWriter(db, settings)
    await writer.start()
    comp = EmailComponents(db=db, settings=settings, ingest=writer, store=LocalStore(root / "attachments"))
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    queue = list(reversed(corpus))

    async def worker() -> None:
        while queue:
            raw = queue.pop()
            t0 = time.perf_counter()
            outcome = await receive_raw(comp, raw)
            latencies.append(time.perf_counter() - t0)
            statuses[outcome.status] = statuses.get(outcome.status, 0) + 1

    try:
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    finally:
        await writer.stop()
        await db.dispose()
    latencies.sort()
    return {
        "emails": len(corpus),
        "seconds": round(elapsed, 2),
        "emails_stored_per_s": round(len(corpus) / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 1),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 1),
        "outcomes": statuses,
        "writer_batches": writer.batches,
    }


def bench_store(backend: str, corpus: list[bytes], concurrency: int) -> dict[str, Any]:
    with workdir("fd-bench-email-") as root, fresh_database(backend, root) as url:
        log(f"{backend}: storing {len(corpus)} emails with {concurrency} in flight")
        result = asyncio.run(_store(url, root, corpus, concurrency))
        log(f"{backend}: {result['emails_stored_per_s']} emails/s, p99 {result['p99_ms']} ms")
        return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short runs (< 30 s in all): checks that it works")
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default=None)
    parser.add_argument("--concurrency", type=int, default=16, help="deliveries in flight while storing")
    opts = parser.parse_args()

    pg = postgres_reachable()
    if opts.backend in (None, "both"):
        backends = ["sqlite", "postgresql"] if pg else ["sqlite"]
        if not pg:
            log("PostgreSQL not reachable; measuring SQLite only")
    else:
        backends = [opts.backend]

    started = time.perf_counter()
    n_corpus, parse_seconds, n_store = (200, 3.0, 300) if opts.quick else (1000, 15.0, 3000)
    log(f"building a corpus of {n_corpus} emails")
    corpus = build_corpus(n_corpus)
    sizes = sorted(len(r) for r in corpus)
    log(f"corpus: median {sizes[len(sizes) // 2]} bytes, largest {sizes[-1]} bytes; parsing for {parse_seconds} s")
    parsed = bench_parse(corpus, parse_seconds)
    log(f"parse: {parsed['emails_parsed_per_s']} emails/s")
    result: dict[str, Any] = {
        "benchmark": "email",
        "quick": opts.quick,
        "corpus_emails": n_corpus,
        "corpus_median_bytes": sizes[len(sizes) // 2],
        "emails_parsed_per_s": parsed["emails_parsed_per_s"],
    }
    store_corpus = build_corpus(n_store, seed=11)
    for backend in backends:
        figures = bench_store(backend, store_corpus, opts.concurrency)
        result[backend] = figures
        result[f"{backend}_emails_stored_per_s"] = figures["emails_stored_per_s"]
    result["wall_seconds"] = round(time.perf_counter() - started, 1)
    emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
