"""Raw email bytes → :class:`ParsedEmail`: addresses, threading headers, text, safe HTML, files.

Everything here is pure (no I/O) and total: any byte string parses. The stdlib ``email`` package
does the MIME work (the tree with the fast ``compat32`` parser, the headers we read with
``policy.default``'s header registry); a message with defects still parses, and every header or
part that cannot be read is skipped (recorded in ``defects``) instead of raising. Text is decoded
with its declared charset when that works, else as UTF-8, else with replacement characters.

:func:`classify` tells ordinary mail from auto-replies, bounces and loops (those never open a
conversation); :func:`trim_reply` cuts quoted history and signatures from the text shown.
"""

from __future__ import annotations

import codecs
import contextlib
import email
import email.header
import email.utils
import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.message import Message
from enum import StrEnum
from typing import Any

from frontdesk.channels.email.spool import MARKER, SPLIT_ABOVE, RawMessage, SpooledPart, split
from frontdesk.conversations import sanitize

MAX_PARTS = 500  # a hostile message can nest thousands of parts; we read this many
MAX_DEPTH = 20
MAX_ADDRESSES = 100
MAX_REFERENCES = 50
MAX_ID_LENGTH = 500

_CID_REF = re.compile(r"""(\bsrc\s*=\s*["']?)cid:([^"'\s>]{1,300})""", re.IGNORECASE)
_ID = re.compile(r"<([^<>\s]{1,500})>")
_WS = re.compile(r"\s+")


class Kind(StrEnum):
    """What an inbound email is, for the receiver's decision."""

    message = "message"  # from a person: opens or continues a conversation
    auto_reply = "auto_reply"  # out-of-office, vacation, autoresponders, bulk mail
    bounce = "bounce"  # a delivery failure report
    loop = "loop"  # our own mail come back


@dataclass(slots=True)
class ParsedAttachment:
    filename: str
    content_type: str
    data: bytes  # b"" when the body was decoded to disk (``spooled``)
    content_id: str | None = None  # without <>; set for parts an HTML body shows by cid:
    inline: bool = False
    spooled: SpooledPart | None = None

    @property
    def size(self) -> int:
        return self.spooled.size if self.spooled is not None else len(self.data)

    @property
    def sha256(self) -> str:
        return self.spooled.sha256 if self.spooled is not None else hashlib.sha256(self.data).hexdigest()


@dataclass(slots=True)
class ParsedEmail:
    from_address: str | None = None
    from_name: str | None = None
    to: list[str] = field(default_factory=list)
    cc: list[str] = field(default_factory=list)
    reply_to: list[str] = field(default_factory=list)
    subject: str = ""
    message_id: str | None = None  # without <>
    in_reply_to: list[str] = field(default_factory=list)
    references: list[str] = field(default_factory=list)
    date: datetime | None = None
    text: str = ""  # the whole plain text (from the HTML when there is no plain part)
    html: str | None = None  # sanitised, quoted history cut; ``cid:`` images dropped (see html_with)
    html_source: str = ""  # the HTML as sent (unsafe: never show it)
    attachments: list[ParsedAttachment] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)  # lower-cased name → first value
    content_type: str = "text/plain"
    report_type: str | None = None
    failed_recipients: list[str] = field(default_factory=list)  # from a delivery-status report
    bounced_message_ids: list[str] = field(default_factory=list)  # Message-IDs of the returned mail
    bounce_diagnostic: str | None = None
    defects: list[str] = field(default_factory=list)
    sha256: str = ""

    @property
    def shown_text(self) -> str:
        """The text without quoted history and signature (the whole text if nothing else is left)."""
        return trim_reply(self.text)

    def html_with(self, images: dict[str, str]) -> str | None:
        """The shown HTML with ``cid:`` references replaced by ``images[content_id]`` URLs, sanitised."""
        if not self.html_source.strip():
            return None
        source = self.html_source
        if images:

            def _swap(m: re.Match[str]) -> str:
                url = images.get(m.group(2).strip())
                return f"{m.group(1)}{url}" if url else m.group(0)

            source = _CID_REF.sub(_swap, source)
        try:
            return sanitize.sanitize_html(_drop_quoted_html(source)) or None
        except Exception:
            return None

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")


