"""Inbound sender authentication end to end: real DNS, real DKIM signatures, the real receiver.

A real DNS server on a loopback port is the authoritative DNS of the test domains (SPF, DKIM keys,
DMARC policies); messages are DKIM-signed with a key generated here and delivered over SMTP
(aiosmtplib) to the app's receiver, whose peer is always 127.0.0.1:

- ``good.example``: SPF authorises only 192.0.2.10, DKIM key ``s1``, DMARC ``p=reject``;
- ``spf.example``: SPF authorises 127.0.0.1, DMARC ``p=quarantine`` (SPF-aligned mail passes);
- ``nodmarc.example``: SPF authorises 127.0.0.1, no DMARC record.

The identity rule: only a DMARC pass proves the From address; unproven mail never joins a
customer who holds the address verified (a customer of its own + a merge suggestion); proof
beats a claim; the reply+ address (a secret) threads, In-Reply-To (public) does not.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import select

from frontdesk.channels.email import mailthread
from frontdesk.channels.email.inbound import receive_raw
from frontdesk.models import Customer, Identity, MergeSuggestion, Message
from frontdesk.settings import Settings
from tests.builders import auth_headers
from tests.builders.mail import (
    BlackHole,
    DkimKey,
    as_bytes,
    deliver,
    dkim_key,
    dkim_sign,
    message,
)
from tests.integration.dns_server import DnsServer

DOMAIN = "support.example.net"
HELP = f"help@{DOMAIN}"


@pytest.fixture(scope="module")
def key() -> DkimKey:
    return dkim_key()


@pytest.fixture
def dns_zone(key: DkimKey) -> Any:
    zone = DnsServer().start()
    zone.add("good.example", "v=spf1 ip4:192.0.2.10 -all")
    zone.add("s1._domainkey.good.example", key.record)
    zone.add("_dmarc.good.example", "v=DMARC1; p=reject; rua=mailto:dmarc@good.example")
    zone.add("spf.example", "v=spf1 ip4:127.0.0.1 -all")
    zone.add("_dmarc.spf.example", "v=DMARC1; p=quarantine")
    zone.add("nodmarc.example", "v=spf1 ip4:127.0.0.1 -all")
    yield zone
    zone.stop()


@pytest.fixture
def dns(request: pytest.FixtureRequest, dns_zone: DnsServer) -> Any:
    """The nameserver the app asks: the zone, or (``dead``) a socket that never answers."""
    if getattr(request, "param", "zone") == "dead":
        hole = BlackHole()
        yield hole.address
        hole.close()
    else:
        yield dns_zone.address


@pytest.fixture
def settings(settings: Settings, dns: str) -> Settings:
    return settings.model_copy(
        update={
            "smtp_listen": "127.0.0.1:0",
            "mail_domain": DOMAIN,
            "run_loops": False,
            "dns_servers": [dns],
            "dns_timeout": 0.5,
        }
    )


async def send(app: Any, raw: bytes, mail_from: str, rcpt: str = HELP) -> None:
    code, answer = await deliver(int(app.state.smtp_receiver.address[1]), raw, mail_from, [rcpt])
    assert code == 250, answer


async def customer_with(app: Any, address: str, *, verified: bool, name: str = "Anna Verified") -> uuid.UUID:
    async with app.state.db.transaction() as s:
        customer = Customer(name=name)
        s.add(customer)
        await s.flush()
        s.add(Identity(customer_id=customer.id, kind="email", value=address, verified=verified))
        return customer.id


async def stored(app: Any, raw: bytes) -> Message:
    mid = raw.split(b"Message-ID: <", 1)[1].split(b">", 1)[0].decode()
    async with app.state.db.transaction() as s:
        found = (await s.scalars(select(Message).where(Message.external_id == mid))).first()
    assert found is not None, f"message {mid} was not stored"
    return found


async def identity(app: Any, address: str) -> Identity:
    async with app.state.db.transaction() as s:
        found = (await s.scalars(select(Identity).where(Identity.kind == "email", Identity.value == address))).one()
    return found


async def suggestions(app: Any, customer_id: uuid.UUID) -> list[MergeSuggestion]:
    async with app.state.db.transaction() as s:
        rows = await s.scalars(
            select(MergeSuggestion).where(
                (MergeSuggestion.customer_a_id == customer_id) | (MergeSuggestion.customer_b_id == customer_id)
            )
        )
        return list(rows)


async def api_message(app: Any, client: Any, message_id: uuid.UUID) -> dict[str, Any]:
    headers = await auth_headers(app, "agent")
    response = await client.get(f"/api/v1/messages/{message_id}", headers=headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


def signed(key: DkimKey, frm: str, domain: str, **kw: Any) -> bytes:
    return dkim_sign(as_bytes(message(frm, HELP, **kw)), key, domain)


async def test_dkim_aligned_mail_joins_the_verified_customer(app: Any, client: Any, key: DkimKey) -> None:
    anna = await customer_with(app, "anna@good.example", verified=True)
    raw = signed(key, "Anna <anna@good.example>", "good.example", body="My order is late.")
    await send(app, raw, "anna@good.example")  # SPF fails (127.0.0.1 is not authorised); DKIM aligns
    msg = await stored(app, raw)
    assert msg.customer_id == anna
    auth = (await api_message(app, client, msg.id))["auth"]
    assert auth["authenticated"] is True
    assert (auth["dmarc"], auth["dkim"], auth["spf"]) == ("pass", "pass", "fail")
    assert (auth["domain"], auth["aligned"], auth["method"]) == ("good.example", "dkim", "smtp")
    assert auth["sender"]["outcome"] == "joined_verified"


async def test_spf_aligned_mail_passes_dmarc_and_proves_a_new_address(app: Any, client: Any) -> None:
    raw = as_bytes(message("Bob <bob@spf.example>", HELP))
    await send(app, raw, "bounces@spf.example")
    msg = await stored(app, raw)
    auth = msg.meta["auth"]
    assert (auth["dmarc"], auth["spf"], auth["dkim"], auth["aligned"]) == ("pass", "pass", "none", "spf")
    assert auth["policy"] == "quarantine"
    found = await identity(app, "bob@spf.example")
    assert found.customer_id == msg.customer_id
    assert found.verified is True  # mail that passes DMARC proves the address


async def test_forged_from_with_p_reject_does_not_join_and_is_marked(app: Any, client: Any, key: DkimKey) -> None:
    anna = await customer_with(app, "anna@good.example", verified=True)
    genuine = signed(key, "Anna <anna@good.example>", "good.example", subject="Order 42")
    await send(app, genuine, "anna@good.example")
    genuine_msg = await stored(app, genuine)

    # From: Anna, sent from a server good.example does not authorise, unsigned; it even names
    # Anna's real message in In-Reply-To (Message-IDs are not secrets).
    forged = as_bytes(
        message(
            "Anna <anna@good.example>", HELP, subject="Re: Order 42", body="Please send the refund to my new card.",
            In_Reply_To=f"<{genuine_msg.external_id}>", References=f"<{genuine_msg.external_id}>",
        )
    )  # fmt: skip
    await send(app, forged, "anna@good.example")
    msg = await stored(app, forged)
    assert msg.customer_id != anna
    assert msg.conversation_id != genuine_msg.conversation_id
    out = await api_message(app, client, msg.id)
    assert out["auth"]["authenticated"] is False
    assert (out["auth"]["dmarc"], out["auth"]["spf"], out["auth"]["policy"]) == ("fail", "fail", "reject")
    assert out["auth"]["sender"]["outcome"] == "kept_apart"
    assert out["auth"]["sender"]["verified_owner_id"] == str(anna)
    found = await suggestions(app, anna)
    assert [(s.reason, s.status) for s in found] == [("From: anna@good.example failed DMARC", "open")]
    assert {found[0].customer_a_id, found[0].customer_b_id} == {anna, msg.customer_id}
    assert found[0].evidence["identity"] == {"kind": "email", "value": "anna@good.example"}
    assert (await identity(app, "anna@good.example")).customer_id == anna  # the identity did not move

    # The next forged message continues the claimant's conversation, not Anna's.
    again = as_bytes(message("Anna <anna@good.example>", HELP, subject="Re: Order 42", body="Hurry up."))
    await send(app, again, "anna@good.example")
    second = await stored(app, again)
    assert (second.customer_id, second.conversation_id) == (msg.customer_id, msg.conversation_id)
    assert len(await suggestions(app, anna)) == 1

    # A signature that does not verify (the body was changed after signing) proves nothing either.
    tampered = signed(key, "Anna <anna@good.example>", "good.example", body="Pay 10 EUR.").replace(
        b"Pay 10 EUR.", b"Pay 9000 EUR."
    )
    await send(app, tampered, "anna@good.example")
    third = await stored(app, tampered)
    assert third.customer_id == msg.customer_id
    assert (third.meta["auth"]["dkim"], third.meta["auth"]["dmarc"]) == ("fail", "fail")


async def test_no_dmarc_record_is_none_and_does_not_join_a_verified_customer(app: Any, client: Any) -> None:
    bob = await customer_with(app, "bob@nodmarc.example", verified=True, name="Bob Verified")
    raw = as_bytes(message("Bob <bob@nodmarc.example>", HELP))
    await send(app, raw, "bob@nodmarc.example")  # SPF passes, but there is no DMARC to align it
    msg = await stored(app, raw)
    auth = (await api_message(app, client, msg.id))["auth"]
    assert (auth["dmarc"], auth["spf"], auth["authenticated"]) == ("none", "pass", False)
    assert msg.customer_id != bob
    assert [s.reason for s in await suggestions(app, bob)] == [
        "From: bob@nodmarc.example not authenticated (dmarc=none)"
    ]

    # Held only unverified, the address is a claim too: unproven mail joins its holder as before.
    carol = await customer_with(app, "carol@nodmarc.example", verified=False, name="Carol")
    raw = as_bytes(message("Carol <carol@nodmarc.example>", HELP))
    await send(app, raw, "carol@nodmarc.example")
    msg = await stored(app, raw)
    assert msg.customer_id == carol
    assert msg.meta["auth"]["sender"]["outcome"] == "joined"


async def test_once_an_agent_merges_unproven_mail_of_an_address_its_mail_joins_still_marked(
    app: Any, client: Any
) -> None:
    """An address whose domain cannot prove anything (no DMARC) would otherwise be split off on
    every message: the agent who merged it decided it is the customer's, so later mail joins them."""
    bob = await customer_with(app, "bob@nodmarc.example", verified=True, name="Bob Verified")
    first = as_bytes(message("Bob <bob@nodmarc.example>", HELP, body="First, from the road."))
    await send(app, first, "bob@nodmarc.example")
    apart = await stored(app, first)
    assert apart.customer_id != bob
    [suggestion] = await suggestions(app, bob)
    headers = await auth_headers(app, "agent")
    r = await client.post(
        f"/api/v1/merge-suggestions/{suggestion.id}/accept", json={"survivor_id": str(bob)}, headers=headers
    )
    assert r.status_code == 200, r.text

    later = as_bytes(message("Bob <bob@nodmarc.example>", HELP, subject="Again", body="Second, same road."))
    await send(app, later, "bob@nodmarc.example")
    msg = await stored(app, later)
    assert msg.customer_id == bob
    auth = (await api_message(app, client, msg.id))["auth"]
    assert (auth["authenticated"], auth["sender"]["outcome"]) == (False, "joined_by_agent")
    assert len(await suggestions(app, bob)) == 1  # no new suggestion

    # A forgery the domain disowns is still kept apart, whatever an agent merged before.
    eve = await customer_with(app, "eve@good.example", verified=True, name="Eve Verified")
    forged = as_bytes(message("Eve <eve@good.example>", HELP, body="Send it elsewhere."))
    await send(app, forged, "eve@good.example")
    assert (await stored(app, forged)).customer_id != eve


