"""Who really sent an inbound email: SPF (RFC 7208), DKIM (RFC 6376) and DMARC (RFC 7489).

:class:`MailAuth` (one per app, ``EmailComponents.auth``) gives every received message an
:class:`AuthVerdict`: the SPF result for the envelope sender, each DKIM signature's result, and
the DMARC result for the From domain — ``pass`` when SPF or DKIM passed for a domain *aligned*
with the From domain (same organisational domain, or the same domain under ``adkim/aspf=s``).
Only a DMARC pass proves the From address (see :mod:`.sender`); everything else is a claim.

- SMTP: the receiver knows the peer's IP, the HELO name and MAIL FROM, so all three are checked
  here. SPF is pyspf (the reference implementation), DKIM is dkimpy (the header signature and
  the key; the body hash is computed here while reading the spooled message, so a 20 MB message
  is never copied into memory for it), DMARC policy discovery and alignment are ours (small,
  pure, tested) with the Public Suffix List of ``publicsuffixlist``.
- IMAP: a polled message has no peer to check. Its verdict is read from the
  ``Authentication-Results`` header of the receiving server, but only from the topmost one whose
  authserv-id the inbox names as trusted (``imap.trusted_authserv_ids``); otherwise ``none``.
- DNS goes through one dnspython resolver: ``dns_servers`` (default: the system's) and
  ``dns_timeout`` per lookup (:mod:`frontdesk.nameservers`). A timeout or server failure is a
  ``temperror`` for the check that needed it — never an exception, never a lost message.

Everything blocking (DNS, RSA) runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import logging
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from typing import IO, Any

import dkim
import dns.exception
import dns.name
import dns.resolver
import spf

from frontdesk import nameservers

log = logging.getLogger(__name__)

Result = str  # pass | fail | softfail | neutral | none | temperror | permerror | policy
MAX_SIGNATURES = 5
MAX_HEADER_BLOCK = 1024 * 1024
MAX_LINE = 1024 * 1024
_PASS = "pass"


# -- the verdict ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DkimResult:
    domain: str
    result: Result
    selector: str = ""
    reason: str = ""


@dataclass(frozen=True, slots=True)
class AuthVerdict:
    """What was proved about the sender. ``authenticated`` only for a DMARC pass."""

    dmarc: Result = "none"
    spf: Result = "none"
    dkim: tuple[DkimResult, ...] = ()
    from_domain: str | None = None
    spf_domain: str | None = None
    aligned: str | None = None  # "dkim" | "spf": what made DMARC pass
    domain: str | None = None  # the aligned (authenticated) domain
    policy: str | None = None  # the DMARC policy that applies: none | quarantine | reject
    method: str = "none"  # smtp | authentication-results | none
    authserv_id: str | None = None
    reason: str = ""

    @property
    def authenticated(self) -> bool:
        return self.dmarc == _PASS

    @property
    def dkim_result(self) -> Result:
        """One word for the DKIM signatures: pass if one passed, else the first result, else none."""
        if any(d.result == _PASS for d in self.dkim):
            return _PASS
        return self.dkim[0].result if self.dkim else "none"

    def as_meta(self) -> dict[str, Any]:
        """The verdict as kept on the message (``Message.meta["auth"]``) and returned by the API."""
        return {
            "authenticated": self.authenticated,
            "dmarc": self.dmarc,
            "spf": self.spf,
            "dkim": self.dkim_result,
            "from_domain": self.from_domain,
            "domain": self.domain,
            "aligned": self.aligned,
            "policy": self.policy,
            "spf_domain": self.spf_domain,
            "signatures": [{"domain": d.domain, "selector": d.selector, "result": d.result} for d in self.dkim],
            "method": self.method,
            "authserv_id": self.authserv_id,
            "reason": self.reason[:300],
        }


def unchecked(reason: str, from_domain: str | None = None) -> AuthVerdict:
    return AuthVerdict(from_domain=from_domain, reason=reason)


# -- DNS ------------------------------------------------------------------------------------------


class DnsTempError(Exception):
    """A lookup timed out or the servers failed: the answer is unknown (temperror)."""


class DnsResolver:
    """TXT/A/AAAA/MX/PTR lookups for the checks, through one configured, caching resolver."""

    def __init__(self, servers: Iterable[str] = (), timeout: float = 5.0) -> None:
        self.timeout = timeout
        self.broken: str | None = None
        try:
            chosen = nameservers.servers_of(servers)
            if chosen:
                resolver = nameservers.configure(dns.resolver.Resolver(configure=False), chosen, timeout)
            else:
                resolver = dns.resolver.Resolver(configure=True)
        except Exception as exc:  # no /etc/resolv.conf, a bad address in the setting
            log.warning("mail auth: no usable DNS resolver (%s); every check will be a temperror", exc)
            self.broken = str(exc)[:200]
            resolver = dns.resolver.Resolver(configure=False)
        resolver.timeout = timeout
        resolver.lifetime = timeout
        resolver.cache = dns.resolver.LRUCache(4096)
        self.resolver = resolver

    def query(self, name: str, rdtype: str, timeout: float | None = None) -> list[Any]:
        """The answer's records; ``[]`` for NXDOMAIN or no data; :class:`DnsTempError` otherwise."""
        if self.broken:
            raise DnsTempError(f"no DNS resolver: {self.broken}")
        lifetime = min(timeout or self.timeout, self.timeout)
        try:
            return list(self.resolver.resolve(name, rdtype, lifetime=lifetime, search=False))
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except (dns.exception.Timeout, dns.resolver.NoNameservers, dns.resolver.LifetimeTimeout) as exc:
            raise DnsTempError(f"DNS {rdtype} {name}: {type(exc).__name__}") from exc
        except (dns.name.EmptyLabel, dns.name.LabelTooLong, dns.name.NameTooLong, dns.exception.SyntaxError):
            return []  # not a valid name: nothing can be published there
        except dns.exception.DNSException as exc:
            raise DnsTempError(f"DNS {rdtype} {name}: {type(exc).__name__}") from exc

    def txt(self, name: str) -> list[str]:
        """The TXT records at ``name`` (each one's strings joined)."""
        out = []
        for r in self.query(name, "TXT"):
            out.append(b"".join(r.strings).decode("utf-8", "replace"))
        return out

    # pyspf's DNSLookup contract: [((name, type), value), …]; TempError on failure.
    def spf_lookup(self, name: str, qtype: str, strict: Any = True, timeout: float | None = None) -> list[Any]:
        try:
            answers = self.query(name, qtype, timeout)
        except DnsTempError as exc:
            raise spf.TempError(str(exc)) from exc
        out: list[Any] = []
        for r in answers:
            if qtype in ("A", "AAAA"):
                out.append(((name, qtype), r.address))
            elif qtype == "MX":
                out.append(((name, qtype), (r.preference, r.exchange)))
            elif qtype == "PTR":
                out.append(((name, qtype), r.target.to_text(True)))
            elif qtype in ("TXT", "SPF"):
                out.append(((name, qtype), r.strings))
        return out

    # dkimpy's dnsfunc contract: the TXT record as bytes, or None.
    def dkim_txt(self, name: bytes | str, timeout: float | None = None) -> bytes | None:
        text = name.decode("ascii", "replace") if isinstance(name, bytes) else name
        records = self.txt(text.rstrip("."))
        return records[0].encode("utf-8") if records else None


