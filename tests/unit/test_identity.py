import pytest

from frontdesk.customers.identity import guess_kind, normalise, parse_identity
from frontdesk.errors import Invalid


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("+44 20 7946 0958", None, "+442079460958"),
        ("+44 (0)20 7946 0958", None, "+442079460958"),
        ("0044 20 7946 0958", None, "+442079460958"),
        ("tel:+44-20-7946-0958", None, "+442079460958"),
        ("020 7946 0958", "GB", "+442079460958"),
        ("+1 (202) 555-0143", None, "+12025550143"),
        ("202.555.0143", "US", "+12025550143"),
        ("+7 (912) 345-67-89", None, "+79123456789"),
        ("8 912 345 67 89", "RU", "+79123456789"),
        ("whatsapp:+79123456789", None, "+79123456789"),
    ],
)
def test_phones_become_e164(raw, region, expected):
    assert normalise("phone", raw, default_region=region) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Ann.Smith@Example.COM ", "ann.smith@example.com"),
        ("mailto:BOB@example.org", "bob@example.org"),
        ("Ivan@Пример.рф", "ivan@пример.рф"),
    ],
)
def test_emails_are_validated_and_lower_cased(raw, expected):
    assert normalise("email", raw) == expected


@pytest.mark.parametrize(
    ("kind", "raw"),
    [
        ("email", "not-an-email"),
        ("email", "ann@"),
        ("phone", "12"),
        ("phone", "020 7946 0958"),  # national format without a region
        ("phone", "call me maybe"),
        ("external_id", "   "),
        ("external_id", "abc\x00def"),
        ("email", "x" * 400 + "@example.com"),
    ],
)
def test_invalid_values_name_the_field(kind, raw):
    with pytest.raises(Invalid) as info:
        normalise(kind, raw, field="identities.0.value")
    assert info.value.status == 422
    assert info.value.extra["errors"][0]["field"] == "identities.0.value"


def test_unknown_kind_names_the_kind_field():
    with pytest.raises(Invalid) as info:
        normalise("fax", "123", field="identities.2.value")
    assert info.value.extra["errors"][0]["field"] == "identities.2.kind"
    assert "email" in info.value.detail


def test_other_kinds_are_trimmed_only():
    assert normalise("external_id", "  CRM-0042 ") == "CRM-0042"
    assert normalise("webchat_visitor", "v_AbC") == "v_AbC"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("email:Ann@Example.com", ("email", "ann@example.com")),
        ("Ann@Example.com", ("email", "ann@example.com")),
        ("+44 20 7946 0958", ("phone", "+442079460958")),
        ("phone:+7 912 345-67-89", ("phone", "+79123456789")),
        ("external_id:shop:42", ("external_id", "shop:42")),
    ],
)
def test_parse_identity(text, expected):
    assert parse_identity(text) == expected


def test_parse_identity_rejects_what_it_cannot_place():
    with pytest.raises(Invalid) as info:
        parse_identity("hello world")
    assert info.value.extra["errors"][0]["field"] == "identity"
    with pytest.raises(Invalid):
        parse_identity("email:nope")


def test_guess_kind():
    assert guess_kind("a@b.c").value == "email"
    assert guess_kind("+44 20 7946 0958").value == "phone"
    assert guess_kind("Ivan") is None
    assert guess_kind("12") is None


def test_a_refused_email_is_refused_every_time_and_a_good_one_kept_exact():
    """Normalised addresses are kept (the validator is slow); a refusal is not, and each refusal
    names the field it was given for."""
    for field in ("identity.value", "email"):
        with pytest.raises(Invalid) as refused:
            normalise("email", "not an email", field=field)
        assert refused.value.extra["errors"][0]["field"] == field
    assert normalise("email", "Ada@Example.com") == "ada@example.com"
    assert normalise("email", "mailto:Ada@Example.COM ") == "ada@example.com"
    assert normalise("email", "Ada@Example.com") == "ada@example.com"