async def test_proof_beats_a_claim(app: Any, key: DkimKey) -> None:
    # An unauthenticated message claims anna@good.example first: nobody had it, so the claimant's
    # customer keeps it, unverified.
    claim = as_bytes(message("Not Anna <anna@good.example>", HELP, body="I am Anna, honest."))
    await send(app, claim, "anna@good.example")
    claimant = (await stored(app, claim)).customer_id
    assert (await identity(app, "anna@good.example")).verified is False

    # Then the real Anna writes, DKIM-signed: the proof wins the identity; the claimant keeps its
    # own record and history and gets a merge suggestion.
    real = signed(key, "Anna <anna@good.example>", "good.example", body="This is really me.")
    await send(app, real, "anna@good.example")
    msg = await stored(app, real)
    assert msg.customer_id != claimant
    found = await identity(app, "anna@good.example")
    assert (found.customer_id, found.verified) == (msg.customer_id, True)
    assert msg.meta["auth"]["sender"]["outcome"] == "proved"
    [suggestion] = await suggestions(app, claimant)  # the one rule every channel follows (customers.merge)
    assert suggestion.reason == "verified_identity_taken"
    assert suggestion.evidence["source"] == "email_dmarc"
    assert (await stored(app, claim)).customer_id == claimant  # nothing of the claimant's moved


