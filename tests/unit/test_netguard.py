"""netguard: which outbound addresses are refused, in every spelling the OS resolver accepts."""

from __future__ import annotations

import ipaddress
import re
import socket

import pytest

from frontdesk import netguard
from frontdesk.netguard import DestinationRefused, Policy, check_url, parse_literal, refusal

# (host as an admin might write it, why it is refused)
REFUSED = [
    ("127.0.0.1", "loopback"),
    ("127.1", "loopback"),
    ("127.0.1", "loopback"),
    ("2130706433", "loopback"),
    ("0x7f000001", "loopback"),
    ("0x7f.1", "loopback"),
    ("0177.0.0.1", "loopback"),
    ("0177.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("0", "unspecified"),
    ("0.0.0.0", "unspecified"),
    ("10.1.2.3", "private"),
    ("012.1", "private"),  # octal 012 = 10
    ("172.16.0.1", "private"),
    ("172.31.255.255", "private"),
    ("192.168.1.1", "private"),
    ("100.64.0.1", "carrier-grade NAT"),
    ("100.127.255.255", "carrier-grade NAT"),
    ("169.254.169.254", "link-local"),
    ("2852039166", "link-local"),  # 169.254.169.254 as one number
    ("0xa9.0xfe.0xa9.0xfe", "link-local"),
    ("0251.0376.0251.0376", "link-local"),
    ("169.254.43518", "link-local"),
    ("192.0.0.8", "reserved"),
    ("192.0.2.10", "documentation"),
    ("198.18.0.1", "benchmarking"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
    ("::1", "loopback"),
    ("[::1]", "loopback"),
    ("0:0:0:0:0:0:0:1", "loopback"),
    ("::", "unspecified"),
    ("[::ffff:a9fe:a9fe]", "link-local"),
    ("::ffff:169.254.169.254", "link-local"),
    ("::ffff:127.0.0.1", "loopback"),
    ("::ffff:7f00:1", "loopback"),
    ("::ffff:10.0.0.1", "private"),
    ("::ffff:0:a9fe:a9fe", "link-local"),  # IPv4-translated
    ("::127.0.0.1", "IPv4-compatible"),
    ("::169.254.169.254", "IPv4-compatible"),
    ("::8.8.8.8", "IPv4-compatible"),
    ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
    ("2002:a9fe:a9fe::1", "link-local"),  # 6to4 of 169.254.169.254
    ("64:ff9b::a9fe:a9fe", "link-local"),  # NAT64 of 169.254.169.254
    ("64:ff9b::127.0.0.1", "loopback"),
    ("64:ff9b:1::1", "local-use NAT64"),
    ("fc00::1", "unique local"),
    ("fd12:3456:789a::1", "unique local"),
    ("fe80::1", "link-local"),
    ("fe80::1%eth0", "link-local"),
    ("fec0::1", "site-local"),
    ("ff02::1", "multicast"),
    ("2001:db8::1", "documentation"),
    ("2001::1", "Teredo"),
    ("100::1", "discard"),
    ("4000::1", "not global unicast"),
]

# Public addresses that must pass, in a few spellings.
ALLOWED = [
    ("8.8.8.8", "8.8.8.8"),
    ("93.184.216.34", "93.184.216.34"),
    ("1.1.1.1", "1.1.1.1"),
    ("16843009", "1.1.1.1"),
    ("0x08080808", "8.8.8.8"),
    ("100.63.255.255", "100.63.255.255"),  # just below CGNAT
    ("100.128.0.0", "100.128.0.0"),  # just above
    ("172.32.0.1", "172.32.0.1"),  # just outside 172.16/12
    ("2606:4700:4700::1111", "2606:4700:4700::1111"),
    ("[2a00:1450:4001:82b::200e]", "2a00:1450:4001:82b::200e"),
    ("::ffff:8.8.8.8", "::ffff:808:808"),
    ("2002:0808:0808::1", "2002:808:808::1"),  # 6to4 of a public address
    ("64:ff9b::8.8.8.8", "64:ff9b::808:808"),  # NAT64 of a public address
]


@pytest.mark.parametrize(("host", "why"), REFUSED)
def test_refused_addresses_in_every_spelling(host: str, why: str):
    ip = parse_literal(host)
    assert ip is not None, f"{host} is an address the OS resolver would read"
    reason = refusal(ip)
    assert reason is not None, (host, ip)
    assert why in reason, (host, ip, reason)


@pytest.mark.parametrize(("host", "canonical"), ALLOWED)
def test_public_addresses_pass(host: str, canonical: str):
    ip = parse_literal(host)
    assert ip is not None
    assert str(ip) == canonical
    assert refusal(ip) is None


@pytest.mark.parametrize("spelling", ["127.0.0.1", "127.1", "127.0.1", "2130706433", "0x7f.1", "0177.0.0.1", "1.2.3.4"])
def test_literals_read_as_the_os_resolver_reads_them(spelling: str):
    """Our reading of a numeric host equals glibc's inet_aton (what getaddrinfo uses)."""
    assert parse_literal(spelling) == ipaddress.IPv4Address(socket.inet_aton(spelling))


@pytest.mark.parametrize(
    "name", ["example.com", "hooks.internal", "1.2.3.4.5", "256.1.1.1", "08.1.1.1", "1..1", "0x", ""]
)
def test_names_and_invalid_numbers_are_not_literals(name: str):
    if name == "0x":  # glibc reads a bare "0x" as 0: so do we, and 0.0.0.0 is refused
        assert parse_literal(name) == ipaddress.IPv4Address(0)
        return
    assert parse_literal(name) is None


def test_allow_list_of_networks_and_hosts():
    policy = Policy.parse("10.0.0.0/8, 127.0.0.1, hooks.internal, *.corp.example ; fd00::/8")
    assert policy.refusal(ipaddress.ip_address("10.9.8.7")) is None
    assert policy.refusal(ipaddress.ip_address("127.0.0.1")) is None
    assert policy.refusal(ipaddress.ip_address("::ffff:127.0.0.1")) is None  # the same address, mapped
    assert "loopback" in (policy.refusal(ipaddress.ip_address("127.0.0.2")) or "")
    assert policy.refusal(ipaddress.ip_address("fd00::5")) is None
    assert "link-local" in (policy.refusal(ipaddress.ip_address("169.254.169.254")) or "")
    assert policy.host_allowed("HOOKS.internal.")
    assert policy.host_allowed("a.b.corp.example")
    assert not policy.host_allowed("corp.example.evil.com")
    assert not policy.host_allowed("evilhooks.internal")


@pytest.mark.parametrize("bad", ["10.0.0.0/33", "not a host!", "http://x", "*."])
def test_a_bad_allow_list_entry_is_named(bad: str):
    with pytest.raises(ValueError, match=re.escape(repr(bad))):
        Policy.parse(bad)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://127.1/",
        "http://2130706433/",
        "http://0x7f.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:a9fe:a9fe]/",
        "http://[::1]:9000/",
        "https://10.0.0.5/x",
        "http://localhost:8000/",  # resolved by the OS (/etc/hosts) to loopback
    ],
)
async def test_check_url_refuses_inside_destinations(url: str):
    with pytest.raises(DestinationRefused) as caught:
        await check_url(url, Policy())
    assert "FRONTDESK_OUTBOUND_ALLOW" in str(caught.value)


async def test_check_url_accepts_public_literals_unresolvable_names_and_allowed_ones():
    await check_url("https://93.184.216.34/hook", Policy())
    await check_url("https://name-that-does-not-resolve.invalid/hook", Policy())  # checked at connect time
    await check_url("http://127.0.0.1:8080/hook", Policy.parse("127.0.0.0/8"))
    await check_url("http://localhost:8080/hook", Policy.parse("localhost"))
    with pytest.raises(DestinationRefused, match="http"):
        await check_url("ftp://93.184.216.34/", Policy())


async def test_the_http_client_refuses_at_connect_time_before_any_byte_is_sent():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    try:
        async with netguard.http_client(Policy(), timeout=5) as client:
            with pytest.raises(DestinationRefused, match="loopback"):
                await client.post(f"http://127.1:{port}/hook", content=b"{}")
            with pytest.raises(DestinationRefused, match="link-local"):
                await client.get("http://[::ffff:a9fe:a9fe]/latest/meta-data/")
        with pytest.raises(TimeoutError):
            listener.accept()  # nobody connected
    finally:
        listener.close()