# -- decoding helpers --------------------------------------------------------------------------

_CHARSET_ALIASES = {
    "win-1251": "cp1251",
    "windows1251": "cp1251",
    "cp-1251": "cp1251",
    "x-cp1251": "cp1251",
    "win1251": "cp1251",
    "koi8r": "koi8_r",
    "koi8": "koi8_r",
    "x-koi8-r": "koi8_r",
    "utf8": "utf-8",
    "unicode-1-1-utf-8": "utf-8",
    "x-unknown": "utf-8",
    "unknown-8bit": "utf-8",
    "us-ascii": "utf-8",  # ASCII is a subset; 8-bit "ASCII" is usually UTF-8
    "ascii": "utf-8",
    "iso-8859-1": "cp1252",  # what mail clients mean in practice (WHATWG does the same)
    "latin1": "cp1252",
    "latin-1": "cp1252",
}
# Codecs that are not text encodings (or that a hostile sender could abuse).
_REFUSED_CODECS = {"rot_13", "base64_codec", "hex_codec", "zlib_codec", "bz2_codec", "uu_codec", "quopri_codec"}


def _codec(charset: str | None) -> str | None:
    if not charset:
        return None
    name = charset.strip().strip("\"'").lower()[:40]
    name = _CHARSET_ALIASES.get(name, name)
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError):
        return None
    if info.name in _REFUSED_CODECS or getattr(info, "_is_text_encoding", True) is False:
        return None
    return info.name


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Text from ``data``: the declared charset, else UTF-8, else a guess — never raises.

    A wrong declared charset is caught when its strict decode fails: UTF-8 is tried next; 8-bit
    text that is not UTF-8 is read as Cyrillic (windows-1251 or KOI8-R, told apart by which half
    of the letters is more frequent) or Western (windows-1252), with replacement characters.
    """
    declared = _codec(charset)
    for name in (declared, "utf-8"):
        if name:
            try:
                return _clean(data.decode(name))
            except (UnicodeDecodeError, LookupError, ValueError):
                continue
    fallback = declared if declared not in (None, "utf-8") else _guess_8bit(data)
    try:
        return _clean(data.decode(fallback or "cp1252", errors="replace"))
    except (LookupError, ValueError):
        return _clean(data.decode("utf-8", errors="replace"))


def _guess_8bit(data: bytes) -> str:
    high = sum(1 for b in data if b >= 0x80)
    ascii_letters = sum(1 for b in data if 0x41 <= b <= 0x5A or 0x61 <= b <= 0x7A)
    if high < ascii_letters:  # mostly Latin text with a few accents
        return "cp1252"
    upper_half = sum(1 for b in data if b >= 0xE0)
    lower_half = sum(1 for b in data if 0xC0 <= b < 0xE0)
    if (upper_half + lower_half) / high < 0.6:
        return "cp1252"
    # Running text is mostly lower case: 0xE0-0xFF in windows-1251, 0xC0-0xDF in KOI8-R.
    return "cp1251" if upper_half >= lower_half else "koi8_r"


def _clean(text: str) -> str:
    """Text a database accepts: no NUL, no lone surrogates (undecodable header bytes)."""
    if "\x00" in text:
        text = text.replace("\x00", "")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # Bytes smuggled as surrogates by the parser: recover them, decode as UTF-8 with replacement.
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def _hdr(msg: Message, name: str) -> Any:
    """The first ``name`` header parsed by ``policy.default``'s header registry (``None`` if absent).

    The MIME tree is read with the fast ``compat32`` parser; the few headers we use are parsed
    here, once each, the way ``policy.default`` would (RFC 2047 words, RFC 6532 UTF-8, addresses).
    """
    lname = name.lower()
    for key, value in getattr(msg, "_headers", []):
        if key.lower() == lname:
            return policy.default.header_fetch_parse(key, value if isinstance(value, str) else str(value))
    return None


def _header_str(msg: Message, name: str) -> str:
    """One header as readable text (RFC 2047 decoded); '' if absent or unreadable."""
    try:
        value = _hdr(msg, name)
    except Exception:  # the header parser of the stdlib can fail on hostile input
        value = None
        try:
            raw = msg.get_all(name, failobj=[]) if hasattr(msg, "get_all") else []
            value = raw[0] if raw else None
        except Exception:
            return ""
    if value is None:
        return ""
    try:
        text = str(value)
    except Exception:
        return ""
    return _WS.sub(" ", _clean(text)).strip()


def _raw_header(msg: Message, name: str) -> str:
    """The header's undecoded value (for address lists and ids), '' if absent."""
    for key, value in getattr(msg, "_headers", []):
        if key.lower() == name.lower():
            return _clean(str(value))
    return ""


