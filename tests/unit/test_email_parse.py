"""MIME parsing, reply trimming, classification and reply addresses of inbound email."""
# ruff: noqa: RUF001  (Cyrillic text is what these samples are about)

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import cast

from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from frontdesk.channels.email import mailthread
from frontdesk.channels.email.parse import Kind, classify, decode_bytes, parse, trim_reply
from frontdesk.settings import Settings

DOMAIN = "support.example.net"
RU = "Здравствуйте! Мой заказ 123 не пришёл, подскажите, пожалуйста, что случилось."


def _classify(raw: bytes, **kw: object) -> Kind:
    return classify(parse(raw), mail_domain=DOMAIN, **kw).kind  # type: ignore[arg-type]


def test_plain_mail_headers_and_text() -> None:
    raw = (
        b"From: =?utf-8?q?J=C3=BCrgen_M=C3=BCller?= <Juergen@Example.COM>\r\n"
        b"To: help@support.example.net, Other <other@example.org>\r\n"
        b"Cc: cc@example.org\r\n"
        b"Subject: =?utf-8?b?0J/RgNC40LLQtdGC?= and more\r\n"
        b"Message-ID: <abc.123@mail.example.com>\r\n"
        b"In-Reply-To: <prev@support.example.net>\r\n"
        b"References: <first@x> <prev@support.example.net>\r\n"
        b"Date: Mon, 23 Nov 2026 10:15:00 +0300\r\n"
        b"\r\n"
        b"Hello,\r\nwhere is my parcel?\r\n"
    )
    p = parse(raw)
    assert p.from_address == "Juergen@Example.COM"
    assert p.from_name == "Jürgen Müller"
    assert p.to == ["help@support.example.net", "other@example.org"]
    assert p.cc == ["cc@example.org"]
    assert p.subject == "Привет and more"
    assert p.message_id == "abc.123@mail.example.com"
    assert p.in_reply_to == ["prev@support.example.net"]
    assert p.references == ["first@x", "prev@support.example.net"]
    assert p.date == datetime(2026, 11, 23, 7, 15, tzinfo=UTC)
    assert p.text == "Hello,\nwhere is my parcel?"
    assert p.html is None
    assert classify(p, mail_domain=DOMAIN).kind is Kind.message


def test_html_only_mail_is_sanitised_and_gives_text() -> None:
    m = EmailMessage()
    m["From"] = "a@example.com"
    m["Subject"] = "hi"
    m.set_content(
        "<p>Hello <b>there</b></p><script>alert(1)</script><a href='javascript:x()'>click</a>"
        "<img src=x onerror=alert(2)>",
        subtype="html",
    )
    p = parse(m.as_bytes())
    assert p.html is not None
    assert "<script" not in p.html
    assert "onerror" not in p.html
    assert "javascript:" not in p.html
    assert "<b>there</b>" in p.html
    assert p.text.startswith("Hello there")
    assert "alert" not in p.text


def test_attachments_and_inline_images() -> None:
    m = EmailMessage()
    m["From"] = "a@example.com"
    m.set_content("See the photo")
    m.add_alternative('<p>See <img src="cid:photo1@x"></p>', subtype="html")
    html_part = cast(list[EmailMessage], m.get_payload())[1]
    html_part.add_related(b"\x89PNG fake", maintype="image", subtype="png", cid="<photo1@x>")
    m.add_attachment(b"%PDF-1.4 data", maintype="application", subtype="pdf", filename="счёт №5.pdf")
    p = parse(m.as_bytes())
    assert p.text == "See the photo"
    by_type = {a.content_type: a for a in p.attachments}
    pdf, png = by_type["application/pdf"], by_type["image/png"]
    assert pdf.filename == "счёт №5.pdf"
    assert pdf.data == b"%PDF-1.4 data"
    assert not pdf.inline
    assert png.content_id == "photo1@x"
    assert png.inline
    assert png.data == b"\x89PNG fake"
    html = p.html_with({"photo1@x": "/api/v1/attachments/abc"})
    assert html is not None
    assert 'src="/api/v1/attachments/abc"' in html


def test_koi8r_and_windows1251_bodies_and_headers() -> None:
    for charset in ("koi8-r", "windows-1251"):
        m = EmailMessage()
        m["From"] = "Иван Петров <ivan@example.ru>"
        m["Subject"] = "Где мой заказ"
        m.set_content(RU, charset=charset, cte="8bit" if charset == "koi8-r" else "quoted-printable")
        raw = m.as_bytes()
        assert f'charset="{charset}"'.encode() in raw
        assert RU.encode() not in raw
        p = parse(raw)
        assert p.text == RU, charset
        assert p.subject == "Где мой заказ"
        assert p.from_name == "Иван Петров"


