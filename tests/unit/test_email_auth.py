"""The sender verdict without a network: DMARC records, alignment, evaluation, DKIM, A-R headers.

DNS answers come from an in-memory table here; the end-to-end tests (tests/integration/
test_email_auth.py) use a real DNS server and the real SMTP receiver.
"""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
from dkim.canonicalization import Relaxed, Simple
from hypothesis import given
from hypothesis import strategies as st

from frontdesk import nameservers
from frontdesk.channels.email import auth
from frontdesk.channels.email.auth import (
    DkimResult,
    DmarcRecord,
    DnsTempError,
    aligned,
    body_hash,
    check_dkim,
    evaluate_dmarc,
    find_dmarc,
    org_domain,
    parse_authentication_results,
    parse_dmarc,
)
from tests.builders.mail import DkimKey, as_bytes, dkim_key, dkim_sign, message


@pytest.fixture(scope="module")
def key() -> DkimKey:
    return dkim_key()


class Table(auth.DnsResolver):
    """A resolver answering TXT from a dict; ``"TEMP"`` as a value raises a temperror."""

    def __init__(self, records: dict[str, Any]) -> None:
        super().__init__(["127.0.0.1:1"], 1.0)
        self.records = records

    def txt(self, name: str) -> list[str]:
        value = self.records.get(name.rstrip(".").lower(), [])
        if value == "TEMP":
            raise DnsTempError(f"timeout {name}")
        return list(value)


# -- DMARC records and alignment ------------------------------------------------------------------


def test_parse_dmarc_reads_the_tags_and_refuses_what_is_not_a_record() -> None:
    r = parse_dmarc("v=DMARC1; p=reject; sp=none; adkim=s; aspf=r; pct=50; rua=mailto:x@example.com", "example.com")
    assert r == DmarcRecord("reject", "none", "s", "r", 50, "example.com")
    assert parse_dmarc("v=DMARC1;p=quarantine") == DmarcRecord("quarantine")
    assert parse_dmarc("v=spf1 -all") is None
    assert parse_dmarc("p=reject; v=DMARC1") is None  # v= must come first
    assert parse_dmarc("v=DMARC1; p=bogus") is None
    # RFC 7489 6.6.3: a bad or missing p= with a reporting address reads as p=none.
    assert parse_dmarc("v=DMARC1; rua=mailto:d@example.com") == DmarcRecord("none")
    assert parse_dmarc("v=DMARC1; p=reject; pct=x; adkim=q").adkim == "r"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("a", "b", "mode", "expected"),
    [
        ("example.com", "example.com", "s", True),
        ("example.com", "mail.example.com", "r", True),
        ("news.example.com", "mail.example.com", "r", True),
        ("news.example.com", "example.com", "s", False),
        ("example.com", "example.org", "r", False),
        ("shop.example.co.uk", "example.co.uk", "r", True),
        ("example.co.uk", "other.co.uk", "r", False),
        ("alice.github.io", "mallory.github.io", "r", False),  # a public suffix is no organisation
        ("EXAMPLE.com.", "example.COM", "s", True),
        ("example.com", "", "r", False),
    ],
)
def test_alignment(a: str, b: str, mode: str, expected: bool) -> None:
    assert aligned(a, b, mode) is expected


def test_org_domain() -> None:
    assert org_domain("a.b.example.co.uk") == "example.co.uk"
    assert org_domain("mail.example.com") == "example.com"
    assert org_domain("com") == "com"


def test_policy_discovery_falls_back_to_the_organisational_domain() -> None:
    table = Table({"_dmarc.example.com": ["v=DMARC1; p=reject; sp=quarantine", "some other text"]})
    record, status = find_dmarc(table.txt, "news.example.com")
    assert status == "found"
    assert record is not None
    assert (record.domain, record.subdomain_policy) == ("example.com", "quarantine")
    assert find_dmarc(Table({}).txt, "example.com") == (None, "none")
    two = Table({"_dmarc.example.com": ["v=DMARC1; p=reject", "v=DMARC1; p=none"]})
    assert find_dmarc(two.txt, "example.com") == (None, "none")  # two records: DMARC does not apply
    assert find_dmarc(Table({"_dmarc.example.com": "TEMP"}).txt, "example.com") == (None, "temperror")


# -- DMARC evaluation (pure) ----------------------------------------------------------------------

REJECT = DmarcRecord("reject", domain="example.com")


def test_an_aligned_dkim_pass_passes_whatever_spf_says() -> None:
    dkim = [DkimResult("other.example", "pass"), DkimResult("mail.example.com", "pass")]
    result, by, domain, policy, _ = evaluate_dmarc("example.com", "fail", "example.com", dkim, REJECT, "found")
    assert (result, by, domain, policy) == ("pass", "dkim", "mail.example.com", "reject")


def test_an_aligned_spf_pass_passes_a_misaligned_one_does_not() -> None:
    assert evaluate_dmarc("example.com", "pass", "bounce.example.com", [], REJECT, "found")[:3] == (
        "pass", "spf", "bounce.example.com",
    )  # fmt: skip
    strict = DmarcRecord("reject", aspf="s", domain="example.com")
    assert evaluate_dmarc("example.com", "pass", "bounce.example.com", [], strict, "found")[0] == "fail"
    result, _, _, _, reason = evaluate_dmarc("example.com", "pass", "mailer.example.net", [], REJECT, "found")
    assert result == "fail"
    assert "spf=pass (mailer.example.net)" in reason


