"""The SMTP receiver's limits: concurrent sessions, message size, memory per message.

- Over ``smtp_max_sessions`` concurrent sessions a new connection is answered ``421`` and closed;
  a session that ends frees its place.
- ``SIZE`` is announced in the EHLO answer and enforced (``MAIL FROM … SIZE=`` over it and DATA
  over it are both refused with ``552``; nothing is stored).
- A 20 MB message is spooled to disk as it arrives and parsed from there: a real server process
  (``frontdesk serve``) receives it with its peak resident memory growing by a fraction of the
  message size (it grew ~5x before), and the raw message and its attachment are stored intact.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import socket
import sqlite3
import subprocess
import sys
from email import policy
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import aiosmtplib
import httpx
import pytest
from sqlalchemy import func, select

from frontdesk.models import Message
from frontdesk.settings import Settings
from tests.builders.mail import deliver, until
from tests.integration.dns_server import DnsServer

DOMAIN = "support.example.net"


@pytest.fixture
def dns_zone() -> Any:
    zone = DnsServer().start()
    yield zone
    zone.stop()


@pytest.fixture
def settings(settings: Settings, dns_zone: DnsServer) -> Settings:
    return settings.model_copy(
        update={
            "smtp_listen": "127.0.0.1:0",
            "mail_domain": DOMAIN,
            "max_attachment_mb": 1,
            "smtp_max_sessions": 2,
            "run_loops": False,
            "dns_servers": [dns_zone.address],
        }
    )


def _port(app: Any) -> int:
    return int(app.state.smtp_receiver.address[1])


async def _connect(port: int) -> aiosmtplib.SMTP:
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=30, start_tls=False)
    await smtp.connect()
    return smtp


async def test_sessions_over_the_cap_are_answered_421_and_closed(app: Any) -> None:
    port = _port(app)
    first, second = await _connect(port), await _connect(port)
    try:
        # The third concurrent session: 421 as the greeting, then the server closes.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        greeting = await asyncio.wait_for(reader.readline(), 10)
        assert greeting.startswith(b"421 "), greeting
        assert await asyncio.wait_for(reader.read(), 10) == b""  # closed by the server
        writer.close()
        with pytest.raises(aiosmtplib.SMTPConnectResponseError) as refused:
            await _connect(port)
        assert refused.value.code == 421

        # A session that ends frees its place.
        await first.quit()
        receiver = app.state.smtp_receiver

        async def freed() -> bool:
            return receiver.sessions < 2

        await until(freed, "the server to see the session end")
        third = await _connect(port)
        await third.quit()
    finally:
        for smtp in (first, second):
            with contextlib.suppress(Exception):
                await smtp.quit()


async def test_size_is_announced_and_enforced(app: Any) -> None:
    port = _port(app)
    limit = 1024 * 1024
    smtp = await _connect(port)
    try:
        await smtp.ehlo()
        assert smtp.supports_extension("size")
        assert int(smtp.esmtp_extensions["size"]) == limit

        with pytest.raises(aiosmtplib.SMTPSenderRefused) as refused:
            await smtp.mail("anna@example.com", options=[f"SIZE={limit + 1}"])
        assert refused.value.code == 552

        await smtp.rset()
        await smtp.mail("anna@example.com")
        await smtp.rcpt(f"help@{DOMAIN}")
        big = EmailMessage()
        big["From"] = "anna@example.com"
        big["To"] = f"help@{DOMAIN}"
        big["Subject"] = "too big"
        big.set_content("x" * 70 + "\n" * 1)
        big.add_attachment(os.urandom(limit), maintype="application", subtype="octet-stream", filename="big.bin")
        with pytest.raises(aiosmtplib.SMTPDataError) as too_big:
            await smtp.data(big.as_bytes(policy=policy.SMTP))
        assert too_big.value.code == 552
    finally:
        with contextlib.suppress(Exception):
            await smtp.quit()
    async with app.state.db.transaction() as s:
        assert await s.scalar(select(func.count()).select_from(Message)) == 0


# -- a real server process: peak memory while receiving a 20 MB message --------------------------


def _free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _status(pid: int, field: str) -> int:
    """A ``/proc/<pid>/status`` figure in bytes (VmRSS, VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"{field} not in /proc/{pid}/status")