def _addresses(msg: Message, name: str) -> list[tuple[str, str]]:
    """(display name, address) pairs of an address header; unreadable entries are skipped."""
    pairs: list[tuple[str, str]] = []
    try:
        header = _hdr(msg, name)
        if header is not None and hasattr(header, "addresses"):
            for a in header.addresses:
                addr = (a.addr_spec or "").strip()
                if addr and addr != "<>":
                    pairs.append((_clean(a.display_name or ""), _clean(addr)))
            return pairs[:MAX_ADDRESSES]
    except Exception:
        pairs = []
    raw = _raw_header(msg, name)
    if raw:
        try:
            decoded = str(email.header.make_header(email.header.decode_header(raw)))
        except Exception:
            decoded = raw
        for display, addr in email.utils.getaddresses([decoded]):
            if addr and "@" in addr:
                pairs.append((_clean(display), _clean(addr)))
    return pairs[:MAX_ADDRESSES]


def message_ids(value: str) -> list[str]:
    """The ids in a Message-ID / In-Reply-To / References value, without ``<>``; bare ids too."""
    if not value:
        return []
    found = _ID.findall(value)
    if not found:
        bare = value.strip().strip("<>").strip()
        if bare and " " not in bare and len(bare) <= MAX_ID_LENGTH:
            found = [bare]
    out: list[str] = []
    for v in found:
        v = v.strip()
        if v and v not in out:
            out.append(v)
    return out


def _date(msg: Message) -> datetime | None:
    raw = _header_str(msg, "date")
    if not raw:
        return None
    try:
        value = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except (OverflowError, ValueError):
        return None


# -- the MIME walk -----------------------------------------------------------------------------


def _content_type(part: Message) -> str:
    try:
        return (part.get_content_type() or "text/plain").lower()[:200]
    except Exception:
        return "application/octet-stream"


def _filename(part: Message) -> str | None:
    try:
        name = part.get_filename()
    except Exception:
        name = None
    if name is None:
        try:
            name = part.get_param("name")  # type: ignore[assignment]
        except Exception:
            name = None
        if isinstance(name, tuple):  # RFC 2231 (charset, language, value)
            try:
                name = email.utils.collapse_rfc2231_value(name)
            except Exception:
                name = None
    if not name:
        return None
    if not isinstance(name, str):
        name = str(name)
    with contextlib.suppress(Exception):
        name = str(email.header.make_header(email.header.decode_header(name)))
    return _clean(name).strip()[:300] or None


def _disposition(part: Message) -> str | None:
    try:
        value = part.get_content_disposition()
    except Exception:
        return None
    return value.lower() if value else None