# pyspf looks names up through a module-level function: route it to the resolver of the check
# running in this thread (set by MailAuth), or to pyspf's own when none is set.
_local = threading.local()
_pyspf_lookup = spf.DNSLookup


def _spf_dns(name: str, qtype: str, strict: Any = True, timeout: float | None = None) -> list[Any]:
    resolver: DnsResolver | None = getattr(_local, "resolver", None)
    if resolver is None:
        return list(_pyspf_lookup(name, qtype, strict, timeout))
    return resolver.spf_lookup(name, qtype, strict, timeout)


spf.DNSLookup = _spf_dns


# -- DMARC (pure) -----------------------------------------------------------------------------------


@cache
def _psl() -> Any:
    from publicsuffixlist import PublicSuffixList

    return PublicSuffixList()


def org_domain(domain: str) -> str:
    """The organisational domain (RFC 7489 3.2): the registrable domain by the Public Suffix List."""
    domain = domain.lower().rstrip(".")
    try:
        found = _psl().privatesuffix(domain)
    except Exception:
        found = None
    return found or domain


def aligned(from_domain: str, other: str, mode: str) -> bool:
    """RFC 7489 3.1: strict = the same domain; relaxed = the same organisational domain."""
    a, b = from_domain.lower().rstrip("."), other.lower().rstrip(".")
    if not a or not b:
        return False
    if a == b:
        return True
    return mode != "s" and org_domain(a) == org_domain(b)