def _big_message(size: int) -> tuple[bytes, bytes, str]:
    payload = os.urandom(size * 3 // 4)  # base64 makes it ~4/3 larger
    m = EmailMessage()
    m["From"] = "Anna <anna@example.com>"
    m["To"] = f"help@{DOMAIN}"
    m["Subject"] = "The scans you asked for"
    msgid = make_msgid(domain="example.com")
    m["Message-ID"] = msgid
    m.set_content("Here they are.\n")
    m.add_attachment(payload, maintype="application", subtype="octet-stream", filename="scans.bin")
    return m.as_bytes(policy=policy.SMTP), payload, msgid.strip("<>")


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc (peak RSS reset)")
async def test_a_20mb_message_is_stored_intact_with_bounded_memory(tmp_path: Path, dns_zone: DnsServer) -> None:
    smtp_port, http_port = _free_port(), _free_port()
    data_dir = tmp_path / "var"
    env = {
        **os.environ,
        "FRONTDESK_DATA_DIR": str(data_dir),
        "FRONTDESK_DATABASE_URL": "",
        "FRONTDESK_SECRET_KEY": "test-secret-key-0123456789",
        "FRONTDESK_SMTP_LISTEN": f"127.0.0.1:{smtp_port}",
        "FRONTDESK_MAIL_DOMAIN": DOMAIN,
        "FRONTDESK_MAX_ATTACHMENT_MB": "25",
        "FRONTDESK_RUN_LOOPS": "false",
        "FRONTDESK_DNS_SERVERS": json.dumps([dns_zone.address]),
        "FRONTDESK_LOG_LEVEL": "warning",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "frontdesk", "serve", "--host", "127.0.0.1", "--port", str(http_port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        async with httpx.AsyncClient() as http:

            async def ready() -> bool:
                assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "server exited"
                try:
                    return (await http.get(f"http://127.0.0.1:{http_port}/readyz")).status_code == 200
                except httpx.HTTPError:
                    return False

            await until(ready, "the server to start", timeout=90)
        # Warm up: the first message loads the code paths (parsers, DNS, SQL caches).
        small = EmailMessage()
        small["From"] = "warm@example.com"
        small["To"] = f"help@{DOMAIN}"
        small["Subject"] = "warm up"
        small["Message-ID"] = make_msgid(domain="example.com")
        small.set_content("hi")
        small.add_attachment(os.urandom(300_000), maintype="application", subtype="octet-stream", filename="a.bin")
        await deliver(smtp_port, small.as_bytes(policy=policy.SMTP), "warm@example.com", [f"help@{DOMAIN}"])

        raw, payload, msgid = _big_message(20 * 1024 * 1024)
        Path(f"/proc/{proc.pid}/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
        before = _status(proc.pid, "VmRSS")
        code, answer = await deliver(smtp_port, raw, "anna@example.com", [f"help@{DOMAIN}"])
        peak = _status(proc.pid, "VmHWM")
        assert code == 250
        assert "accepted" in answer, answer
        growth = peak - before
        # Before spooling, the peak grew by ~190 MB for this 21.5 MB message (the DATA lines, the
        # joined bytes, the parsed tree, the decoded part…). Spooled, it grows by a few MB (lines and
        # chunks in flight, the 1 MB in-memory head of the spool file): half the message is generous.
        assert growth < len(raw) // 2, f"peak RSS grew by {growth / 1e6:.1f} MB for a {len(raw) / 1e6:.1f} MB message"

        with sqlite3.connect(data_dir / "frontdesk.db") as conn:
            row = conn.execute("SELECT id, meta FROM messages WHERE external_id = ?", (msgid,)).fetchone()
            assert row is not None, "the message was not stored"
            meta = json.loads(row[1])
            files = conn.execute(
                "SELECT filename, size, sha256, storage_key FROM attachments WHERE message_id = ?", (row[0],)
            ).fetchall()
        store = data_dir / "attachments"
        stored_raw = (store / meta["raw_key"]).read_bytes()
        assert hashlib.sha256(stored_raw).hexdigest() == hashlib.sha256(raw).hexdigest()
        assert [(f[0], f[1]) for f in files] == [("scans.bin", len(payload))]
        assert files[0][2] == hashlib.sha256(payload).hexdigest()
        assert hashlib.sha256((store / files[0][3]).read_bytes()).hexdigest() == files[0][2]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
