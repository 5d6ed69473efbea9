"""Kill -9 the server between the commit of a reply and its delivery: after a restart the
message is delivered exactly once (SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from frontdesk.db import Database
from frontdesk.models import Conversation, Customer, Inbox, Message, OutboxItem
from tests.builders import make_token, make_user
from tests.conftest import truncate_all
from tests.integration.webhook_sink import Sink, free_port

pytestmark = pytest.mark.slow

SECRET = "crash-test-secret"
ROOT = Path(__file__).resolve().parents[2]


def start_server(database_url: str, data_dir: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "FRONTDESK_DATABASE_URL": database_url,
        "FRONTDESK_DATA_DIR": str(data_dir),
        "FRONTDESK_SECRET_KEY": "crash-test-secret-key-0123456789",
        "FRONTDESK_AUTO_MIGRATE": "false",
        "FRONTDESK_TIMERS_POLL_SECONDS": "0.2",
        "FRONTDESK_TIMERS_LEASE_SECONDS": "3",
        "FRONTDESK_OUTBOUND_ALLOW": "127.0.0.1/32",  # the receiver is local (netguard refuses it by default)
    }
    env.pop("FRONTDESK_REDIS_URL", None)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "frontdesk.app:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"server did not start:\n{log.read_text()[-3000:]}")


async def message_state(db: Database, message_id: uuid.UUID) -> tuple[str, str | None, int]:
    async with db.transaction() as s:
        msg = await s.get(Message, message_id)
        assert msg is not None
        items = (await s.execute(OutboxItem.__table__.select().where(OutboxItem.message_id == message_id))).all()
    return msg.delivery_status, msg.external_id, len(items)


async def test_killed_between_commit_and_delivery_delivers_exactly_once(database_url: str, tmp_path: Path):
    db = Database(database_url)
    sink = Sink()  # its port is chosen, but nothing listens yet: the receiver is down
    servers: list[subprocess.Popen[bytes]] = []
    log = tmp_path / "server.log"
    try:
        user = await make_user(db)
        token = await make_token(db, user)
        async with db.transaction() as s:
            customer = Customer(name="Grace Hopper")
            inbox = Inbox(
                name=f"api-{uuid.uuid4().hex[:6]}",
                channel="api",
                public_token=uuid.uuid4().hex,
                config={"webhook_url": sink.url, "webhook_secret": SECRET},
            )
            s.add_all([customer, inbox])
            await s.flush()
            conv = Conversation(customer_id=customer.id, channel="api", inbox_id=inbox.id)
            s.add(conv)

        proc, base = start_server(database_url, tmp_path / "var", log)
        servers.append(proc)
        r = httpx.post(
            f"{base}/api/v1/conversations/{conv.id}/messages",
            json={"text": "Your refund is on its way"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert r.status_code == 201, r.text
        assert r.json()["delivery_status"] == "queued"
        message_id = uuid.UUID(r.json()["id"])
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

        # Acknowledged (201) means durable: the message and its delivery job survived the kill.
        status, _, items = await message_state(db, message_id)
        assert (status, items) == ("queued", 1)
        assert sink.received == []

        sink.start()
        proc, base = start_server(database_url, tmp_path / "var", log)
        servers.append(proc)
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline:
            status, external_id, items = await message_state(db, message_id)
            if status != "queued":
                break
            time.sleep(0.2)
        assert (status, items) == ("sent", 0), log.read_text()[-3000:]
        time.sleep(1.0)  # anything still in flight would land now
        assert len(sink.received) == 1
        got = sink.received[0]
        assert got.json()["message"]["id"] == str(message_id)
        assert got.json()["message"]["text"] == "Your refund is on its way"
        assert external_id == "ext-1"
    finally:
        for p in servers:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
        sink.stop()
        await truncate_all(db)
        await db.dispose()