@dataclass(frozen=True, slots=True)
class DmarcRecord:
    policy: str  # none | quarantine | reject
    subdomain_policy: str | None = None
    adkim: str = "r"
    aspf: str = "r"
    pct: int = 100
    domain: str = ""  # where it was found


_TAG = re.compile(r"^\s*([A-Za-z][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")
_POLICIES = ("none", "quarantine", "reject")


def parse_dmarc(text: str, domain: str = "") -> DmarcRecord | None:
    """A DMARC record, or ``None`` when ``text`` is not one (RFC 7489 6.3, 6.6.3)."""
    parts = [p for p in text.split(";")]
    if not parts or parts[0].strip().replace(" ", "") != "v=DMARC1":
        return None
    tags: dict[str, str] = {}
    for part in parts[1:]:
        m = _TAG.match(part)
        if m:
            tags.setdefault(m.group(1).lower(), m.group(2))
    p = tags.get("p", "").lower()
    if p not in _POLICIES:
        # 6.6.3: an invalid or missing p= with a valid rua= is read as p=none; else no record.
        if "mailto:" in tags.get("rua", "").lower():
            p = "none"
        else:
            return None
    sp = tags.get("sp", "").lower()
    try:
        pct = max(0, min(100, int(tags.get("pct", "100"))))
    except ValueError:
        pct = 100
    return DmarcRecord(
        policy=p,
        subdomain_policy=sp if sp in _POLICIES else None,
        adkim="s" if tags.get("adkim", "r").lower() == "s" else "r",
        aspf="s" if tags.get("aspf", "r").lower() == "s" else "r",
        pct=pct,
        domain=domain,
    )


def find_dmarc(txt: Any, from_domain: str) -> tuple[DmarcRecord | None, str]:
    """Policy discovery (RFC 7489 6.6.3): ``_dmarc.<From domain>``, then the organisational domain.

    ``txt(name) -> list[str]`` may raise :class:`DnsTempError`. Returns (record, status) with
    status ``found``, ``none`` or ``temperror``.
    """
    candidates = [from_domain]
    org = org_domain(from_domain)
    if org != from_domain:
        candidates.append(org)
    for name in candidates:
        try:
            records = [r for r in (parse_dmarc(t, name) for t in txt(f"_dmarc.{name}")) if r is not None]
        except DnsTempError:
            return None, "temperror"
        if len(records) == 1:
            return records[0], "found"
        if len(records) > 1:
            return None, "none"  # more than one record: DMARC is not applied
    return None, "none"


def evaluate_dmarc(
    from_domain: str | None,
    spf_result: Result,
    spf_domain: str | None,
    dkim_results: Iterable[DkimResult],
    record: DmarcRecord | None,
    status: str,
) -> tuple[Result, str | None, str | None, str | None, str]:
    """(dmarc result, aligned by, aligned domain, applicable policy, reason) — pure."""
    if not from_domain:
        return "none", None, None, None, "no From domain"
    if status == "temperror":
        return "temperror", None, None, None, f"DNS failure looking up the DMARC record of {from_domain}"
    if record is None:
        return "none", None, None, None, f"{from_domain} publishes no DMARC record"
    policy = record.policy
    if record.domain and record.domain != from_domain and record.subdomain_policy:
        policy = record.subdomain_policy
    dkim_results = list(dkim_results)
    for d in dkim_results:
        if d.result == _PASS and aligned(from_domain, d.domain, record.adkim):
            return _PASS, "dkim", d.domain, policy, f"DKIM signature of {d.domain} verified and aligned"
    if spf_result == _PASS and spf_domain and aligned(from_domain, spf_domain, record.aspf):
        return _PASS, "spf", spf_domain, policy, f"SPF passed for {spf_domain}, aligned"
    pending = [d for d in dkim_results if d.result == "temperror" and aligned(from_domain, d.domain, record.adkim)]
    if pending or (spf_result == "temperror" and spf_domain and aligned(from_domain, spf_domain, record.aspf)):
        return "temperror", None, None, policy, "a DNS failure kept SPF or DKIM from being checked"
    seen = ", ".join(
        [f"spf={spf_result}" + (f" ({spf_domain})" if spf_domain else "")]
        + [f"dkim={d.result} ({d.domain})" for d in dkim_results]
    )
    return "fail", None, None, policy, f"nothing aligned with {from_domain} passed: {seen}"


# -- DKIM body hash, read from the spooled message ---------------------------------------------------