def _payload_bytes(part: Message) -> bytes:
    try:
        data = part.get_payload(decode=True)
    except Exception:
        data = None
    if isinstance(data, bytes):
        return data
    try:
        raw = part.get_payload()
    except Exception:
        return b""
    if isinstance(raw, str):
        return raw.encode("utf-8", "surrogateescape")
    return b""


def _charset(part: Message) -> str | None:
    try:
        return part.get_content_charset()
    except Exception:
        return None


def _as_bytes(part: Message) -> bytes:
    try:
        return part.as_bytes(policy=policy.SMTP)
    except Exception:
        try:
            return bytes(part)
        except Exception:
            return b""


class _Walker:
    def __init__(self, out: ParsedEmail, spooled: dict[str, SpooledPart] | None = None) -> None:
        self.out = out
        self.spooled = spooled or {}
        self.plain: list[str] = []
        self.html: list[str] = []
        self.parts = 0

    def walk(self, part: Message, depth: int = 0) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS or depth > MAX_DEPTH:
            if "too many parts" not in self.out.defects:
                self.out.defects.append("too many parts (the rest was not read)")
            return
        ctype = _content_type(part)
        if self.spooled and self._spooled_leaf(part, ctype):
            return
        if part.is_multipart():
            try:
                children = part.get_payload()
            except Exception:
                children = []
            if ctype == "message/delivery-status":
                self._delivery_status(children if isinstance(children, list) else [])
                return
            if ctype == "message/rfc822" and depth > 0:
                self._returned_or_forwarded(part, children)
                return
            for child in children if isinstance(children, list) else []:
                if isinstance(child, Message):
                    self.walk(child, depth + 1)
            return
        self._leaf(part, ctype, depth)

    def _spooled_leaf(self, part: Message, ctype: str) -> bool:
        """A part whose body :func:`.spool.split` decoded to disk (marked with a secret key)."""
        try:
            key = part.get(MARKER)
        except Exception:
            return False
        found = self.spooled.get(str(key).strip()) if key else None
        if found is None:
            return False
        disposition = _disposition(part)
        cid = None
        with contextlib.suppress(Exception):
            raw_cid = part.get("content-id")
            ids = message_ids(str(raw_cid)) if raw_cid else []
            cid = ids[0] if ids else None
        inline = disposition == "inline" or (disposition is None and cid is not None)
        filename = _filename(part) or _default_name(ctype, inline)
        self.out.attachments.append(
            ParsedAttachment(
                filename=filename, content_type=ctype, data=b"", content_id=cid, inline=inline, spooled=found
            )
        )
        return True

    def _leaf(self, part: Message, ctype: str, depth: int) -> None:
        disposition = _disposition(part)
        filename = _filename(part)
        if ctype == "message/delivery-status":
            self._delivery_status_text(decode_bytes(_payload_bytes(part), "utf-8"))
            return
        if ctype == "text/rfc822-headers":
            self._returned_headers(decode_bytes(_payload_bytes(part), "utf-8"))
            return
        if ctype in ("text/plain", "text/html") and disposition != "attachment" and not filename:
            text = decode_bytes(_payload_bytes(part), _charset(part))
            (self.plain if ctype == "text/plain" else self.html).append(text)
            return
        data = _payload_bytes(part)
        if not data:
            return
        cid = None
        try:
            raw_cid = part.get("content-id")
        except Exception:
            raw_cid = None
        if raw_cid:
            ids = message_ids(str(raw_cid))
            cid = ids[0] if ids else None
        inline = disposition == "inline" or (disposition is None and cid is not None)
        if not filename:
            filename = _default_name(ctype, inline)
        self.out.attachments.append(
            ParsedAttachment(filename=filename, content_type=ctype, data=data, content_id=cid, inline=inline)
        )

    def _returned_or_forwarded(self, part: Message, children: Any) -> None:
        inner = children[0] if isinstance(children, list) and children else None
        if isinstance(inner, Message):
            self.out.bounced_message_ids.extend(message_ids(_header_str(inner, "message-id")))
            subject = _header_str(inner, "subject")
        else:
            subject = ""
        data = _as_bytes(inner) if isinstance(inner, Message) else b""
        if data:
            name = _filename(part) or (re.sub(r"[^\w .-]", "_", subject)[:80].strip() or "message") + ".eml"
            self.out.attachments.append(ParsedAttachment(filename=name, content_type="message/rfc822", data=data))

    def _returned_headers(self, text: str) -> None:
        for line in text.splitlines():
            if line.lower().startswith("message-id:"):
                self.out.bounced_message_ids.extend(message_ids(line.split(":", 1)[1]))

    def _delivery_status(self, blocks: list[Any]) -> None:
        for block in blocks:
            if isinstance(block, Message):
                self._recipient_block(
                    {k.lower(): _header_str(block, k) for k in (block.keys() if hasattr(block, "keys") else [])}
                )

    def _delivery_status_text(self, text: str) -> None:
        for chunk in re.split(r"\r?\n\s*\r?\n", text):
            fields: dict[str, str] = {}
            for line in chunk.splitlines():
                if ":" in line and not line[:1].isspace():
                    k, v = line.split(":", 1)
                    fields.setdefault(k.strip().lower(), v.strip())
            self._recipient_block(fields)

    def _recipient_block(self, fields: dict[str, str]) -> None:
        recipient = fields.get("final-recipient") or fields.get("original-recipient")
        if not recipient:
            return
        action = fields.get("action", "failed").strip().lower()
        if action not in ("failed", ""):
            return  # delayed / delivered / relayed / expanded are not failures
        _type, _, addr = recipient.partition(";")
        addr = (addr or _type).strip().strip("<>")
        if "@" in addr and addr not in self.out.failed_recipients:
            self.out.failed_recipients.append(_clean(addr)[:320])
        diagnostic = fields.get("diagnostic-code") or fields.get("status")
        if diagnostic and not self.out.bounce_diagnostic:
            self.out.bounce_diagnostic = _clean(diagnostic)[:500]