def test_raw_8bit_body_with_wrong_or_missing_charset() -> None:
    for declared, encoding in (
        ("utf-8", "koi8-r"),
        ("utf-8", "cp1251"),
        ("x-unknown-thing", "utf-8"),
        (None, "cp1251"),
    ):
        ctype = b"text/plain" + (f'; charset="{declared}"'.encode() if declared else b"")
        raw = b"From: a@example.com\r\nContent-Type: " + ctype + b"\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        p = parse(raw + RU.encode(encoding))
        assert p.text == RU, (declared, encoding)


def test_decode_never_raises_on_nonsense() -> None:
    assert decode_bytes(b"\xff\xfe\x00abc", "utf-16-nonsense") != ""
    assert "\x00" not in decode_bytes(b"a\x00b", "utf-8")
    assert decode_bytes(b"abc", "base64_codec") == "abc"  # not a text encoding: refused


def test_quoted_history_and_signatures_are_trimmed() -> None:
    cases = {
        "Thanks, that works.\n\nOn Mon, 23 Nov 2026 at 10:00, Support <help@x> wrote:\n> old": "Thanks, that works.",
        "Yes please\n\nOn Mon, 23 Nov 2026 at 10:00, Support Team\n<help@x.net> wrote:\n> old": "Yes please",
        "Call me.\n\n-----Original Message-----\nFrom: Support\nSent: Monday\n\nold": "Call me.",
        "Спасибо!\n\n23.11.2026, 10:00, Служба поддержки написал(а):\n> старый текст": "Спасибо!",
        "Ok\n\nFrom: Support <help@x.net>\nSent: Monday, November 23, 2026 10:00\nTo: me\nSubject: x\n\nold": "Ok",
        "Ок\n\nОт: Поддержка <help@x.net>\nОтправлено: 23 ноября 2026 г.\nКому: я\n\nстарое": "Ок",
        "Best regards\nAnna\n-- \nAnna Smith\nACME Ltd, +44 20 7946 0958": "Best regards\nAnna",
        "See below\n\n> quoted line 1\n> quoted line 2\n\n": "See below",
        "Hi there\n\nSent from my iPhone": "Hi there",
    }
    for text, shown in cases.items():
        assert trim_reply(text) == shown, text
    # An inline answer between quotes is the customer's text: nothing is cut there.
    inline = "> Which order?\n12345\n> And the date?\nYesterday"
    assert trim_reply(inline) == inline
    # When everything would be cut, the whole text stays.
    assert trim_reply("> only a quote") == "> only a quote"


def test_html_quote_blocks_are_cut_from_the_shown_html() -> None:
    m = EmailMessage()
    m["From"] = "a@example.com"
    m.set_content(
        '<div>New answer</div><div class="gmail_quote">On ... wrote:<blockquote>old</blockquote></div>', subtype="html"
    )
    p = parse(m.as_bytes())
    assert p.html is not None
    assert "New answer" in p.html
    assert "old" not in p.html
    assert "old" in p.text  # the full text (kept in meta) still has it


def _mail(headers: dict[str, str], body: str = "I am away until Monday.") -> bytes:
    m = EmailMessage()
    m["From"] = headers.pop("From", "person@example.com")
    m["To"] = "help@support.example.net"
    for k, v in headers.items():
        m[k] = v
    m.set_content(body)
    return m.as_bytes()


def test_auto_replies_are_recognised() -> None:
    assert _classify(_mail({"Auto-Submitted": "auto-replied"})) is Kind.auto_reply
    assert _classify(_mail({"Auto-Submitted": "no"})) is Kind.message
    assert _classify(_mail({"Precedence": "bulk"})) is Kind.auto_reply
    assert _classify(_mail({"Precedence": "junk"})) is Kind.auto_reply
    assert _classify(_mail({"X-Autoreply": "yes"})) is Kind.auto_reply
    assert _classify(_mail({"X-Autorespond": "1"})) is Kind.auto_reply
    assert _classify(_mail({"Subject": "Out of Office: back on Monday"})) is Kind.auto_reply
    assert _classify(_mail({"Subject": "Автоответ: в отпуске"})) is Kind.auto_reply
    assert _classify(_mail({"Subject": "Re: my order is out of stock"})) is Kind.message


def bounce_report(recipient: str, original_id: str = "orig-1@support.example.net") -> bytes:
    return (
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.org>\r\n"
        "To: help@support.example.net\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "Message-ID: <bounce-1@mx.example.org>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="BOUNDARY"\r\n'
        "\r\n"
        "--BOUNDARY\r\n"
        "Content-Type: text/plain\r\n\r\n"
        "I'm sorry to have to inform you that your message could not be delivered.\r\n"
        "--BOUNDARY\r\n"
        "Content-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.org\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\n"
        f"Original-Recipient: rfc822; {recipient}\r\n"
        "Action: failed\r\n"
        "Status: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 user unknown\r\n"
        "\r\n"
        "--BOUNDARY\r\n"
        "Content-Type: text/rfc822-headers\r\n\r\n"
        f"Message-ID: <{original_id}>\r\n"
        "Subject: Re: your order\r\n"
        "--BOUNDARY--\r\n"
    ).encode()


