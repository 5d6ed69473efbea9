"""Where attachment bytes live: a local directory or any S3-compatible object store.

One small interface (:class:`AttachmentStore`: ``put``/``get``/``delete`` by key) with two
backends, chosen by ``settings.attachments_backend``:

- :class:`LocalStore` — files under ``settings.effective_attachments_dir`` (embedded mode). Keys
  are checked (:func:`check_key`) and every path is resolved and proven to stay inside the root,
  so no key can reach outside it.
- :class:`S3Store` — path-style requests (``{endpoint}/{bucket}/{key}``) signed with AWS
  Signature Version 4 over ``httpx``; works with AWS S3, MinIO, Ceph, Garage, moto…

The database row (``models.Attachment``) holds the metadata and the key; the store only bytes.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import re
import uuid
from abc import ABC, abstractmethod
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import httpx

from frontdesk import clock

if TYPE_CHECKING:
    from frontdesk.settings import Settings

MAX_KEY_LENGTH = 500
_KEY_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


class StorageError(RuntimeError):
    """The store could not do what was asked (unreachable, refused, misconfigured)."""


class ObjectMissing(StorageError):
    """No object under that key."""


class UnsafeKey(ValueError):
    """A key that could escape the store's root or is not one this code would make."""


def check_key(key: str) -> str:
    """Return ``key`` if it is safe: ``/``-separated segments of ``[A-Za-z0-9._-]``, none ``..``.

    Segments may not start with a dot, so ``.``/``..``/hidden names are refused; absolute paths,
    backslashes, empty segments and NUL bytes are refused too.
    """
    if not key or len(key) > MAX_KEY_LENGTH:
        raise UnsafeKey("attachment key is empty or too long")
    for segment in key.split("/"):
        if not _KEY_SEGMENT.match(segment):
            raise UnsafeKey(f"unsafe attachment key: {key!r}")
    return key


def new_key(attachment_id: uuid.UUID, prefix: str = "attachments") -> str:
    """The key a new attachment is stored under: ``attachments/YYYY/MM/<id>``."""
    now = clock.now()
    return f"{prefix}/{now:%Y}/{now:%m}/{attachment_id.hex}"


class AttachmentStore(ABC):
    """Bytes by key. Implementations must be safe to share between concurrent requests."""

    @abstractmethod
    async def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        """Store ``data`` under ``key`` (replacing what was there)."""

    async def put_file(self, key: str, file: IO[bytes], content_type: str = "application/octet-stream") -> None:
        """Store the contents of a binary ``file`` (from its start) under ``key``.

        The default reads it whole and calls :meth:`put`; :class:`LocalStore` copies it in chunks,
        so a large email or attachment is never held in memory.
        """
        file.seek(0)
        data = await asyncio.to_thread(file.read)
        await self.put(key, data, content_type)

    @abstractmethod
    async def get(self, key: str) -> bytes:
        """The bytes under ``key``; :class:`ObjectMissing` if there are none."""

    @abstractmethod
    async def delete(self, key: str) -> None:
        """Remove ``key``; deleting a missing key is not an error."""

    async def close(self) -> None:  # noqa: B027 - optional hook, a no-op unless overridden
        """Release connections (no-op by default)."""