def read_header_block(fp: IO[bytes]) -> tuple[bytes, bool, int]:
    """(the header lines up to the blank line, complete?, where the body starts) from ``fp``."""
    fp.seek(0)
    out = bytearray()
    while True:
        line = fp.readline(MAX_LINE)
        if not line or line in (b"\r\n", b"\n"):
            return bytes(out), True, fp.tell()
        out += line
        if len(out) > MAX_HEADER_BLOCK:
            return bytes(out), False, fp.tell()


def body_hash(fp: IO[bytes], body_start: int, canon: bytes, algorithm: str, length: int | None) -> bytes | None:
    """The DKIM body hash of the body at ``body_start`` (RFC 6376 3.4.3-3.4.4, 3.7), streamed.

    Lines are split on CRLF or LF, as dkimpy does; ``None`` for a line too long to read.
    """
    h = hashlib.new(algorithm)
    relaxed = canon == b"relaxed"
    left = length
    pending = 0  # empty lines not yet known to be followed by text
    wrote = False

    def out(data: bytes) -> None:
        nonlocal left
        if left is None:
            h.update(data)
        elif left > 0:
            h.update(data[:left])
            left -= min(left, len(data))

    fp.seek(body_start)
    while True:
        line = fp.readline(MAX_LINE)
        if not line:
            break
        last = not line.endswith(b"\n")
        if last and len(line) >= MAX_LINE:
            return None
        text = line if last else line[:-1]
        if not last and text.endswith(b"\r"):
            text = text[:-1]
        if relaxed:
            text = re.sub(rb"[\t ]+", b" ", text)
            if not last:
                text = text.rstrip(b" ")
        if not text:
            pending += 1
            continue
        out(b"\r\n" * pending + text + b"\r\n")
        pending = 0
        wrote = True
    if not wrote and not relaxed:
        out(b"\r\n")
    return h.digest()


def check_dkim(resolver: DnsResolver, fp: IO[bytes]) -> list[DkimResult]:
    headers, complete, body_start = read_header_block(fp)
    if b"dkim-signature" not in headers.lower():
        return []
    if not complete:
        return [DkimResult("", "permerror", reason="header block too large")]
    try:
        d = dkim.DKIM(headers + b"\r\n", minkey=1024, timeout=resolver.timeout)
    except Exception as exc:
        return [DkimResult("", "permerror", reason=f"unreadable header: {str(exc)[:100]}")]
    count = sum(1 for name, _v in d.headers if name.lower() == b"dkim-signature")
    results: list[DkimResult] = []
    for idx in range(min(count, MAX_SIGNATURES)):
        results.append(_verify_one(d, idx, resolver, fp, body_start))
    return results


def _verify_one(d: Any, idx: int, resolver: DnsResolver, fp: IO[bytes], body_start: int) -> DkimResult:
    domain = selector = ""
    try:
        prep = d.verify_headerprep(idx)
        if not prep:
            return DkimResult("", "none")
        sig, include_headers, sigheaders = prep
        domain = sig[b"d"].decode("ascii", "replace").lower()
        selector = sig[b"s"].decode("ascii", "replace")
        canon = sig.get(b"c", b"simple/simple").split(b"/")
        body_canon = canon[1] if len(canon) > 1 else b"simple"
        if body_canon not in (b"simple", b"relaxed"):
            return DkimResult(domain, "permerror", selector, "unknown body canonicalization")
        algorithm = "sha1" if sig[b"a"].lower().endswith(b"sha1") else "sha256"
        length = int(sig[b"l"]) if b"l" in sig else None
        expected = base64.b64decode(re.sub(rb"\s+", b"", sig[b"bh"]))
        got = body_hash(fp, body_start, body_canon, algorithm, length)
        if got is None:
            return DkimResult(domain, "permerror", selector, "a body line too long to verify")
        if got != expected:
            return DkimResult(domain, "fail", selector, "body hash mismatch")
        # The header signature and the key: dkimpy (its body check is skipped; ours is done above).
        header_sig = {k: v for k, v in sig.items() if k != b"bh"}
        ok = d.verify_sig(header_sig, include_headers, sigheaders[idx], resolver.dkim_txt)
        return DkimResult(domain, _PASS if ok else "fail", selector, "" if ok else "signature did not verify")
    except DnsTempError as exc:
        return DkimResult(domain, "temperror", selector, str(exc)[:200])
    except (dkim.DKIMException, ValueError, KeyError, binascii.Error) as exc:
        return DkimResult(domain, "permerror", selector, str(exc)[:200])


# -- SPF -----------------------------------------------------------------------------------------------


