"""Real parts for the e-mail tests: an authoritative DNS server, DKIM keys, SMTP delivery.

- The authoritative DNS server for the test domains is :class:`tests.integration.dns_server.DnsServer`
  (TXT records for SPF, DKIM keys, DMARC policies: ``add(name, value)``).
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
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid

import aiosmtplib
import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


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
