"""Where Frontdesk may connect on an admin's behalf: globally routable unicast only, unless allowed.

Admins set URLs and hosts Frontdesk connects to (webhook subscriptions, an API inbox's
``webhook_url``, an e-mail inbox's IMAP host). Left alone, those reach the inside of the network
Frontdesk runs in: the cloud metadata service (169.254.169.254), the database, Redis, an admin
panel on 127.0.0.1. This module decides which addresses are fair game and connects only to
addresses it has checked:

- :func:`refusal` — why an address is not a public destination: loopback, private (RFC 1918,
  unique-local), link-local, shared/CGNAT (100.64/10), multicast, reserved, documentation,
  benchmarking, unspecified; IPv4 carried inside IPv6 (IPv4-mapped, IPv4-compatible, 6to4,
  NAT64 ``64:ff9b::/96``, IPv4-translated) is judged by the IPv4 address it carries.
- :func:`parse_literal` — the address a host string *is*, read the way the OS resolver reads it:
  ``127.1``, ``2130706433``, ``0x7f.1``, ``0177.0.0.1`` are all 127.0.0.1 (``inet_aton``);
  ``[::ffff:a9fe:a9fe]`` is 169.254.169.254 mapped into IPv6.
- :class:`Policy` — the allow-list (``FRONTDESK_OUTBOUND_ALLOW``: CIDRs and host names, for
  deployments whose webhooks or mail servers are internal) and the resolver to use
  (``FRONTDESK_DNS_SERVERS``, :mod:`frontdesk.nameservers`; default the OS resolver).
- :func:`checked_addresses` — resolve a host and check **every** address; one refused address
  refuses the host (a name that answers both public and private addresses is not trusted).
- :func:`http_client` — an ``httpx.AsyncClient`` whose connections go through
  :class:`GuardedBackend`: ``connect_tcp`` resolves, checks and connects to the checked IP
  itself, so there is no gap between the check and the connect for DNS rebinding to use; TLS
  still verifies and sends SNI for the host name in the URL. Redirects are not followed,
  environment proxies are not used (a proxy would connect to an address nobody checked).
- :func:`check_url` / :func:`check_host` — the same judgement when an admin saves a URL or host:
  a literal address is judged as is, a name after resolving it. A name that does not resolve
  yet is accepted (the check at connect time still applies).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import httpcore
import httpx

from frontdesk import nameservers

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class DestinationRefused(Exception):
    """The destination is not allowed; ``str()`` names the host, the address and the reason."""


class Unresolvable(OSError):
    """The host name has no address (or the resolver did not answer)."""


# -- which addresses are public ----------------------------------------------------------------

_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network

_IPV4_REFUSED: tuple[tuple[ipaddress.IPv4Network, str], ...] = (
    (_V4("0.0.0.0/8"), "unspecified ('this network')"),
    (_V4("10.0.0.0/8"), "private (RFC 1918)"),
    (_V4("100.64.0.0/10"), "shared address space (carrier-grade NAT)"),
    (_V4("127.0.0.0/8"), "loopback"),
    (_V4("169.254.0.0/16"), "link-local (cloud metadata services live here)"),
    (_V4("172.16.0.0/12"), "private (RFC 1918)"),
    (_V4("192.0.0.0/24"), "reserved (IETF protocol assignments)"),
    (_V4("192.0.2.0/24"), "reserved for documentation"),
    (_V4("192.88.99.0/24"), "reserved (6to4 relay anycast)"),
    (_V4("192.168.0.0/16"), "private (RFC 1918)"),
    (_V4("198.18.0.0/15"), "reserved for benchmarking"),
    (_V4("198.51.100.0/24"), "reserved for documentation"),
    (_V4("203.0.113.0/24"), "reserved for documentation"),
    (_V4("224.0.0.0/4"), "multicast"),
    (_V4("240.0.0.0/4"), "reserved (including broadcast)"),
)

_IPV6_REFUSED: tuple[tuple[ipaddress.IPv6Network, str], ...] = (
    (_V6("::/128"), "unspecified"),
    (_V6("::1/128"), "loopback"),
    (_V6("::/96"), "IPv4-compatible IPv6 (deprecated)"),
    (_V6("64:ff9b:1::/48"), "local-use NAT64"),
    (_V6("100::/64"), "reserved (discard-only)"),
    (_V6("2001::/23"), "reserved (IETF protocol assignments, Teredo)"),
    (_V6("2001:db8::/32"), "reserved for documentation"),
    (_V6("3fff::/20"), "reserved for documentation"),
    (_V6("fc00::/7"), "private (unique local)"),
    (_V6("fe80::/10"), "link-local"),
    (_V6("fec0::/10"), "site-local (deprecated)"),
    (_V6("ff00::/8"), "multicast"),
)
_GLOBAL_UNICAST_V6 = _V6("2000::/3")
_NAT64 = _V6("64:ff9b::/96")
_IPV4_TRANSLATED = _V6("::ffff:0:0:0/96")


def embedded_ipv4(ip: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, str] | None:
    """The IPv4 address an IPv6 address carries, and how (mapped, 6to4, NAT64, translated)."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped, "IPv4-mapped"
    if ip.sixtofour is not None:
        return ip.sixtofour, "6to4"
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF), "NAT64"
    if ip in _IPV4_TRANSLATED:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF), "IPv4-translated"
    return None