def check_spf(resolver: DnsResolver, ip: str, mail_from: str | None, helo: str | None) -> tuple[Result, str | None]:
    """(result, the domain checked): MAIL FROM's domain, or the HELO name for the null sender."""
    helo = (helo or "").strip().strip("[]") or "unknown"
    sender = (mail_from or "").strip()
    domain = sender.rpartition("@")[2].lower() if sender else helo.lower()
    _local.resolver = resolver
    try:
        q = spf.query(i=ip, s=sender, h=helo, timeout=resolver.timeout, querytime=resolver.timeout * 4)
        result, _code, _explanation = q.check()
        return str(result).lower(), domain or None
    except spf.TempError:
        return "temperror", domain or None
    except Exception as exc:
        log.info("mail auth: SPF check of %s failed: %s", domain, exc)
        return "permerror", domain or None
    finally:
        _local.resolver = None


# -- Authentication-Results (RFC 8601), for mail fetched by IMAP ----------------------------------


def _strip_comments(value: str) -> str:
    out, depth, quoted, escaped = [], 0, False, False
    for ch in value:
        if escaped:
            escaped = False
            if depth == 0:
                out.append(ch)
            continue
        if ch == "\\":
            escaped = True
            if depth == 0:
                out.append(ch)
            continue
        if ch == '"' and depth == 0:
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
            continue
        elif not quoted and ch == ")" and depth:
            depth -= 1
            continue
        if depth == 0:
            out.append(ch)
    return "".join(out)


@dataclass
class AuthResults:
    authserv_id: str
    spf: Result | None = None
    spf_domain: str | None = None
    dkim: list[DkimResult] = field(default_factory=list)
    dmarc: Result | None = None
    dmarc_from: str | None = None


def parse_authentication_results(value: str) -> AuthResults | None:
    """One ``Authentication-Results`` value: authserv-id and the spf/dkim/dmarc results."""
    text = _strip_comments(" ".join(value.split()))
    parts = [p.strip() for p in text.split(";")]
    if not parts or not parts[0]:
        return None
    found = AuthResults(authserv_id=parts[0].split()[0].lower())
    for part in parts[1:]:
        words = part.split()
        if not words or "=" not in words[0]:
            continue
        method, _, result = words[0].partition("=")
        method = method.split("/")[0].lower()
        result = result.strip('"').lower()
        props: dict[str, str] = {}
        for w in words[1:]:
            k, sep, v = w.partition("=")
            if sep:
                props[k.lower()] = v.strip('"').lower()
        if method == "spf" and found.spf is None:
            found.spf = result
            mailfrom = props.get("smtp.mailfrom") or ""
            found.spf_domain = (mailfrom.rpartition("@")[2] or props.get("smtp.helo") or "") or None
        elif method == "dkim":
            d = props.get("header.d") or props.get("header.i", "").rpartition("@")[2]
            found.dkim.append(DkimResult(d or "", result, props.get("header.s", "")))
        elif method == "dmarc" and found.dmarc is None:
            found.dmarc = result
            found.dmarc_from = props.get("header.from") or None
    return found


def header_values(block: bytes, name: str) -> list[str]:
    """The (unfolded) values of header ``name`` in a raw header block, top first."""
    values: list[str] = []
    current: list[str] | None = None
    lname = name.lower().encode()
    for raw in block.split(b"\n"):
        line = raw.rstrip(b"\r")
        if line[:1] in (b" ", b"\t"):
            if current is not None:
                current.append(line.decode("utf-8", "replace"))
            continue
        if current is not None:
            values.append(" ".join(current))
            current = None
        key, sep, rest = line.partition(b":")
        if sep and key.strip().lower() == lname:
            current = [rest.decode("utf-8", "replace")]
    if current is not None:
        values.append(" ".join(current))
    return values


# -- the checker ---------------------------------------------------------------------------------------


def from_domain_of(address: str | None) -> str | None:
    if not address or "@" not in address:
        return None
    domain = address.rpartition("@")[2].strip().strip(".").lower()
    return domain or None


