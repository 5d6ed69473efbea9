"""The local attachment store (safe keys, no path traversal) and the S3 request signing."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime

import pytest

from frontdesk import clock
from frontdesk.settings import Settings
from frontdesk.storage import LocalStore, ObjectMissing, S3Store, UnsafeKey, check_key, make_store, new_key, sign_v4


async def test_local_round_trip(tmp_path):
    store = LocalStore(tmp_path / "att")
    key = new_key(uuid.uuid4())
    await store.put(key, b"hello")
    assert await store.get(key) == b"hello"
    await store.put(key, b"replaced")
    assert await store.get(key) == b"replaced"
    assert [p.name for p in (tmp_path / "att").rglob("*") if p.is_file()] == [key.rsplit("/", 1)[1]]
    await store.delete(key)
    await store.delete(key)  # deleting twice is fine
    with pytest.raises(ObjectMissing):
        await store.get(key)


@pytest.mark.parametrize(
    "key",
    [
        "../secret",
        "a/../../secret",
        "/etc/passwd",
        "a//b",
        "a/./b",
        ".hidden",
        "a/..",
        "..",
        "a\\..\\b",
        "a\x00b",
        "",
        "x" * 501,
        "a/ b",
        "C:/windows",
    ],
)
async def test_local_store_refuses_unsafe_keys(tmp_path, key):
    root = tmp_path / "att"
    (tmp_path / "secret").write_bytes(b"top secret")
    store = LocalStore(root)
    with pytest.raises(UnsafeKey):
        await store.put(key, b"x")
    with pytest.raises(UnsafeKey):
        await store.get(key)
    with pytest.raises(UnsafeKey):
        await store.delete(key)
    assert (tmp_path / "secret").read_bytes() == b"top secret"


async def test_local_store_refuses_symlink_escape(tmp_path):
    root = tmp_path / "att"
    root.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "f").write_bytes(b"private")
    (root / "link").symlink_to(outside, target_is_directory=True)
    store = LocalStore(root)
    with pytest.raises(UnsafeKey):
        await store.get("link/f")


def test_check_key_accepts_generated_keys():
    key = new_key(uuid.uuid4())
    assert check_key(key) == key
    assert key.startswith("attachments/")


def test_signature_matches_botocore(monkeypatch):
    """Our SigV4 signature equals the AWS SDK's for the same request and instant."""
    botocore = pytest.importorskip("botocore")
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    instant = datetime(2026, 3, 1, 12, 30, 45, tzinfo=UTC)
    url = "http://127.0.0.1:9000/my-bucket/attachments/2026/03/abc.pdf"
    body = b"%PDF-1.4 hello"
    payload = hashlib.sha256(body).hexdigest()
    clock.set_clock(lambda: instant)
    try:
        ours = sign_v4(
            method="PUT",
            url=url,
            headers={"Content-Type": "application/pdf"},
            payload_sha256=payload,
            access_key="AKIDEXAMPLE",
            secret_key="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            region="eu-west-1",
        )
    finally:
        clock.set_clock(None)

    request = AWSRequest(method="PUT", url=url, data=body, headers={"Content-Type": "application/pdf"})
    monkeypatch.setattr("botocore.auth.get_current_datetime", lambda: instant)
    request.headers["X-Amz-Content-SHA256"] = payload
    S3SigV4Auth(Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"), "s3", "eu-west-1").add_auth(
        request
    )
    assert botocore is not None
    assert ours["authorization"] == request.headers["Authorization"]


def test_make_store_follows_settings(tmp_path):
    local = make_store(Settings(data_dir=tmp_path))
    assert isinstance(local, LocalStore)
    assert local.root == tmp_path / "attachments"
    s3 = make_store(
        Settings(
            attachments_backend="s3",
            s3_endpoint="http://127.0.0.1:9000",
            s3_bucket="b",
            s3_access_key="k",
            s3_secret_key="s",
        )
    )
    assert isinstance(s3, S3Store)
    with pytest.raises(Exception, match="unknown attachments backend"):
        make_store(Settings(attachments_backend="ftp"))
