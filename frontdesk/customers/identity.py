"""Normalising identities so the same person is recognised on every channel.

Phones become E.164 (``phonenumbers``); emails are validated and lower-cased
(``email-validator``); other kinds are trimmed. Invalid values raise :class:`Invalid`
naming the field, never a 500.
"""

from __future__ import annotations

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from frontdesk.errors import Invalid
from frontdesk.models.enums import IdentityKind

MAX_VALUE = 320


def normalise_email(value: str, field: str = "value") -> str:
    try:
        result = validate_email(value.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise Invalid(f"not a valid email address: {exc}", field=field) from exc
    return result.normalized.lower()


def normalise_phone(value: str, default_region: str | None = None, field: str = "value") -> str:
    raw = value.strip()
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
        raise Invalid(f"unknown identity kind '{kind}'; use one of: {allowed}", field="kind") from exc
    if not isinstance(value, str) or not value.strip():
        raise Invalid("must not be empty", field=field)
    if len(value) > MAX_VALUE:
        raise Invalid(f"longer than {MAX_VALUE} characters", field=field)
    if ik is IdentityKind.email:
        return normalise_email(value, field)
    if ik is IdentityKind.phone:
        return normalise_phone(value, default_region, field)
    if "\x00" in value:
        raise Invalid("must not contain NUL characters", field=field)
    return value.strip()
