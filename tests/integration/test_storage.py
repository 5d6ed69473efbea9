"""The S3 attachment store against a real S3-compatible server (moto), directly and through the API."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from pydantic import SecretStr

from frontdesk.storage import ObjectMissing, S3Store, StorageError, new_key
from tests.builders import agent, make_conversation, make_customer

ACCESS_KEY, SECRET_KEY = "test-access", "test-secret"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    pytest.importorskip("moto.server", reason="moto[server] is in the dev extra")
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "MOTO_PORT": str(port)},
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(endpoint + "/moto-api/", timeout=1)
                break
            except httpx.HTTPError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("moto_server did not start")
                time.sleep(0.1)
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def make_s3(endpoint: str, bucket: str | None = None, secret: str = SECRET_KEY) -> S3Store:
    store = S3Store(endpoint, bucket or f"fd-{uuid.uuid4().hex[:12]}", ACCESS_KEY, secret, region="eu-west-1")
    return store


async def test_s3_round_trip(s3_endpoint):
    store = await make_s3(s3_endpoint)
    try:
        await store.create_bucket()
        await store.create_bucket()  # idempotent
        key = new_key(uuid.uuid4())
        data = bytes(range(256)) * 100
        await store.put(key, data, "application/pdf")
        assert await store.get(key) == data
        await store.put(key, b"v2", "text/plain")
        assert await store.get(key) == b"v2"
        await store.delete(key)
        with pytest.raises(ObjectMissing):
            await store.get(key)
        await store.delete(key)  # already gone: fine
    finally:
        await store.close()


async def test_s3_errors_are_reported(s3_endpoint):
    store = await make_s3(s3_endpoint, bucket="no-such-bucket-here")
    try:
        with pytest.raises(StorageError):
            await store.put(new_key(uuid.uuid4()), b"x")
    finally:
        await store.close()
    unreachable = S3Store(f"http://127.0.0.1:{_free_port()}", "b", ACCESS_KEY, SECRET_KEY, timeout=2)
    try:
        with pytest.raises(StorageError):
            await unreachable.get("attachments/x")
    finally:
        await unreachable.close()


@pytest.fixture
def bucket() -> str:
    return f"fd-api-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def settings(settings, s3_endpoint, bucket):
    return settings.model_copy(
        update={
            "run_loops": False,
            "attachments_backend": "s3",
            "s3_endpoint": s3_endpoint,
            "s3_bucket": bucket,
            "s3_access_key": ACCESS_KEY,
            "s3_secret_key": SecretStr(SECRET_KEY),
            "s3_region": "eu-west-1",
        }
    )


async def test_api_attachments_on_s3(client, app, s3_endpoint, bucket):
    setup = await make_s3(s3_endpoint, bucket)
    await setup.create_bucket()
    _, headers = await agent(app)
    customer = await make_customer(app.state.db)
    conv = await make_conversation(app.state.db, customer)
    r = await client.post(
        "/api/v1/attachments",
        files={"file": ("notes.txt", "привет".encode(), "text/plain; charset=utf-8")},
        headers=headers,
    )
    assert r.status_code == 201, r.text
    att = r.json()
    assert att["content_type"] == "text/plain"
    # The bytes are really in the bucket, under a key of our own making.
    from frontdesk.models import Attachment

    async with app.state.db.transaction() as s:
        row = await s.get(Attachment, uuid.UUID(att["id"]))
    assert row is not None
    assert await setup.get(row.storage_key) == "привет".encode()
    await setup.close()

    r = await client.get(att["url"], headers=headers)
    assert r.status_code == 200
    assert r.content == "привет".encode()
    r = await client.post(
        f"/api/v1/conversations/{conv.id}/messages",
        json={"text": "see file", "attachment_ids": [att["id"]]},
        headers=headers,
    )
    assert r.status_code == 201
    assert r.json()["attachments"][0]["id"] == att["id"]
    store = app.state.attachment_store
    await store.close()