class LocalStore(AttachmentStore):
    """Files in a directory, written atomically (temporary file, then rename)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path_for(self, key: str) -> Path:
        check_key(key)
        root = self.root.resolve()
        path = (root / key).resolve()
        if not path.is_relative_to(root) or path == root:
            raise UnsafeKey(f"attachment key escapes the store: {key!r}")
        return path

    async def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        path = self.path_for(key)
        await asyncio.to_thread(self._write, path, data)

    async def put_file(self, key: str, file: IO[bytes], content_type: str = "application/octet-stream") -> None:
        path = self.path_for(key)
        await asyncio.to_thread(self._write_file, path, file)

    @staticmethod
    def _write_file(path: Path, file: IO[bytes]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        try:
            file.seek(0)
            with open(tmp, "wb") as fh:
                while chunk := file.read(1024 * 1024):
                    fh.write(chunk)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    async def get(self, key: str) -> bytes:
        path = self.path_for(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError as exc:
            raise ObjectMissing(key) from exc

    async def delete(self, key: str) -> None:
        path = self.path_for(key)
        await asyncio.to_thread(path.unlink, True)


# -- S3 ------------------------------------------------------------------------------------------

_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def sign_v4(
    *,
    method: str,
    url: str,
    headers: dict[str, str],
    payload_sha256: str,
    access_key: str,
    secret_key: str,
    region: str,
    service: str = "s3",
    query: dict[str, str] | None = None,
) -> dict[str, str]:
    """Headers for an AWS Signature Version 4 request (adds ``host``, dates and ``Authorization``).

    ``url`` is the full URL without its query; ``query`` the (unencoded) query parameters.
    """
    now = clock.now()
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    date = now.strftime("%Y%m%d")
    parts = urlsplit(url)
    signed = {k.lower(): " ".join(v.strip().split()) for k, v in headers.items()}
    signed["host"] = parts.netloc
    signed["x-amz-date"] = amz_date
    signed["x-amz-content-sha256"] = payload_sha256
    names = sorted(signed)
    canonical_headers = "".join(f"{n}:{signed[n]}\n" for n in names)
    signed_headers = ";".join(names)
    canonical_query = "&".join(
        f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted((query or {}).items())
    )
    canonical_request = "\n".join(
        [method, parts.path or "/", canonical_query, canonical_headers, signed_headers, payload_sha256]
    )
    scope = f"{date}/{region}/{service}/aws4_request"
    string_to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical_request.encode()).hexdigest()]
    )
    key = _hmac(_hmac(_hmac(_hmac(f"AWS4{secret_key}".encode(), date), region), service), "aws4_request")
    signature = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    signed["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={signed_headers}, Signature={signature}"
    )
    return signed


class S3Store(AttachmentStore):
    """An S3-compatible bucket, path-style addressing, SigV4-signed requests over httpx."""

    def __init__(
        self,
        endpoint: str,
        bucket: str,
        access_key: str,
        secret_key: str,
        region: str = "us-east-1",
        *,
        timeout: float = 30.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        if not endpoint or not bucket:
            raise StorageError("the S3 store needs an endpoint and a bucket (FRONTDESK_S3_ENDPOINT, _S3_BUCKET)")
        self.endpoint = endpoint.rstrip("/")
        self.bucket = bucket
        self.access_key = access_key
        self.secret_key = secret_key
        self.region = region
        self._client = client or httpx.AsyncClient(timeout=timeout)
        self._owns_client = client is None

    def _url(self, key: str | None = None) -> str:
        path = f"/{quote(self.bucket, safe='')}"
        if key is not None:
            path += "/" + quote(check_key(key), safe="/-_.~")
        return self.endpoint + path

    async def _request(
        self, method: str, key: str | None, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> httpx.Response:
        url = self._url(key)
        payload_hash = hashlib.sha256(body).hexdigest() if body else _EMPTY_SHA256
        signed = sign_v4(
            method=method,
            url=url,
            headers=headers or {},
            payload_sha256=payload_hash,
            access_key=self.access_key,
            secret_key=self.secret_key,
            region=self.region,
        )
        try:
            return await self._client.request(method, url, content=body or None, headers=signed)
        except httpx.HTTPError as exc:
            raise StorageError(f"S3 {method} {url} failed: {exc}") from exc

    @staticmethod
    def _fail(response: httpx.Response, what: str) -> StorageError:
        return StorageError(f"S3 {what} answered {response.status_code}: {response.text[:300]}")

    async def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        response = await self._request("PUT", key, data, {"content-type": content_type})
        if response.status_code != 200:
            raise self._fail(response, f"PUT {key}")

    async def get(self, key: str) -> bytes:
        response = await self._request("GET", key)
        if response.status_code == 404:
            raise ObjectMissing(key)
        if response.status_code != 200:
            raise self._fail(response, f"GET {key}")
        return response.content

    async def delete(self, key: str) -> None:
        response = await self._request("DELETE", key)
        if response.status_code not in (200, 204, 404):
            raise self._fail(response, f"DELETE {key}")

    async def create_bucket(self) -> None:
        """Create the bucket if it does not exist (for setup scripts and tests)."""
        body = b""
        if self.region != "us-east-1":  # us-east-1 is the default and refuses an explicit constraint
            body = (
                '<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
                f"<LocationConstraint>{self.region}</LocationConstraint></CreateBucketConfiguration>"
            ).encode()
        response = await self._request("PUT", None, body)
        if response.status_code == 200 or (response.status_code == 409 and "BucketAlreadyOwnedByYou" in response.text):
            return
        raise self._fail(response, f"create bucket {self.bucket}")

    async def close(self) -> None:
        if self._owns_client:
            await self._client.aclose()


def make_store(settings: Settings) -> AttachmentStore:
    """The store ``settings.attachments_backend`` names (``local`` or ``s3``)."""
    backend = settings.attachments_backend.strip().lower()
    if backend == "local":
        return LocalStore(settings.effective_attachments_dir)
    if backend == "s3":
        secret = settings.s3_secret_key.get_secret_value() if settings.s3_secret_key else ""
        return S3Store(
            endpoint=settings.s3_endpoint or "",
            bucket=settings.s3_bucket or "",
            access_key=settings.s3_access_key or "",
            secret_key=secret,
            region=settings.s3_region,
        )
    raise StorageError(f"unknown attachments backend {settings.attachments_backend!r} (use local or s3)")


def app_store(state: Any) -> AttachmentStore:
    """The attachment store of an app (``app.state``): made once from its settings, then kept.

    Raises :class:`StorageError` when the configured backend cannot be built.
    """
    store: AttachmentStore | None = getattr(state, "attachment_store", None)
    if store is None:
        store = make_store(state.settings)
        state.attachment_store = store
    return store