def _default_name(ctype: str, inline: bool) -> str:
    ext = {"text/plain": ".txt", "text/html": ".html", "text/calendar": ".ics", "message/rfc822": ".eml"}.get(ctype)
    if ext is None and "/" in ctype:
        ext = "." + re.sub(r"[^a-z0-9]", "", ctype.split("/", 1)[1])[:10]
    return ("inline" if inline else "attachment") + (ext or "")


def parse_message(raw: RawMessage, *, spool_dir: str | None = None) -> ParsedEmail:
    """Parse a received message from its file — never raises for any input.

    Up to :data:`.spool.SPLIT_ABOVE` bytes it is read whole (:func:`parse`); a larger one is
    split first (:func:`.spool.split`) so its big parts stay on disk: their
    :class:`ParsedAttachment` carry ``spooled`` files instead of ``data`` (the caller closes them).
    """
    if raw.size <= SPLIT_ABOVE:
        return parse(raw.read_all())
    try:
        parts = split(raw.file, spool_dir=spool_dir)
    except Exception as exc:  # defensive: the splitter is total, but never lose the message to it
        out = ParsedEmail(sha256=raw.sha256)
        out.defects.append(f"could not read the MIME structure: {type(exc).__name__}")
        out.text = decode_bytes(raw.head(65536), "utf-8")
        return out
    out = parse(parts.skeleton, spooled=parts.parts, sha256=raw.sha256)
    out.defects.extend(d for d in parts.defects if d not in out.defects)
    used = {id(a.spooled) for a in out.attachments if a.spooled is not None}
    for part in parts.parts.values():
        if id(part) not in used:
            part.close()
    return out