def refusal(ip: IPAddress) -> str | None:
    """Why ``ip`` is not a globally routable unicast address; ``None`` when it is one."""
    if isinstance(ip, ipaddress.IPv4Address):
        for net, reason in _IPV4_REFUSED:
            if ip in net:
                return reason
        return None
    carried = embedded_ipv4(ip)
    if carried is not None:
        inner, form = carried
        why = refusal(inner)
        return f"{form} form of {inner}, which is {why}" if why else None
    for net6, reason in _IPV6_REFUSED:
        if ip in net6:
            return reason
    if ip not in _GLOBAL_UNICAST_V6:
        return "reserved (not global unicast)"
    return None


# -- reading a host the way the OS resolver does -----------------------------------------------

_PART = re.compile(r"^(?:0[xX][0-9a-fA-F]*|0[0-7]*|[1-9][0-9]*)$")


def _inet_aton(text: str) -> ipaddress.IPv4Address | None:
    """``inet_aton`` (which ``getaddrinfo`` uses for numeric hosts): 1 to 4 dot-separated parts,
    each decimal, octal (leading ``0``) or hex (``0x``); the last part fills the remaining bytes."""
    parts = text.split(".")
    if not 1 <= len(parts) <= 4 or not all(_PART.match(p) for p in parts):
        return None
    values = []
    for p in parts:
        if p[:2].lower() == "0x":
            values.append(int(p[2:] or "0", 16))
        elif len(p) > 1 and p.startswith("0"):
            values.append(int(p, 8))
        else:
            values.append(int(p))
    *head, last = values
    if any(v > 255 for v in head) or last >= 1 << (8 * (4 - len(head))):
        return None
    number = last
    for i, v in enumerate(head):
        number |= v << (8 * (3 - i))
    return ipaddress.IPv4Address(number)


def parse_literal(host: str) -> IPAddress | None:
    """The address ``host`` denotes without any lookup (IPv4 in every ``inet_aton`` spelling,
    IPv6 with or without brackets and zone), or ``None`` for a name."""
    text = host.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if ":" in text:
        try:
            return ipaddress.IPv6Address(text)
        except ValueError:
            return None
    return _inet_aton(text)