def test_unproven_outcomes() -> None:
    assert evaluate_dmarc("example.com", "pass", "example.com", [], None, "none")[0] == "none"
    assert evaluate_dmarc("example.com", "pass", "example.com", [], None, "temperror")[0] == "temperror"
    assert evaluate_dmarc(None, "pass", "example.com", [], REJECT, "found")[0] == "none"
    # A DNS failure on an aligned check leaves the result open: temperror, not fail.
    pending = [DkimResult("example.com", "temperror")]
    assert evaluate_dmarc("example.com", "fail", "example.com", pending, REJECT, "found")[0] == "temperror"
    assert evaluate_dmarc("example.com", "temperror", "example.com", [], REJECT, "found")[0] == "temperror"
    # ... but not on a check that could not have aligned anyway.
    other = [DkimResult("example.org", "temperror")]
    assert evaluate_dmarc("example.com", "fail", "example.com", other, REJECT, "found")[0] == "fail"


def test_the_subdomain_policy_applies_to_a_record_found_on_the_organisational_domain() -> None:
    record = DmarcRecord("reject", subdomain_policy="none", domain="example.com")
    assert evaluate_dmarc("news.example.com", "fail", None, [], record, "found")[3] == "none"
    assert evaluate_dmarc("example.com", "fail", None, [], record, "found")[3] == "reject"


# -- DKIM ---------------------------------------------------------------------------------------------


@given(st.lists(st.sampled_from([b"a", b"b c", b" ", b"\t", b"\r\n", b"\n", b"\r", b"x  \t"]), max_size=14))
def test_the_streamed_body_hash_is_dkimpys(pieces: list[bytes]) -> None:
    body = b"".join(pieces)
    dkimpy_body = b"\r\n".join(re.split(b"\r?\n", body))  # how dkimpy reads a body
    import hashlib

    for name, canon in ((b"simple", Simple), (b"relaxed", Relaxed)):
        expected = hashlib.sha256(canon.canonicalize_body(dkimpy_body)).digest()
        assert body_hash(io.BytesIO(b"X: y\r\n\r\n" + body), 8, name, "sha256", None) == expected
        limited = hashlib.sha256(canon.canonicalize_body(dkimpy_body)[:5]).digest()
        assert body_hash(io.BytesIO(body), 0, name, "sha256", 5) == limited


@pytest.mark.parametrize("canon", [(b"relaxed", b"simple"), (b"relaxed", b"relaxed"), (b"simple", b"simple")])
def test_dkim_signatures_verify_and_any_change_breaks_them(key: DkimKey, canon: tuple[bytes, bytes]) -> None:
    table = Table({"s1._domainkey.example.com": [key.record]})
    raw = dkim_sign(
        as_bytes(message("Anna <anna@example.com>", "help@x.net", body="Hi  there\n\n")),
        key,
        "example.com",
        canonicalize=canon,
    )
    assert [(r.domain, r.result) for r in check_dkim(table, io.BytesIO(raw))] == [("example.com", "pass")]
    body_changed = raw.replace(b"Hi  there", b"Hi there!")
    assert check_dkim(table, io.BytesIO(body_changed))[0].reason == "body hash mismatch"
    subject_changed = raw.replace(b"Subject: Hello", b"Subject: Pay now")
    assert check_dkim(table, io.BytesIO(subject_changed))[0].result == "fail"
    assert check_dkim(Table({}), io.BytesIO(raw))[0].result == "fail"  # no key published
    assert check_dkim(Table({"s1._domainkey.example.com": "TEMP"}), io.BytesIO(raw))[0].result == "temperror"


def test_unsigned_mail_has_no_dkim_results(key: DkimKey) -> None:
    assert check_dkim(Table({}), io.BytesIO(as_bytes(message("a@example.com", "b@example.net")))) == []


# -- Authentication-Results (RFC 8601) ------------------------------------------------------------


def test_authentication_results_are_parsed_with_comments_and_properties() -> None:
    value = (
        'mx.google.com (version "1"); dkim=pass (2048-bit key) header.i=@example.com header.s=s1 '
        "header.b=abc; dkim=fail header.d=other.example; spf=pass (google.com: domain of "
        "x@example.com designates 192.0.2.1 as permitted sender) smtp.mailfrom=x@example.com; "
        "dmarc=pass (p=REJECT sp=REJECT dis=NONE) header.from=example.com"
    )
    found = parse_authentication_results(value)
    assert found is not None
    assert found.authserv_id == "mx.google.com"
    assert [(d.domain, d.result) for d in found.dkim] == [("example.com", "pass"), ("other.example", "fail")]
    assert (found.spf, found.spf_domain) == ("pass", "example.com")
    assert (found.dmarc, found.dmarc_from) == ("pass", "example.com")
    none = parse_authentication_results("mx.example.net; none")
    assert none is not None
    assert (none.authserv_id, none.dmarc, none.dkim) == ("mx.example.net", None, [])


def test_nameserver_settings_are_read() -> None:
    assert nameservers.parse("192.0.2.53") == ("192.0.2.53", 53)
    assert nameservers.parse("127.0.0.1:5353") == ("127.0.0.1", 5353)
    assert nameservers.parse("[::1]:5300") == ("::1", 5300)
    assert nameservers.parse("::1") == ("::1", 53)
    for bad in ("not an address", "127.0.0.1:0", "127.0.0.1:http", "[::1]x"):
        with pytest.raises(ValueError, match=r"DNS server|port"):
            nameservers.parse(bad)
    broken = auth.DnsResolver(["not an address"], 1.0)
    with pytest.raises(DnsTempError):
        broken.txt("example.com")
