"""Normalising identities so the same person is recognised on every channel.

Phones become E.164 (``phonenumbers``); emails are validated and lower-cased
(``email-validator``); other kinds are trimmed. Invalid values raise :class:`Invalid`
naming the field, never a 500.
"""

from __future__ import annotations

import functools
import re

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from frontdesk.errors import Invalid
from frontdesk.models.enums import IdentityKind

MAX_VALUE = 320

# "tel:", "sms:", "whatsapp:" prefixes that providers put in front of numbers.
_PHONE_SCHEME = re.compile(r"^(tel|sms|whatsapp|callto):", re.IGNORECASE)
_MAILTO = re.compile(r"^mailto:", re.IGNORECASE)
_PHONE_CHARS = re.compile(r"^[+(]?[0-9][0-9 ()./\-]*$")


def check_text(value: str, field: str) -> None:
    """Refuse NUL characters and lone surrogates (they break databases and JSON)."""
    if "\x00" in value:
        raise Invalid("must not contain NUL characters", field=field)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise Invalid("is not valid Unicode text", field=field) from exc


def normalise_email(value: str, field: str = "value") -> str:
    raw = _MAILTO.sub("", value.strip())
    try:
        return _valid_email(raw)
    except EmailNotValidError as exc:
        raise Invalid(f"not a valid email address: {exc}", field=field) from exc


@functools.lru_cache(maxsize=8192)
def _valid_email(raw: str) -> str:
    """``raw`` validated and lower-cased. Kept for the addresses seen last: the validator costs
    ~20 µs a call, a few percent of an inbound message's CPU, and most senders write again. A
    refused address raises, and a raise is not kept."""
    return validate_email(raw, check_deliverability=False).normalized.lower()


def normalise_phone(value: str, default_region: str | None = None, field: str = "value") -> str:
    raw = _PHONE_SCHEME.sub("", value.strip()).strip()
    if raw.startswith("00"):  # international prefix used across most of the world
        raw = "+" + raw[2:]
    try:
        number = phonenumbers.parse(raw, None if raw.startswith("+") else default_region)
    except phonenumbers.NumberParseException as exc:
        hint = "" if raw.startswith("+") else " (use international format, e.g. +44 20 7946 0958)"
        raise Invalid(f"not a valid phone number{hint}", field=field) from exc
    if not phonenumbers.is_possible_number(number):
        raise Invalid("not a possible phone number", field=field)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise(kind: str, value: str, *, default_region: str | None = None, field: str = "value") -> str:
    """The canonical form of ``value`` for identity ``kind`` (raises ``Invalid``)."""
    try:
        ik = IdentityKind(kind)
    except ValueError as exc:
        allowed = ", ".join(k.value for k in IdentityKind)
        kind_field = field.rsplit(".", 1)[0] + ".kind" if "." in field else "kind"
        raise Invalid(f"unknown identity kind '{kind}'; use one of: {allowed}", field=kind_field) from exc
    if not isinstance(value, str) or not value.strip():
        raise Invalid("must not be empty", field=field)
    if len(value) > MAX_VALUE:
        raise Invalid(f"longer than {MAX_VALUE} characters", field=field)
    check_text(value, field)
    if ik is IdentityKind.email:
        return normalise_email(value, field)
    if ik is IdentityKind.phone:
        return normalise_phone(value, default_region, field)
    return value.strip()


def guess_kind(value: str) -> IdentityKind | None:
    """The kind a bare search term most likely is: an email, a phone number, or neither."""
    raw = value.strip()
    if "@" in _MAILTO.sub("", raw):
        return IdentityKind.email
    stripped = _PHONE_SCHEME.sub("", raw).strip()
    if _PHONE_CHARS.match(stripped) and sum(ch.isdigit() for ch in stripped) >= 6:
        return IdentityKind.phone
    return None


def parse_identity(text: str, *, default_region: str | None = None, field: str = "identity") -> tuple[str, str]:
    """Parse ``kind:value`` or a bare email/phone into a normalised ``(kind, value)``.

    ``email:Ann@Example.com`` → ``("email", "ann@example.com")``; ``+44 20 7946 0958`` →
    ``("phone", "+442079460958")``. Anything else raises :class:`Invalid` naming ``field``.
    """
    raw = text.strip()
    prefix, sep, rest = raw.partition(":")
    if sep and prefix in IdentityKind.__members__:
        return prefix, normalise(prefix, rest, default_region=default_region, field=field)
    kind = guess_kind(raw)
    if kind is None:
        allowed = ", ".join(k.value for k in IdentityKind)
        raise Invalid(
            f"'{raw[:50]}' is neither kind:value (kinds: {allowed}) nor an email or phone number", field=field
        )
    return kind.value, normalise(kind.value, raw, default_region=default_region, field=field)
