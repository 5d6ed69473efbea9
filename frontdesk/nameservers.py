"""The DNS servers Frontdesk asks itself: one setting for every lookup it makes on its own.

``FRONTDESK_DNS_SERVERS`` (``Settings.dns_servers``) lists them — ``1.2.3.4``, ``1.2.3.4:5353``,
``::1``, ``[::1]:5353`` — and ``FRONTDESK_DNS_TIMEOUT`` bounds one lookup. Empty: the system
resolver (``/etc/resolv.conf``). Two parts of Frontdesk resolve names with dnspython through this
module: the SPF/DKIM/DMARC checks of inbound mail (``channels/email/auth.py``) and the addresses of
admin-set outbound destinations (``netguard.py``: webhooks, API-inbox URLs, IMAP hosts).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

DEFAULT_TIMEOUT = 5.0


def parse(value: str) -> tuple[str, int]:
    """``(ip, port)`` of one server; :class:`ValueError` naming the value when it is not one."""
    text = value.strip()
    host, port = text, "53"
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else "53" if not rest else ""
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    try:
        ip = ipaddress.ip_address(host)
        number = int(port)
    except ValueError:
        raise ValueError(f"{value!r}: give a DNS server as ip, ip:port or [ipv6]:port") from None
    if not 0 < number < 65536:
        raise ValueError(f"{value!r}: the port must be 1-65535")
    return str(ip), number


def servers_of(values: Iterable[str]) -> tuple[tuple[str, int], ...]:
    return tuple(parse(v) for v in values if v and v.strip())


def configure(resolver: Any, servers: Iterable[tuple[str, int]], timeout: float) -> Any:
    """Point a dnspython (async) resolver made with ``configure=False`` at ``servers``."""
    import dns.nameserver

    resolver.nameservers = [dns.nameserver.Do53Nameserver(ip, port) for ip, port in servers]
    resolver.timeout = timeout
    resolver.lifetime = timeout
    return resolver
