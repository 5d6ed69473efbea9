"""Real parts for the e-mail tests: an authoritative DNS server, DKIM keys, SMTP delivery.

- :class:`DnsZone` is a real DNS server (dnslib) on a free loopback UDP port serving the TXT
  records a test puts in it (SPF, DKIM keys, DMARC policies); everything else is NXDOMAIN.
- :class:`BlackHole` is a UDP socket that never answers: a resolver pointed at it times out.
- :func:`dkim_key` makes an RSA key and the DKIM TXT record publishing it; :func:`dkim_sign`
  signs a message with dkimpy, as a sending server would.
- :func:`deliver` sends over SMTP with aiosmtplib (``MAIL FROM`` and ``RCPT TO`` as given).
"""

from __future__ import annotations

import asyncio
import base64
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

import aiosmtplib
import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from dnslib import QTYPE, RCODE, RR, TXT, DNSRecord
from dnslib.server import BaseResolver, DNSServer


class _Resolver(BaseResolver):
    def __init__(self, zone: DnsZone) -> None:
        self.zone = zone

    def resolve(self, request: DNSRecord, handler: Any) -> DNSRecord:
        reply = request.reply()
        qname = str(request.q.qname).rstrip(".").lower()
        self.zone.queries.append((qname, QTYPE[request.q.qtype]))
        records = self.zone.txt.get(qname)
        if records is None:
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        if request.q.qtype in (QTYPE.TXT, QTYPE.ANY):
            for value in records:
                chunks = [value[i : i + 255] for i in range(0, len(value), 255)] or [""]
                reply.add_answer(RR(request.q.qname, QTYPE.TXT, rdata=TXT(chunks), ttl=1))
        return reply  # the name exists; other types answer with no data


@dataclass
class DnsZone:
    """An authoritative DNS server for test domains; ``txt[name]`` lists the TXT values."""

    txt: dict[str, list[str]] = field(default_factory=dict)
    queries: list[tuple[str, str]] = field(default_factory=list)
    server: DNSServer | None = None

    def start(self) -> DnsZone:
        self.server = DNSServer(_Resolver(self), address="127.0.0.1", port=0)
        self.server.start_thread()
        return self

    @property
    def address(self) -> str:
        assert self.server is not None
        host, port = self.server.server.server_address[:2]
        return f"{host}:{port}"

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server.server.server_close()
            self.server = None

    def add(self, name: str, value: str) -> None:
        self.txt.setdefault(name.lower().rstrip("."), []).append(value)


class BlackHole:
    """A UDP socket that reads nothing and answers nothing: DNS queries to it time out."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))

    @property
    def address(self) -> str:
        host, port = self.sock.getsockname()
        return f"{host}:{port}"

    def close(self) -> None:
        self.sock.close()


@dataclass(frozen=True)
class DkimKey:
    private_pem: bytes
    record: str  # the TXT value for <selector>._domainkey.<domain>


def dkim_key(bits: int = 2048) -> DkimKey:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return DkimKey(pem, f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}")


def dkim_sign(
    raw: bytes,
    key: DkimKey,
    domain: str,
    selector: str = "s1",
    canonicalize: tuple[bytes, bytes] = (b"relaxed", b"simple"),
) -> bytes:
    """``raw`` with a DKIM-Signature header prepended (signs From, To, Subject, Message-ID, Date)."""
    header = dkim.sign(
        raw,
        selector.encode(),
        domain.encode(),
        key.private_pem,
        canonicalize=canonicalize,
        include_headers=[b"from", b"to", b"subject", b"message-id", b"date"],
    )
    return bytes(header) + raw


def message(frm: str, to: str, subject: str = "Hello", body: str = "Hello there", **headers: str) -> EmailMessage:
    m = EmailMessage()
    m["From"] = frm
    m["To"] = to
    m["Subject"] = subject
    m["Date"] = "Mon, 02 Mar 2026 10:00:00 +0000"
    m["Message-ID"] = make_msgid(domain=frm.rpartition("@")[2].strip(">") or "example.com")
    for name, value in headers.items():
        m[name.replace("_", "-")] = value
    m.set_content(body)
    return m


def as_bytes(m: EmailMessage) -> bytes:
    from email import policy

    return m.as_bytes(policy=policy.SMTP)


async def deliver(port: int, raw: bytes, mail_from: str, rcpts: list[str]) -> tuple[int, str]:
    """Send ``raw`` over SMTP to 127.0.0.1:``port``; the server's answer to the message."""
    errors, answer = await aiosmtplib.send(
        raw, sender=mail_from, recipients=rcpts, hostname="127.0.0.1", port=port, timeout=60, start_tls=False
    )
    assert not errors, errors
    code = answer.partition(" ")[0]
    return (int(code) if code.isdigit() else 250), answer


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)