async def test_the_reply_address_threads_but_a_public_message_id_does_not(app: Any) -> None:
    bob = await customer_with(app, "bob@nodmarc.example", verified=True, name="Bob Verified")
    async with app.state.db.transaction() as s:
        from frontdesk.models import Conversation

        conv = Conversation(customer_id=bob, channel="email", subject="Your order", status="open")
        s.add(conv)
        await s.flush()
        conversation_id = conv.id
    settings = app.state.settings
    reply_to = mailthread.reply_address(conversation_id, settings)

    # bob's domain cannot pass DMARC (no record), but a reply to the secret reply+ address proves
    # the mailbox received our mail: it joins Bob's conversation.
    reply = as_bytes(message("Bob <bob@nodmarc.example>", reply_to, subject="Re: Your order"))
    await send(app, reply, "bob@nodmarc.example", rcpt=reply_to)
    msg = await stored(app, reply)
    assert (msg.customer_id, msg.conversation_id) == (bob, conversation_id)
    assert msg.meta["auth"]["sender"]["outcome"] == "joined_by_reply_address"
    assert msg.meta["auth"]["authenticated"] is False  # still shown to agents as unauthenticated


async def test_a_dmarc_fail_does_not_join_even_through_the_reply_address(app: Any) -> None:
    anna = await customer_with(app, "anna@good.example", verified=True)
    async with app.state.db.transaction() as s:
        from frontdesk.models import Conversation

        conv = Conversation(customer_id=anna, channel="email", subject="Your order", status="open")
        s.add(conv)
        await s.flush()
        conversation_id = conv.id
    reply_to = mailthread.reply_address(conversation_id, app.state.settings)
    forged = as_bytes(message("Anna <anna@good.example>", reply_to, subject="Re: Your order"))
    await send(app, forged, "anna@good.example", rcpt=reply_to)
    msg = await stored(app, forged)
    assert msg.customer_id != anna
    assert msg.conversation_id != conversation_id