def test_bounces_name_the_failed_recipient() -> None:
    raw = bounce_report("Gone@Example.com")
    p = parse(raw)
    assert classify(p, mail_domain=DOMAIN).kind is Kind.bounce
    assert p.failed_recipients == ["Gone@Example.com"]
    assert p.bounced_message_ids == ["orig-1@support.example.net"]
    assert p.bounce_diagnostic
    assert "user unknown" in p.bounce_diagnostic
    # A delayed notice is not a failure.
    delayed = parse(raw.replace(b"Action: failed", b"Action: delayed"))
    assert delayed.failed_recipients == []
    assert _classify(_mail({"From": "postmaster@mx.example.org"})) is Kind.bounce
    assert _classify(_mail({}), envelope_from="") is Kind.bounce
    assert _classify(_mail({"Return-Path": "<>"})) is Kind.bounce


def test_loops_are_recognised() -> None:
    assert _classify(_mail({"From": "help@support.example.net"})) is Kind.loop
    assert _classify(_mail({"From": "reply+abc@elsewhere.example"})) is Kind.loop
    assert _classify(_mail({"From": "a@example.com", "Message-ID": "<x@support.example.net>"})) is Kind.loop
    assert _classify(_mail({"From": "desk@company.example"}), own_addresses=frozenset({"desk@company.example"})) is (
        Kind.loop
    )


def test_reply_addresses_round_trip_and_refuse_forgeries(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, secret_key="k" * 32, mail_domain="Support.Example.net")
    conv = uuid.uuid4()
    addr = mailthread.reply_address(conv, settings)
    local, _, domain = addr.partition("@")
    assert domain == "support.example.net"
    assert local.startswith("reply+")
    assert len(local) <= 64
    assert mailthread.conversation_from_address(addr, settings) == conv
    assert mailthread.conversation_from_address(addr.upper(), settings) == conv  # case folded by an MTA
    assert mailthread.conversation_from_address(f"<{addr}>", settings) == conv
    other = uuid.uuid4()
    forged = addr.replace(conv.hex, other.hex)
    assert mailthread.conversation_from_address(forged, settings) is None
    assert mailthread.conversation_from_address(addr.replace("support.example.net", "evil.example"), settings) is None
    assert mailthread.conversation_from_address("reply+short@support.example.net", settings) is None
    wrong_key = Settings(data_dir=tmp_path, secret_key="z" * 32, mail_domain="support.example.net")
    assert mailthread.conversation_from_address(addr, wrong_key) is None


# -- parse() is total -------------------------------------------------------------------------------

_header_names = st.sampled_from(
    ["From", "To", "Cc", "Subject", "Message-ID", "In-Reply-To", "References", "Date", "Content-Type",
     "Content-Transfer-Encoding", "Content-Disposition", "Auto-Submitted", "Return-Path", "X-Weird"]
)  # fmt: skip
_header_values = st.one_of(
    st.text(max_size=80),
    st.sampled_from(
        [
            "=?koi8-r?b?6dfBzg==?=",
            "=?bogus-charset?q?=FF=FE?=",
            "=?utf-8?b?broken",
            "multipart/mixed; boundary=",
            'multipart/mixed; boundary="b"',
            "multipart/report; report-type=delivery-status",
            "text/plain; charset=koi8-r",
            "text/plain; charset=x-nonsense",
            "message/rfc822",
            "base64",
            "quoted-printable",
            "attachment; filename*=utf-8''%FF%FE.txt",
            "<>",
            'a@b@c, <<>>, "unterminated',
        ]
    ),
)


@st.composite
def mime_like(draw: st.DrawFn) -> bytes:
    headers = draw(st.lists(st.tuples(_header_names, _header_values), max_size=10))
    head = "".join(f"{k}: {v}\r\n" for k, v in headers).encode("utf-8", "surrogatepass")
    body_parts = draw(
        st.lists(
            st.one_of(
                st.binary(max_size=200),
                st.sampled_from(
                    [b"--b\r\n", b"--b--\r\n", b"Content-Type: text/html\r\n\r\n<p>x", b"=\r\n=ZZ", b"\xd0\xd2\xc9"]
                ),
            ),
            max_size=8,
        )
    )
    return head + b"\r\n" + b"".join(body_parts)