def normalise_host(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


# -- the policy ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Policy:
    """What may be reached beyond the public internet, and how names are resolved."""

    networks: tuple[Network, ...] = ()
    hosts: frozenset[str] = frozenset()
    suffixes: tuple[str, ...] = ()  # ".internal" for an allow-list entry "*.internal"
    resolvers: tuple[tuple[str, int], ...] = ()  # DNS servers (ip, port); none = the OS resolver
    resolve_timeout: float = nameservers.DEFAULT_TIMEOUT

    @classmethod
    def parse(
        cls, allow: str | None = None, resolvers: Sequence[str] = (), timeout: float = nameservers.DEFAULT_TIMEOUT
    ) -> Policy:
        """From the settings' strings; :class:`ValueError` naming the entry that is not valid."""
        networks: list[Network] = []
        hosts: set[str] = set()
        suffixes: list[str] = []
        for raw in (allow or "").replace(";", ",").split(","):
            entry = raw.strip()
            if not entry:
                continue
            literal = parse_literal(entry) if "/" not in entry else None
            if "/" in entry or literal is not None:
                try:
                    networks.append(ipaddress.ip_network(str(literal) if literal else entry, strict=False))
                except ValueError as exc:
                    raise ValueError(f"{entry!r} is not a valid network (CIDR): {exc}") from exc
                continue
            name = normalise_host(entry)
            wildcard = name.startswith("*.") or name.startswith(".")
            label = name.lstrip("*").lstrip(".")
            if not label or not re.fullmatch(r"[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?", label):
                raise ValueError(f"{entry!r} is neither a network (CIDR) nor a host name")
            if wildcard:
                suffixes.append("." + label)
            else:
                hosts.add(label)
        return cls(tuple(networks), frozenset(hosts), tuple(suffixes), nameservers.servers_of(resolvers), timeout)

    def host_allowed(self, host: str) -> bool:
        name = normalise_host(host)
        return name in self.hosts or any(name.endswith(s) for s in self.suffixes)

    def address_allowed(self, ip: IPAddress) -> bool:
        candidates: list[IPAddress] = [ip]
        if isinstance(ip, ipaddress.IPv6Address):
            carried = embedded_ipv4(ip)
            if carried is not None:
                candidates.append(carried[0])
        return any(c.version == net.version and c in net for c in candidates for net in self.networks)

    def refusal(self, ip: IPAddress) -> str | None:
        """Why ``ip`` may not be connected to under this policy; ``None`` if it may."""
        if self.address_allowed(ip):
            return None
        return refusal(ip)


@lru_cache(maxsize=16)
def _cached_policy(allow: str | None, resolvers: tuple[str, ...], timeout: float) -> Policy:
    return Policy.parse(allow, resolvers, timeout)


def policy_of(settings: Any) -> Policy:
    """The policy the settings describe (``outbound_allow``; ``dns_servers``, ``dns_timeout``)."""
    if settings is None:
        from frontdesk.settings import get_settings

        settings = get_settings()
    return _cached_policy(
        getattr(settings, "outbound_allow", None),
        tuple(getattr(settings, "dns_servers", ()) or ()),
        float(getattr(settings, "dns_timeout", nameservers.DEFAULT_TIMEOUT)),
    )


# -- resolving -----------------------------------------------------------------------------------


async def _dns_lookup(host: str, policy: Policy) -> list[IPAddress]:
    import dns.asyncresolver
    import dns.exception
    import dns.resolver

    resolver = nameservers.configure(
        dns.asyncresolver.Resolver(configure=False), policy.resolvers, policy.resolve_timeout
    )

    async def one(rdtype: str) -> list[IPAddress]:
        try:
            answer = await resolver.resolve(host, rdtype, search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except dns.exception.DNSException as exc:
            raise Unresolvable(f"cannot resolve {host}: {type(exc).__name__}: {exc}") from exc
        return [ipaddress.ip_address(r.address) for r in answer]

    v4, v6 = await asyncio.gather(one("A"), one("AAAA"))
    return v4 + v6


async def _os_lookup(host: str, port: int, policy: Policy) -> list[IPAddress]:
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout=policy.resolve_timeout
        )
    except TimeoutError as exc:
        raise Unresolvable(f"cannot resolve {host}: no answer in {policy.resolve_timeout:g} s") from exc
    except (OSError, UnicodeError) as exc:
        raise Unresolvable(f"cannot resolve {host}: {exc}") from exc
    found: list[IPAddress] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if ip not in found:
            found.append(ip)
    return found


async def resolve(host: str, port: int, policy: Policy) -> list[IPAddress]:
    """Every address ``host`` stands for (a literal is its own address); :class:`Unresolvable` if none."""
    literal = parse_literal(host)
    if literal is not None:
        return [literal]
    name = normalise_host(host)
    if name == "localhost" or name.endswith(".localhost"):  # loopback by definition (RFC 6761 §6.3)
        return [ipaddress.IPv4Address("127.0.0.1"), ipaddress.IPv6Address("::1")]
    found = await (_dns_lookup(name, policy) if policy.resolvers else _os_lookup(name, port, policy))
    if not found:
        raise Unresolvable(f"cannot resolve {host}: no address")
    return found


async def checked_addresses(host: str, port: int, policy: Policy) -> list[IPAddress]:
    """Resolve ``host`` and check every address; :class:`DestinationRefused` if any is refused."""
    addresses = await resolve(host, port, policy)
    if policy.host_allowed(host):
        return addresses
    for ip in addresses:
        why = policy.refusal(ip)
        if why is not None:
            literal = parse_literal(host) is not None
            where = f"{ip}" if literal and normalise_host(host) == str(ip) else f"{host} ({ip})"
            raise DestinationRefused(
                f"{where} is {why}; Frontdesk connects only to public addresses unless "
                "FRONTDESK_OUTBOUND_ALLOW lists the host or network"
            )
    return addresses


# -- checks when an admin saves a destination -------------------------------------------------


async def check_host(host: str, policy: Policy, *, port: int = 0) -> None:
    """:class:`DestinationRefused` if ``host`` is (or resolves to) a refused address. A name that
    does not resolve now is accepted: it is checked again on every connection."""
    if not host or not host.strip():
        raise DestinationRefused("names no host")
    try:
        await checked_addresses(host, port, policy)
    except Unresolvable:
        return


async def check_url(url: str, policy: Policy) -> None:
    """:class:`DestinationRefused` (with the reason) unless ``url`` is an http(s) URL whose host
    may be reached; see :func:`check_host`."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise DestinationRefused(f"is not a valid URL: {exc}") from exc
    if parsed.scheme not in ("http", "https"):
        raise DestinationRefused("must be an http:// or https:// URL")
    if not parsed.host:
        raise DestinationRefused("must name a host")
    await check_host(parsed.host, policy, port=parsed.port or (443 if parsed.scheme == "https" else 80))


# -- connecting ----------------------------------------------------------------------------------


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend that connects only to checked addresses (see the module doc)."""

    def __init__(self, policy: Policy, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self.policy = policy
        self.inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await checked_addresses(host, port, self.policy)
        except Unresolvable as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        error: Exception | None = None
        for ip in addresses:  # the checked addresses, in the resolver's order
            try:
                return await self.inner.connect_tcp(
                    str(ip), port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None
        raise error

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise DestinationRefused("Unix sockets are not an outbound destination")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """``httpx.AsyncHTTPTransport`` over :class:`GuardedBackend`."""

    def __init__(self, policy: Policy, *, limits: httpx.Limits | None = None) -> None:
        limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)
        super().__init__(trust_env=False, limits=limits)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(policy),
        )


def http_client(policy: Policy, *, timeout: float) -> httpx.AsyncClient:
    """An HTTP client for admin-set URLs: checked connections, no redirects, no env proxies."""
    return httpx.AsyncClient(
        transport=GuardedTransport(policy), timeout=timeout, follow_redirects=False, trust_env=False
    )


def connect_tcp_sync(addresses: Iterable[IPAddress], port: int, timeout: float | None) -> socket.socket:
    """A TCP socket to the first of ``addresses`` (already checked) that answers."""
    error: OSError | None = None
    for ip in addresses:
        try:
            return socket.create_connection((str(ip), port), timeout=timeout)
        except OSError as exc:
            error = exc
    raise error or Unresolvable("no address to connect to")