class MailAuth:
    """Checks inbound mail (see the module doc). ``check`` never raises."""

    def __init__(self, *, enabled: bool = True, servers: Iterable[str] = (), timeout: float = 5.0) -> None:
        self.enabled = enabled
        self.resolver = DnsResolver(servers, timeout)

    @classmethod
    def from_settings(cls, settings: Any) -> MailAuth:
        return cls(
            enabled=settings.mail_auth_enabled,
            servers=settings.dns_servers,
            timeout=settings.dns_timeout,
        )

    async def check(
        self,
        fp: IO[bytes],
        from_address: str | None,
        *,
        peer_ip: str | None = None,
        helo: str | None = None,
        mail_from: str | None = None,
        trusted_authserv_ids: Iterable[str] = (),
    ) -> AuthVerdict:
        from_domain = from_domain_of(from_address)
        if not self.enabled:
            return unchecked("sender checks are turned off (FRONTDESK_MAIL_AUTH_ENABLED)", from_domain)
        trusted = {t.strip().lower() for t in trusted_authserv_ids if t and t.strip()}
        try:
            if peer_ip:
                return await asyncio.to_thread(self._check_smtp, fp, from_domain, peer_ip, helo, mail_from)
            if trusted:
                return await asyncio.to_thread(self._check_results, fp, from_domain, trusted)
        except Exception as exc:  # a bug must not lose the message: the sender is then unproven
            log.exception("mail auth: the check failed")
            return AuthVerdict(dmarc="temperror", from_domain=from_domain, reason=f"check failed: {type(exc).__name__}")
        return unchecked("no connecting server to check and no trusted Authentication-Results", from_domain)

    def _check_smtp(
        self, fp: IO[bytes], from_domain: str | None, ip: str, helo: str | None, mail_from: str | None
    ) -> AuthVerdict:
        spf_result, spf_domain = check_spf(self.resolver, ip, mail_from, helo)
        signatures = check_dkim(self.resolver, fp)
        return self._verdict(from_domain, spf_result, spf_domain, signatures, method="smtp")

    def _check_results(self, fp: IO[bytes], from_domain: str | None, trusted: set[str]) -> AuthVerdict:
        headers, _complete, _body = read_header_block(fp)
        for value in header_values(headers, "authentication-results"):
            results = parse_authentication_results(value)
            if results is None or results.authserv_id not in trusted:
                continue
            spf_result = results.spf or "none"
            if results.dmarc is not None and from_domain and (results.dmarc_from in (None, from_domain)):
                by = next((d for d in results.dkim if d.result == _PASS and aligned(from_domain, d.domain, "r")), None)
                aligned_by, domain = ("dkim", by.domain) if by else (None, None)
                if (
                    by is None
                    and spf_result == _PASS
                    and results.spf_domain
                    and aligned(from_domain, results.spf_domain, "r")
                ):
                    aligned_by, domain = "spf", results.spf_domain
                return AuthVerdict(
                    dmarc=results.dmarc,
                    spf=spf_result,
                    dkim=tuple(results.dkim),
                    from_domain=from_domain,
                    spf_domain=results.spf_domain,
                    aligned=aligned_by if results.dmarc == _PASS else None,
                    domain=domain if results.dmarc == _PASS else None,
                    method="authentication-results",
                    authserv_id=results.authserv_id,
                    reason=f"Authentication-Results of {results.authserv_id}: dmarc={results.dmarc}",
                )
            verdict = self._verdict(
                from_domain, spf_result, results.spf_domain, results.dkim, method="authentication-results"
            )
            return _with(verdict, authserv_id=results.authserv_id)
        return unchecked("no Authentication-Results from a trusted server", from_domain)

    def _verdict(
        self,
        from_domain: str | None,
        spf_result: Result,
        spf_domain: str | None,
        signatures: list[DkimResult],
        *,
        method: str,
    ) -> AuthVerdict:
        record, status = (None, "none")
        if from_domain:
            record, status = find_dmarc(self.resolver.txt, from_domain)
        dmarc, by, domain, policy, reason = evaluate_dmarc(
            from_domain, spf_result, spf_domain, signatures, record, status
        )
        return AuthVerdict(
            dmarc=dmarc,
            spf=spf_result,
            dkim=tuple(signatures),
            from_domain=from_domain,
            spf_domain=spf_domain,
            aligned=by,
            domain=domain,
            policy=policy,
            method=method,
            reason=reason,
        )


def _with(verdict: AuthVerdict, **changes: Any) -> AuthVerdict:
    from dataclasses import replace

    return replace(verdict, **changes)


with contextlib.suppress(Exception):  # the list is loaded once, at import, not on the first email
    _psl()

__all__ = [
    "AuthVerdict",
    "DkimResult",
    "DmarcRecord",
    "DnsResolver",
    "DnsTempError",
    "MailAuth",
    "aligned",
    "body_hash",
    "evaluate_dmarc",
    "find_dmarc",
    "org_domain",
    "parse_authentication_results",
    "parse_dmarc",
    "unchecked",
]