@hsettings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=2000), mime_like()))
def test_parse_never_raises(raw: bytes) -> None:
    p = parse(raw)
    for value in (p.text, p.subject, p.from_address or "", p.html or "", *p.to, *p.references):
        assert "\x00" not in value
        value.encode("utf-8")  # no lone surrogates: storable everywhere
    classify(p, mail_domain=DOMAIN)
    trim_reply(p.text)


# -- big messages: the spooled parse reads what the whole parse reads ------------------------------


_PART = st.tuples(
    st.sampled_from(["bin", "text", "qp", "7bit", "eml", "html"]),
    st.integers(min_value=0, max_value=3000),
    st.sampled_from(["\r\n", "\n"]),
)


@given(st.lists(_PART, max_size=6), st.booleans(), st.sampled_from(["\r\n", "\n"]))
@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_a_split_message_parses_like_the_whole_message(parts: list[tuple[str, int, str]], alt: bool, eol: str) -> None:
    """With the thresholds lowered, every message goes through ``spool.split``: text, HTML and every
    attachment (name, type, bytes) come out the same as from parsing the whole message."""
    import random
    from email import policy
    from unittest import mock

    from frontdesk.channels.email import parse as parse_module
    from frontdesk.channels.email import spool
    from frontdesk.channels.email.parse import parse_message
    from frontdesk.channels.email.spool import RawMessage

    rnd = random.Random(len(parts) * 7919 + sum(n for _k, n, _e in parts))
    m = EmailMessage()
    m["From"] = "Анна <anna@example.com>"
    m["To"] = f"help@{DOMAIN}"
    m["Subject"] = "Большое письмо"
    m.set_content(RU + "\nline two\n")
    if alt:
        m.add_alternative(f"<p>{RU}</p><div>more</div>", subtype="html")
    for i, (kind, size, _e) in enumerate(parts):
        if kind == "bin":
            m.add_attachment(rnd.randbytes(size), maintype="application", subtype="octet-stream", filename=f"f{i}.bin")
        elif kind in ("text", "qp", "7bit"):
            text = "".join(rnd.choice("абв abc\n=  \t") for _ in range(size))
            cte = {"text": "base64", "qp": "quoted-printable", "7bit": "quoted-printable"}[kind]
            if kind == "7bit":
                text = "".join(c for c in text if c.isascii()) or "x"
                cte = "7bit"
            m.add_attachment(text, subtype="plain", filename=f"t{i}.txt", cte=cte)
        elif kind == "html":
            m.add_attachment("<p>" + "x" * size + "</p>", subtype="html", filename=f"h{i}.html")
        else:
            inner = EmailMessage()
            inner["Subject"] = f"inner {i}"
            inner["Message-ID"] = f"<inner{i}@example.com>"
            inner.set_content("inner body\n" * (size // 11 + 1))
            m.add_attachment(inner)
    raw = m.as_bytes(policy=policy.SMTP.clone(linesep=eol))
    whole = parse(raw)
    with mock.patch.object(parse_module, "SPLIT_ABOVE", 0), mock.patch.object(spool, "SPOOL_PART_ABOVE", 40):
        split = parse_message(RawMessage.from_bytes(raw))
    assert (split.text, split.html, split.subject, split.sha256) == (
        whole.text,
        whole.html,
        whole.subject,
        whole.sha256,
    )
    got = [(a.filename, a.content_type, a.spooled.read_all() if a.spooled else a.data) for a in split.attachments]
    assert got == [(a.filename, a.content_type, a.data) for a in whole.attachments]
    assert [a.sha256 for a in split.attachments] == [a.sha256 for a in whole.attachments]
    # Large parts were decoded to disk (an attached message is kept in the skeleton up to 1 MB).
    big = [a for a in whole.attachments if a.size > 40 and a.content_type != "message/rfc822"]
    assert all(a.spooled is not None for a in split.attachments if a.size > 40 and a.content_type != "message/rfc822")
    assert any(a.spooled is not None for a in split.attachments) or not big
    for a in split.attachments:
        if a.spooled is not None:
            a.spooled.close()


def test_a_huge_text_body_is_cut_not_held() -> None:
    from unittest import mock

    from frontdesk.channels.email import parse as parse_module
    from frontdesk.channels.email import spool
    from frontdesk.channels.email.parse import parse_message
    from frontdesk.channels.email.spool import RawMessage

    raw = b"From: a@example.com\r\nSubject: long\r\n\r\n" + b"all work and no play\r\n" * 2000
    with mock.patch.object(parse_module, "SPLIT_ABOVE", 0), mock.patch.object(spool, "TEXT_KEEP", 1000):
        parsed = parse_message(RawMessage.from_bytes(raw))
    assert parsed.text.startswith("all work and no play\nall work")
    assert len(parsed.text) < 2000
    assert "text part cut (the raw message is kept)" in parsed.defects
