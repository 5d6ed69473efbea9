"""HTTP/1.1 spoken by hand over one TCP connection, for tests that must see what a client library
hides: whether a kept-alive connection survives an answer, a chunked body sent piece by piece, an
answer that arrives while the body is still being sent."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson


@dataclass
class Answer:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def json(self) -> object:
        return orjson.loads(self.body)


class Connection:
    """One kept-alive HTTP/1.1 connection to ``host:port``."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, base_url: str) -> AsyncIterator[Connection]:
        host, port = base_url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            yield cls(reader, writer)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    def send_head(self, method: str, path: str, headers: dict[str, str] | None = None) -> None:
        lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())

    async def request(self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> Answer:
        head = dict(headers or {})
        if body or method in {"POST", "PUT", "PATCH"}:
            head["Content-Length"] = str(len(body))
        self.send_head(method, path, head)
        self.writer.write(body)
        await self.writer.drain()
        return await self.answer()

    async def answer(self) -> Answer:
        """The next answer on the connection; ``EOFError`` when the server closed it instead."""
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            raise EOFError(f"the server closed the connection ({len(exc.partial)} bytes of an answer)") from exc
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers: dict[str, str] = {}
        for line in header_lines:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        return Answer(int(status_line.split(" ")[1]), headers, body)

    async def send_chunked(self, chunks: Iterator[bytes], answered: asyncio.Future[Answer]) -> int:
        """Send ``chunks`` as a chunked body until done or ``answered`` (a pending :meth:`answer`)
        completes; a server that hangs up mid-body ends it too. Returns the body bytes sent."""
        sent = 0
        try:
            for chunk in chunks:
                if answered.done():
                    return sent
                self.writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                await self.writer.drain()
                sent += len(chunk)
            self.writer.write(b"0\r\n\r\n")
            await self.writer.drain()
        except (ConnectionError, OSError):
            pass  # the server stopped reading and closed: its answer is already on the way
        return sent


def rss_bytes(pid: int) -> int:
    """Resident memory of process ``pid`` (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for process {pid}")