@pytest.mark.parametrize("dns", ["dead"], indirect=True)
async def test_a_dns_timeout_is_a_temperror_and_the_message_is_kept(app: Any, client: Any, key: DkimKey) -> None:
    anna = await customer_with(app, "anna@good.example", verified=True)
    raw = signed(key, "Anna <anna@good.example>", "good.example", body="Sent while your DNS is down.")
    await send(app, raw, "anna@good.example")  # answered 250: stored, not lost, not deferred
    msg = await stored(app, raw)
    auth = (await api_message(app, client, msg.id))["auth"]
    assert (auth["spf"], auth["dkim"], auth["dmarc"]) == ("temperror", "temperror", "temperror")
    assert auth["authenticated"] is False
    assert msg.customer_id != anna  # unproven: kept apart from the verified customer
    assert msg.text == "Sent while your DNS is down."


async def test_imap_mail_trusts_only_the_named_authserv_id(app: Any) -> None:
    anna = await customer_with(app, "anna@good.example", verified=True)
    trusted = "mx.mailhost.example"

    def polled(results: str) -> bytes:
        m = message("Anna <anna@good.example>", HELP)
        return b"Authentication-Results: " + results.encode() + b"\r\n" + as_bytes(m)

    # The receiving server (trusted by the inbox) says DMARC passed: the mail joins Anna.
    ok = polled(f"{trusted}; spf=pass smtp.mailfrom=good.example; dkim=pass header.d=good.example; "
                "dmarc=pass (p=reject) header.from=good.example")  # fmt: skip
    outcome = await receive_raw(app, ok, source="email.imap", trusted_authserv_ids=[trusted])
    assert outcome.customer_id == anna
    msg = await stored(app, ok)
    assert (msg.meta["auth"]["method"], msg.meta["auth"]["authserv_id"]) == ("authentication-results", trusted)

    # The same claim from a server the inbox does not name (e.g. added by the sender) counts for nothing.
    forged = polled("mx.attacker.example; dmarc=pass header.from=good.example")
    outcome = await receive_raw(app, forged, source="email.imap", trusted_authserv_ids=[trusted])
    assert outcome.customer_id != anna
    assert (await stored(app, forged)).meta["auth"]["dmarc"] == "none"

    # Without a trusted server configured, IMAP mail is never authenticated.
    again = polled(f"{trusted}; dmarc=pass header.from=good.example")
    outcome = await receive_raw(app, again, source="email.imap")
    assert outcome.customer_id != anna
    assert (await stored(app, again)).meta["auth"]["method"] == "none"
