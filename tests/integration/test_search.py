"""``GET /api/v1/search`` on SQLite (FTS5 + triggers) and PostgreSQL (GIN on tsvector)."""

from __future__ import annotations

import random

import pytest
from sqlalchemy import literal, select, text, update

from frontdesk.conversations.ingest import InboundMessage
from frontdesk.models import Conversation, Customer, Identity, Message
from frontdesk.search import ddl
from frontdesk.search import service as search_service
from frontdesk.search.service import parse_query
from tests.builders import agent

API = "/api/v1"


@pytest.fixture
def settings(settings):
    return settings.model_copy(update={"run_loops": False})


async def new_customer(client, headers, name, *identities, **extra) -> dict:
    body = {"name": name, "identities": [{"kind": k, "value": v} for k, v in identities], **extra}
    r = await client.post(f"{API}/customers", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


async def new_conversation(client, headers, customer_id, subject=None, channel="email") -> dict:
    body = {"customer_id": customer_id, "channel": channel, "subject": subject}
    r = await client.post(f"{API}/conversations", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


async def reply(client, headers, conversation_id, text) -> dict:
    r = await client.post(f"{API}/conversations/{conversation_id}/messages", json={"text": text}, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


async def note(client, headers, conversation_id, text) -> dict:
    r = await client.post(f"{API}/conversations/{conversation_id}/notes", json={"text": text}, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


async def find(client, headers, q, **params) -> dict:
    r = await client.get(f"{API}/search", params={"q": q, **params}, headers=headers)
    assert r.status_code == 200, (q, r.text)
    return r.json()


def customer_ids(found: dict) -> list[str]:
    return [c["id"] for c in found["customers"]]


def conversation_ids(found: dict) -> list[str]:
    return [c["id"] for c in found["conversations"]]


async def test_customers_by_name_email_and_any_part_of_the_phone(client, app):
    _, headers = await agent(app)
    ivan = await new_customer(
        client, headers, "Иван Петров", ("email", "Ivan.Petrov@Example.com"), ("phone", "+7 916 123-45-67")
    )
    maria = await new_customer(client, headers, "María López", ("email", "maria@example.com"))
    other = await new_customer(client, headers, "Ivanka Trumpet", ("email", "ivanka@other.org"))

    # Cyrillic, any case; prefixes; every word must match.
    assert customer_ids(await find(client, headers, "ИВАН")) == [ivan["id"]]
    assert customer_ids(await find(client, headers, "петр")) == [ivan["id"]]
    assert customer_ids(await find(client, headers, "иван петров")) == [ivan["id"]]
    assert customer_ids(await find(client, headers, "иван сидоров")) == []
    assert set(customer_ids(await find(client, headers, "ivan"))) == {ivan["id"], other["id"]}  # the email's words
    # Emails, whole or in part.
    assert customer_ids(await find(client, headers, "maria@example.com")) == [maria["id"]]
    assert customer_ids(await find(client, headers, "ivan.petrov@example.com")) == [ivan["id"]]
    assert customer_ids(await find(client, headers, "other.org")) == [other["id"]]
    # Phones: the full number in any format, a national number, the last digits, digits in the middle.
    for q in ("+79161234567", "+7 (916) 123-45-67", "8 916 123 45 67", "9161234567", "4567", "1234"):
        assert customer_ids(await find(client, headers, q)) == [ivan["id"]], q
    assert customer_ids(await find(client, headers, "5555")) == []

    hit = (await find(client, headers, "maria@example.com"))["customers"][0]
    assert hit["name"] == "María López"
    assert hit["identities"] == [{"kind": "email", "value": "maria@example.com"}]
    assert hit["satisfaction_tier"] == "unknown"
    found = (await find(client, headers, "4567"))["customers"][0]
    assert {"kind": "phone", "value": "+79161234567"} in found["identities"]


async def test_conversations_by_message_note_and_subject_with_snippets(client, app):
    _, headers = await agent(app)
    customer = await new_customer(client, headers, "Ada Lovelace", ("email", "ada@example.com"))
    c1 = await new_conversation(client, headers, customer["id"], subject="Refund for order A-17")
    c2 = await new_conversation(client, headers, customer["id"], subject="Delivery")
    c3 = await new_conversation(client, headers, customer["id"], subject="Unrelated")
    long_text = (
        "Здравствуйте! "
        + "Мы проверили всё, что могли, и вот что выяснилось. " * 6
        + "Посылка по трекинг-номеру 9917 застряла на таможне, "
        + "и мы уже написали перевозчику. " * 6
    )
    sent = await reply(client, headers, c2["id"], long_text)
    internal = await note(client, headers, c3["id"], "Customer is a VIP, handle the Zanzibar shipment carefully")

    # A word from a long reply: the snippet is the text around it, shortened on both sides.
    found = await find(client, headers, "таможне")
    assert conversation_ids(found) == [c2["id"]]
    hit = found["conversations"][0]
    assert hit["message_id"] == sent["id"]
    assert "таможне" in hit["snippet"]
    assert hit["snippet"].startswith("…")
    assert hit["snippet"].endswith("…")
    assert len(hit["snippet"]) <= 170
    assert (hit["customer_id"], hit["customer_name"], hit["channel"], hit["status"], hit["subject"]) == (
        customer["id"], "Ada Lovelace", "email", "open", "Delivery"
    )  # fmt: skip
    assert hit["last_message_at"] is not None
    # Upper case, prefix, several words.
    assert conversation_ids(await find(client, headers, "ТАМОЖ перевоз")) == [c2["id"]]
    # Notes are searched too.
    found = await find(client, headers, "zanzibar")
    assert conversation_ids(found) == [c3["id"]]
    assert found["conversations"][0]["message_id"] == internal["id"]
    assert "Zanzibar" in found["conversations"][0]["snippet"]
    # The subject: no message, the snippet is the subject.
    found = await find(client, headers, "refund")
    assert conversation_ids(found) == [c1["id"]]
    assert found["conversations"][0]["message_id"] is None
    assert found["conversations"][0]["snippet"] == "Refund for order A-17"
    # Words never written anywhere find nothing.
    assert await find(client, headers, "гиппопотам") == {"customers": [], "conversations": []}


async def test_one_hit_per_conversation_newest_first_and_limit(client, app):
    _, headers = await agent(app)
    customer = await new_customer(client, headers, "Grace Hopper")
    convs = [await new_conversation(client, headers, customer["id"]) for _ in range(4)]
    for conv in convs:
        await reply(client, headers, conv["id"], "first mention of the kumquat")
    newest = await reply(client, headers, convs[0]["id"], "and the kumquat again, latest")

    found = await find(client, headers, "kumquat")
    # The first conversation has the newest match; each conversation appears once.
    assert conversation_ids(found) == [convs[0]["id"], convs[3]["id"], convs[2]["id"], convs[1]["id"]]
    assert found["conversations"][0]["message_id"] == newest["id"]
    assert conversation_ids(await find(client, headers, "kumquat", limit=2)) == [convs[0]["id"], convs[3]["id"]]


async def test_merged_away_and_erased_customers_are_left_out(client, app):
    _, headers = await agent(app)
    _, supervisor = await agent(app, "supervisor")
    survivor = await new_customer(client, headers, "Alan Turing", ("email", "alan@example.com"))
    ghost = await new_customer(client, headers, "Zebediah Ghost", ("email", "zeb@example.com"))
    erased = await new_customer(client, headers, "Quirinus Erased", ("email", "quirinus@example.com"))
    conv = await new_conversation(client, headers, erased["id"])
    await reply(client, headers, conv["id"], "the quokka password reset")
    assert customer_ids(await find(client, headers, "zebediah")) == [ghost["id"]]
    assert customer_ids(await find(client, headers, "quirinus")) == [erased["id"]]
    assert conversation_ids(await find(client, headers, "quokka")) == [conv["id"]]

    r = await client.post(f"{API}/customers/{survivor['id']}/merge", json={"other_id": ghost["id"]}, headers=supervisor)
    assert r.status_code == 201, r.text
    r = await client.post(f"{API}/customers/{erased['id']}/erase", headers=supervisor)
    assert r.status_code == 200, r.text

    assert customer_ids(await find(client, headers, "zebediah")) == []  # the ghost record is gone
    assert customer_ids(await find(client, headers, "zeb@example.com")) == [survivor["id"]]  # its email moved
    assert await find(client, headers, "quirinus") == {"customers": [], "conversations": []}
    assert await find(client, headers, "quokka") == {"customers": [], "conversations": []}


async def test_messages_stored_by_the_ingest_writer_are_searchable(client, app):
    _, headers = await agent(app)
    result = await app.state.ingest.submit(
        InboundMessage(
            identity_kind="email",
            identity_value="New.Person@Example.com",
            channel="email",
            external_id="<ingest-search-1@example.com>",
            text="My parcel with the platypus never arrived",
            name="Новый Клиент",
            subject="Lost platypus",
        )
    )
    found = await find(client, headers, "platypus")
    assert conversation_ids(found) == [str(result.conversation_id)]
    assert found["conversations"][0]["message_id"] == str(result.message_id)
    assert customer_ids(await find(client, headers, "new.person@example.com")) == [str(result.customer_id)]
    assert customer_ids(await find(client, headers, "новый")) == [str(result.customer_id)]

    # An edited text (an erase blanks it, a redaction rewrites it) moves in the index too.
    async with app.state.db.transaction() as s:
        await s.execute(update(Message).where(Message.id == result.message_id).values(text="redacted wombat"))
    assert (await find(client, headers, "parcel"))["conversations"] == []
    assert conversation_ids(await find(client, headers, "wombat")) == [str(result.conversation_id)]


@pytest.mark.parametrize(
    "q",
    [
        'he said "refund',
        "refund OR *",
        "a:* | !b & c",
        "NEAR(refund order)",
        "it's",
        "back\\slash",
        "col:umn",
        "(((",
        "^refund",
        "refund -order",
        "'; DROP TABLE messages; --",
    ],
)
async def test_query_syntax_is_not_interpreted(client, app, q):
    _, headers = await agent(app)
    customer = await new_customer(client, headers, "Syntax Tester")
    conv = await new_conversation(client, headers, customer["id"])
    await reply(client, headers, conv["id"], "refund order for it's back\\slash col:umn")
    r = await client.get(f"{API}/search", params={"q": q}, headers=headers)
    assert r.status_code in (200, 422), r.text
    if r.status_code == 422:
        assert r.json()["errors"][0]["field"] == "q"
    else:
        assert set(r.json()) == {"customers", "conversations"}
    # The table is still there and searchable.
    assert conversation_ids(await find(client, headers, "refund")) == [conv["id"]]


async def test_operators_are_plain_words(client, app):
    _, headers = await agent(app)
    customer = await new_customer(client, headers, "Quote Tester")
    conv = await new_conversation(client, headers, customer["id"])
    await reply(client, headers, conv["id"], "please refund the order")
    assert conversation_ids(await find(client, headers, '"refund')) == [conv["id"]]
    assert conversation_ids(await find(client, headers, "refund NOT")) == []  # the word "not" is not there
    assert conversation_ids(await find(client, headers, "refund -order")) == [conv["id"]]  # no exclusion
    assert conversation_ids(await find(client, headers, "refund | nothing")) == []  # no OR either


@pytest.mark.parametrize("q", ["", "   ", "...", "*", '"', "— !", "&|!", "ivan\x00"])
async def test_nothing_to_search_for_is_422(client, app, q):
    _, headers = await agent(app)
    r = await client.get(f"{API}/search", params={"q": q}, headers=headers)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["errors"][0]["field"] == "q"


async def test_random_punctuation_never_breaks_the_query(client, app):
    """Whatever mix of query-language characters is typed: an answer (or a 422), never a 500."""
    _, headers = await agent(app)
    customer = await new_customer(client, headers, "Fuzz O'Brien", ("email", "fuzz@example.com"))
    conv = await new_conversation(client, headers, customer["id"], subject='Fuzz "subject" (1)')
    await reply(client, headers, conv["id"], "fuzz: NEAR(a b) 'quoted' \\back + - * ^ ~ @ 50% & | !")
    pool = "ab\"'*:^()&|!<>-+\\%_@.,;{}[]~$#/ NEARORANDNOT\t\u00e9\u0451\u2028"
    rnd = random.Random(7)
    for _ in range(150):
        q = "".join(rnd.choice(pool) for _ in range(rnd.randint(1, 12)))
        r = await client.get(f"{API}/search", params={"q": q}, headers=headers)
        assert r.status_code in (200, 422), (q, r.text)


async def test_needs_an_agent(client, app):
    r = await client.get(f"{API}/search", params={"q": "x"})
    assert r.status_code == 401


@pytest.mark.parametrize("backend", ["sqlite"])  # PostgreSQL's expression indexes have nothing to rebuild
async def test_rebuild_refills_the_index(client, app, backend):
    _, headers = await agent(app)
    customer = await new_customer(client, headers, "Rebuild Person", ("phone", "+442079460000"))
    conv = await new_conversation(client, headers, customer["id"], subject="Rebuilt subject")
    await reply(client, headers, conv["id"], "a marmalade question")
    db = app.state.db
    # Data written before the index existed.
    async with db.transaction() as s:
        for table in ("search_customers", "search_conversations", "search_messages"):
            await s.execute(text(f"INSERT INTO {table}({table}) VALUES ('delete-all')")
                            if table != "search_customers" else text("DELETE FROM search_customers"))  # fmt: skip
    assert (await find(client, headers, "marmalade"))["conversations"] == []
    assert (await find(client, headers, "rebuild"))["customers"] == []
    async with db.transaction() as s:
        await search_service.rebuild(s)
    assert conversation_ids(await find(client, headers, "marmalade")) == [conv["id"]]
    assert conversation_ids(await find(client, headers, "rebuilt")) == [conv["id"]]
    assert customer_ids(await find(client, headers, "rebuild")) == [customer["id"]]
    assert customer_ids(await find(client, headers, "2079460000")) == [customer["id"]]


@pytest.mark.parametrize("backend", ["postgresql"])  # a PostgreSQL planner check: no SQLite variant
async def test_postgresql_search_expressions_match_the_gin_indexes(app, backend):
    """The planner can use an expression index only for the very same expression: if a query's
    expression drifted from the index's, PostgreSQL would scan the whole table."""
    query = parse_query("иван 4567")
    one = (query.words[0],)
    predicates = {
        "ix_search_customers_name": (Customer, search_service._matches(ddl.pg_name_vector(), "a", one)),
        "ix_search_identities_value": (Identity, search_service._matches(ddl.pg_identity_vector(), "a", one)),
        "ix_search_messages_text": (Message, search_service._message_match("postgresql", query)),
        "ix_search_conversations_subject": (Conversation, search_service._subject_match("postgresql", query)),
    }
    async with app.state.db.transaction() as s:
        await s.execute(text("SET LOCAL enable_seqscan = off"))
        for index, (model, predicate) in predicates.items():
            statement = select(literal(1)).select_from(model).where(predicate)
            compiled = statement.compile(s.get_bind(), compile_kwargs={"literal_binds": True})
            plan = "\n".join(r[0] for r in await s.execute(text(f"EXPLAIN {compiled}")))
            assert f"Bitmap Index Scan on {index}" in plan, (index, plan)


async def test_accents_are_folded_on_both_databases(client, app):
    """Jose finds José and Müller finds Muller, and the other way round, in names, identities,
    subjects and message text — on PostgreSQL as on SQLite."""
    _, headers = await agent(app)
    jose = await new_customer(client, headers, "José Muñoz", ("email", "jose.munoz@example.com"))
    muller = await new_customer(client, headers, "Hans Muller")
    conv = await new_conversation(client, headers, muller["id"], subject="Crème brûlée order")
    await reply(client, headers, conv["id"], "Sehr geehrter Herr Müller, Ihre Bestellung ist unterwegs.")

    assert customer_ids(await find(client, headers, "Jose")) == [jose["id"]]
    assert customer_ids(await find(client, headers, "josé")) == [jose["id"]]
    assert customer_ids(await find(client, headers, "MUNOZ")) == [jose["id"]]
    assert customer_ids(await find(client, headers, "Müller")) == [muller["id"]]
    assert customer_ids(await find(client, headers, "muller")) == [muller["id"]]
    assert conversation_ids(await find(client, headers, "Muller bestellung")) == [conv["id"]]
    assert conversation_ids(await find(client, headers, "creme brulee")) == [conv["id"]]
    assert conversation_ids(await find(client, headers, "Crème")) == [conv["id"]]
    # A typographic apostrophe folds to a plain one on PostgreSQL: still a plain word, never syntax.
    r = await client.get(f"{API}/search", params={"q": "o\u2019brien \u2018x"}, headers=headers)
    assert r.status_code == 200, r.text