def parse(raw: bytes, *, spooled: dict[str, SpooledPart] | None = None, sha256: str | None = None) -> ParsedEmail:
    """Parse ``raw`` (an RFC 5322 message) — never raises for any input.

    ``spooled`` are the part bodies :func:`.spool.split` took out of ``raw`` (a skeleton then);
    ``sha256`` is that of the whole message when ``raw`` is only its skeleton.
    """
    out = ParsedEmail(sha256=sha256 or hashlib.sha256(raw).hexdigest())
    try:
        msg = email.message_from_bytes(raw, policy=policy.compat32)
    except Exception as exc:  # pragma: no cover - the stdlib parser is itself total
        out.defects.append(f"unparseable: {type(exc).__name__}")
        out.text = decode_bytes(raw[:65536], "utf-8")
        return out
    try:
        _fill(out, msg, spooled)
    except Exception as exc:  # defensive: keep what was read
        out.defects.append(f"parse error: {type(exc).__name__}: {str(exc)[:200]}")
    return out


def _fill(out: ParsedEmail, msg: Message, spooled: dict[str, SpooledPart] | None = None) -> None:
    out.defects.extend(type(d).__name__ for d in (msg.defects or [])[:20])
    for key in ("auto-submitted", "precedence", "x-autoreply", "x-autorespond", "x-auto-response-suppress",
                "return-path", "x-loop", "x-failed-recipients", "list-id", "content-type",
                "x-autogenerated", "x-ms-exchange-generated-message-source"):  # fmt: skip
        value = _header_str(msg, key)
        if value:
            out.headers[key] = value[:500]
    senders = _addresses(msg, "from") or _addresses(msg, "sender")
    if senders:
        out.from_name, out.from_address = (senders[0][0].strip() or None), senders[0][1].strip()
        if out.from_name:
            out.from_name = out.from_name[:300]
    out.to = [a for _n, a in _addresses(msg, "to")]
    out.cc = [a for _n, a in _addresses(msg, "cc")]
    out.reply_to = [a for _n, a in _addresses(msg, "reply-to")]
    out.subject = _header_str(msg, "subject")[:500]
    ids = message_ids(_header_str(msg, "message-id") or _raw_header(msg, "message-id"))
    out.message_id = ids[0] if ids else None
    out.in_reply_to = message_ids(_header_str(msg, "in-reply-to"))[:MAX_REFERENCES]
    out.references = message_ids(_header_str(msg, "references"))[-MAX_REFERENCES:]
    out.date = _date(msg)
    out.content_type = _content_type(msg)
    try:
        report = msg.get_param("report-type") if out.content_type == "multipart/report" else None
    except Exception:
        report = None
    out.report_type = str(report).lower()[:60] if report else None
    xfailed = out.headers.get("x-failed-recipients")
    if xfailed:
        for _n, addr in email.utils.getaddresses([xfailed]):
            if "@" in addr and addr not in out.failed_recipients:
                out.failed_recipients.append(addr[:320])

    walker = _Walker(out, spooled)
    walker.walk(msg)
    plain = "\n\n".join(t.strip("\n") for t in walker.plain if t.strip())
    html_src = "\n".join(walker.html)
    if html_src.strip():
        out.html_source = html_src
        out.html = out.html_with({})
        if not plain:
            try:
                plain = sanitize.html_to_text(sanitize.sanitize_html(html_src))
            except Exception:
                plain = ""
    out.text = _normalise_newlines(plain)


def _normalise_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n").strip()


# -- classification ----------------------------------------------------------------------------

_OOO_SUBJECT = re.compile(
    r"^\s*(?:\[?auto(?:matic)?[\s_-]*(?:reply|response|antwort)|out\s+of\s+(?:the\s+)?office|"
    r"autoreply|auto-reply|vacation\s+reply|abwesenheitsnotiz|r[ée]ponse\s+automatique|"
    r"absence\s+du\s+bureau|автоответ|автоматический\s+ответ|нет\s+на\s+месте|"
    r"вне\s+офиса|в\s+отпуске|undeliver(?:ed|able)|delivery\s+status\s+notification)",
    re.IGNORECASE,
)
_BOUNCE_SENDERS = re.compile(r"^(?:mailer-daemon|postmaster|mail-daemon|mailerdaemon)(?:[+@]|$)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Classification:
    kind: Kind
    reason: str


def classify(
    parsed: ParsedEmail,
    *,
    mail_domain: str,
    own_addresses: frozenset[str] = frozenset(),
    envelope_from: str | None = None,
) -> Classification:
    """Is this a person's mail, an auto-reply, a bounce, or our own mail come back?

    ``envelope_from`` is the SMTP ``MAIL FROM`` (``""`` for the null sender, ``None`` unknown).
    """
    sender = (parsed.from_address or "").lower()
    local, _, domain = sender.rpartition("@")
    domain = domain.rstrip(".")
    if parsed.content_type == "multipart/report" and parsed.report_type == "delivery-status":
        return Classification(Kind.bounce, "multipart/report delivery-status")
    if _BOUNCE_SENDERS.match(local or sender):
        return Classification(Kind.bounce, f"sender {sender}")
    if parsed.failed_recipients:
        return Classification(Kind.bounce, "names failed recipients")
    # Loops: our own domain, a reply+ address, our own Message-ID, or an X-Loop we set.
    own_domain = mail_domain.lower().rstrip(".")
    if sender and (domain == own_domain or sender in own_addresses):
        return Classification(Kind.loop, f"sent from our own address {sender}")
    if local.startswith("reply+"):
        return Classification(Kind.loop, f"sent from a reply address {sender}")
    if parsed.message_id and parsed.message_id.lower().rpartition("@")[2] == own_domain:
        return Classification(Kind.loop, "the Message-ID is one of ours")
    if own_domain and own_domain in parsed.header("x-loop").lower():
        return Classification(Kind.loop, "X-Loop names our domain")
    auto = parsed.header("auto-submitted").split(";", 1)[0].strip().lower()
    if auto and auto != "no":
        return Classification(Kind.auto_reply, f"Auto-Submitted: {auto}")
    precedence = parsed.header("precedence").strip().lower()
    if precedence in ("bulk", "junk", "list", "auto_reply"):
        return Classification(Kind.auto_reply, f"Precedence: {precedence}")
    for name in ("x-autoreply", "x-autorespond", "x-autogenerated"):
        if parsed.header(name):
            return Classification(Kind.auto_reply, f"{name} header")
    if parsed.header("x-ms-exchange-generated-message-source"):
        return Classification(Kind.auto_reply, "generated by Exchange")
    if _OOO_SUBJECT.match(parsed.subject or ""):
        return Classification(Kind.auto_reply, "out-of-office subject")
    if envelope_from == "" or parsed.header("return-path").strip() == "<>":
        return Classification(Kind.bounce, "null return path")
    return Classification(Kind.message, "")


# -- trimming quoted history and signatures ------------------------------------------------------

_QUOTE_HEADERS = [
    re.compile(r"^\s*On\b.{0,300}\bwrote:\s*$", re.IGNORECASE),
    re.compile(r"^\s*Le\b.{0,300}\ba [ée]crit\s*:\s*$", re.IGNORECASE),
    re.compile(r"^\s*Am\b.{0,300}\bschrieb\b.{0,100}:\s*$", re.IGNORECASE),
    re.compile(r"^.{0,300}(?:написал|написала|написал\(а\)|пишет)\s*:\s*$", re.IGNORECASE),  # noqa: RUF001
    re.compile(
        r"^\s*-{2,}\s*(?:Original Message|Исходное сообщение|Пересылаемое сообщение|Forwarded message)\s*-{2,}",
        re.IGNORECASE,
    ),
    re.compile(r"^\s*_{10,}\s*$"),  # Outlook's rule above the quoted headers
]
_OUTLOOK_FROM = re.compile(r"^\s*\*?(?:From|От|Von|De)\s*:\*?\s*\S", re.IGNORECASE)
_OUTLOOK_NEXT = re.compile(
    r"^\s*\*?(?:Sent|Date|To|Subject|Отправлено|Дата|Кому|Тема|Gesendet|Envoyé)\s*:", re.IGNORECASE
)
_SIGNATURE = re.compile(r"^(?:-- ?|--|__\s*)$")
_MOBILE_SIGNATURE = re.compile(
    r"^\s*(?:Sent from my \w+|Sent from (?:Mail|Outlook) for \w+|Отправлено с (?:iPhone|iPad|моего \w+)|"  # noqa: RUF001
    r"Get Outlook for \w+)\b.*$",
    re.IGNORECASE,
)


def trim_reply(text: str) -> str:
    """``text`` without the quoted history and the signature (``text`` itself if nothing is left)."""
    if not text:
        return text
    lines = text.split("\n")
    cut = len(lines)
    for i, line in enumerate(lines):
        stripped = line.strip()
        if any(p.match(line) for p in _QUOTE_HEADERS):
            cut = i
            break
        # "On Mon, 1 Jan 2026 at 10:00, Someone <someone@example.com>\nwrote:" (wrapped by the client)
        if (
            i + 1 < len(lines)
            and re.match(r"^\s*On\b", line, re.IGNORECASE)
            and re.match(r"^.{0,200}\bwrote:\s*$", lines[i + 1], re.IGNORECASE)
        ):
            cut = i
            break
        if _OUTLOOK_FROM.match(line) and any(_OUTLOOK_NEXT.match(n) for n in lines[i + 1 : i + 5]):
            cut = i
            break
        if _SIGNATURE.match(line.rstrip("\r")) or _MOBILE_SIGNATURE.match(stripped):
            cut = i
            break
        if stripped.startswith(">") and _only_quotes_after(lines, i):
            cut = i
            break
    kept = "\n".join(lines[:cut]).rstrip()
    # Drop a dangling attribution line like "Иван Петров <ivan@example.ru>:" left above a quote.
    return kept if kept.strip() else text


def _only_quotes_after(lines: list[str], start: int) -> bool:
    """True when every non-blank line from ``start`` on is quoted (or a signature follows)."""
    for line in lines[start:]:
        s = line.strip()
        if not s:
            continue
        if _SIGNATURE.match(line.rstrip("\r")):
            return True
        if not s.startswith(">"):
            return False
    return True


_HTML_QUOTE_MARKERS = re.compile(
    r"""<div[^>]*class=["']?gmail_quote|<blockquote[^>]*type=["']?cite|<div[^>]*id=["']?divRplyFwdMsg|"""
    r"""<div[^>]*id=["']?appendonsend|<div[^>]*class=["']?moz-cite-prefix|<div[^>]*class=["']?yahoo_quoted|"""
    r"""<blockquote[^>]*class=["']?gmail_quote|<div[^>]*data-marker=["']?__QUOTED_TEXT__|"""
    r"""<div[^>]*class=["']?gmail_signature|<div[^>]*id=["']?Signature""",
    re.IGNORECASE,
)


def _drop_quoted_html(html: str) -> str:
    """HTML cut at the first quoted-history / signature block of the common mail clients.

    The cut fragment is re-balanced by the sanitiser; if nothing would be left, the whole HTML.
    """
    m = _HTML_QUOTE_MARKERS.search(html)
    if m is None:
        return html
    head = html[: m.start()]
    if not sanitize.html_to_text(sanitize.sanitize_html(head)).strip():
        return html
    return head


__all__ = [
    "Classification",
    "Kind",
    "ParsedAttachment",
    "ParsedEmail",
    "classify",
    "decode_bytes",
    "message_ids",
    "parse",
    "parse_message",
    "trim_reply",
]
