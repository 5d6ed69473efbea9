"""Leader failover with two real servers on PostgreSQL.

Two ``python -m frontdesk serve`` processes share a scratch database; one holds the routing
advisory lock. The leader is killed with SIGKILL mid-work: the other must take over within a few
seconds, lose no waiting item, keep every assignment and open offer, and never give one
conversation to two agents. The killed server then comes back as a standby.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from frontdesk.db import Database
from frontdesk.dbadmin import scratch_database
from frontdesk.models import Conversation, Customer
from frontdesk.models.routing import RoutingItem, RoutingOffer
from tests.builders import make_token, make_user
from tests.conftest import POSTGRES_URL, _reachable, _unavailable, create_schema
from tests.integration.webhook_sink import free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
API = "/api/v1"
TAKEOVER_SECONDS = 10.0


@pytest.fixture
def pg_url() -> Iterator[str]:
    if not _reachable(POSTGRES_URL, 5432):
        _unavailable("PostgreSQL", POSTGRES_URL)
    with scratch_database(POSTGRES_URL, "fd_routing") as url:
        asyncio.run(create_schema(url))
        yield url


class Server:
    def __init__(self, url: str, data_dir: Path, log: Path) -> None:
        self.url = url
        self.data_dir = data_dir
        self.log = log
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {
            **os.environ,
            "FRONTDESK_DATABASE_URL": self.url,
            "FRONTDESK_DATA_DIR": str(self.data_dir),
            "FRONTDESK_SECRET_KEY": "routing-failover-secret-0123456789",
            "FRONTDESK_AUTO_MIGRATE": "false",
            "FRONTDESK_TIMERS_POLL_SECONDS": "0.2",
        }
        env.pop("FRONTDESK_REDIS_URL", None)
        with self.log.open("ab") as out:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "frontdesk", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.base}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"server did not start:\n{self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def call(server: Server, method: str, path: str, token: str, body: Any = None, expect: int = 200) -> Any:
    r = httpx.request(
        method, f"{server.base}{API}{path}", json=body, headers={"Authorization": f"Bearer {token}"}, timeout=15
    )
    assert r.status_code == expect, f"{method} {path}: {r.status_code} {r.text}"
    return r.json() if r.content else None


def leader_pid(state: dict[str, Any]) -> int | None:
    leader = state.get("leader")
    return int(leader["holder"].split(":")[1]) if leader else None


def wait_for(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def routing_rows(url: str) -> tuple[dict[str, RoutingItem], list[RoutingOffer], dict[str, Any]]:
    """Items, offers and assignees as the database has them (read on a connection of its own)."""

    async def read() -> tuple[dict[str, RoutingItem], list[RoutingOffer], dict[str, Any]]:
        db = Database(url)
        try:
            async with db.transaction() as s:
                items = {str(i.conversation_id): i for i in (await s.scalars(select(RoutingItem))).all()}
                offers = list((await s.scalars(select(RoutingOffer))).all())
                assignees = {str(c.id): c.assignee_id for c in (await s.scalars(select(Conversation))).all()}
        finally:
            await db.dispose()
        return items, offers, assignees

    return asyncio.run(read())


def seed(url: str) -> tuple[str, dict[str, tuple[Any, str]], list[Customer]]:
    """An admin token, three agents (id, token) and eight customers."""

    async def write() -> tuple[str, dict[str, tuple[Any, str]], list[Customer]]:
        db = Database(url)
        try:
            admin = await make_token(db, await make_user(db, role="admin", email="admin@example.com", name="Admin"))
            agents = {}
            for name in ("Alice", "Bob", "Carol"):
                user = await make_user(db, email=f"{name.lower()}@example.com", name=name)
                agents[name] = (user.id, await make_token(db, user))
            async with db.transaction() as s:
                customers = [Customer(name=f"Customer {i}") for i in range(8)]
                s.add_all(customers)
        finally:
            await db.dispose()
        return admin, agents, customers

    return asyncio.run(write())


def check_no_double_assignment(offers: list[RoutingOffer], assignees: dict[str, Any]) -> None:
    """At most one pending and at most one accepted offer per conversation, and the accepted one's
    agent is the conversation's assignee."""
    pending = Counter(str(o.conversation_id) for o in offers if o.status == "pending")
    accepted = [o for o in offers if o.status in ("accepted", "auto_accepted")]
    assert all(n == 1 for n in pending.values()), pending
    per_conv = Counter(str(o.conversation_id) for o in accepted)
    assert all(n == 1 for n in per_conv.values()), per_conv
    for o in accepted:
        assert assignees[str(o.conversation_id)] == o.agent_id


def test_killing_the_leader_hands_routing_to_the_other_server(pg_url: str, tmp_path: Path) -> None:
    log = tmp_path / "servers.log"
    a = Server(pg_url, tmp_path / "a", log)
    b = Server(pg_url, tmp_path / "b", log)
    try:
        admin, agents, customers = seed(pg_url)
        a.start()
        b.start()
        state = wait_for(lambda: call(a, "GET", "/routing/state", admin).get("leader"), 20, "a leader")
        first_pid = int(state["holder"].split(":")[1])
        assert first_pid in (a.proc.pid, b.proc.pid)  # type: ignore[union-attr]
        leader, standby = (a, b) if first_pid == a.proc.pid else (b, a)  # type: ignore[union-attr]
        epoch = state["epoch"]

        call(
            standby,
            "POST",
            "/queues",
            admin,
            {"name": "Chat", "channels": ["webchat"], "offer_timeout_seconds": 8},
            201,
        )
        for name in ("Alice", "Bob"):
            uid, token = agents[name]
            body = {"max_per_channel": {"webchat": 2}, "budget": 100, "cost": {"webchat": 25}}
            call(standby, "PUT", f"/agents/{uid}/routing-profile", admin, body)
            call(standby, "PUT", "/agents/me/presence", token, {"status": "available"})
        convs = []
        for i, customer in enumerate(customers[:6]):
            server = a if i % 2 else b  # both servers take requests; only the leader decides
            body = {"customer_id": str(customer.id), "channel": "webchat"}
            convs.append(call(server, "POST", "/conversations", admin, body, 201)["id"])

        def settled() -> bool:
            items, offers, _ = routing_rows(pg_url)
            return len(items) == 6 and sum(o.status == "pending" for o in offers) == 4

        wait_for(settled, 15, "four offers out, two waiting")
        alice_id, alice_token = agents["Alice"]
        mine = call(standby, "GET", "/routing/offers", alice_token)
        assert len(mine) == 2
        for offer in mine:  # Alice takes both of hers
            call(standby, "POST", f"/routing/offers/{offer['id']}/accept", alice_token)
        items, offers, assignees = routing_rows(pg_url)
        assigned_before = {c: a_ for c, a_ in assignees.items() if a_ is not None}
        assert set(assigned_before.values()) == {alice_id}
        bobs_before = {str(o.id) for o in offers if o.status == "pending"}
        waiting_before = {c for c, i in items.items() if i.state == "waiting"}
        assert len(bobs_before) == 2
        assert len(waiting_before) == 2

        # SIGKILL the leader: no shutdown, its lock connection just drops.
        killed_at = time.monotonic()
        leader.kill()
        state = wait_for(
            lambda: (s := call(standby, "GET", "/routing/state", admin))["leader"]["epoch"] > epoch and s,
            TAKEOVER_SECONDS,
            "the standby to take over",
        )
        took = time.monotonic() - killed_at
        assert leader_pid(state) == standby.proc.pid  # type: ignore[union-attr]
        print(f"takeover after {took:.2f}s")

        # Nothing lost, nothing doubled: assignments stand, Bob's offers are the same ones.
        items, offers, assignees = routing_rows(pg_url)
        assert {c: a_ for c, a_ in assignees.items() if a_ is not None} == assigned_before
        assert {str(o.id) for o in offers if o.status == "pending"} == bobs_before
        assert {c for c, i in items.items() if i.state == "waiting"} == waiting_before
        check_no_double_assignment(offers, assignees)

        # The new leader decides: a new agent gets the waiting ones; Bob's unanswered offers time out
        # and go on; a new conversation is routed.
        carol_id, carol_token = agents["Carol"]
        call(standby, "PUT", f"/agents/{carol_id}/routing-profile", admin, {"max_per_channel": {"webchat": 3}})
        call(standby, "PUT", "/agents/me/presence", carol_token, {"status": "available"})
        late = call(
            standby, "POST", "/conversations", admin, {"customer_id": str(customers[6].id), "channel": "webchat"}, 201
        )["id"]

        def carol_busy() -> bool:
            _, offers, _ = routing_rows(pg_url)
            return sum(o.status == "pending" and o.agent_id == carol_id for o in offers) == 3

        wait_for(carol_busy, 15, "Carol to get three offers")
        for offer in call(standby, "GET", "/routing/offers", carol_token):
            call(standby, "POST", f"/routing/offers/{offer['id']}/accept", carol_token)

        def bobs_timed_out() -> bool:
            _, offers, _ = routing_rows(pg_url)
            return all(o.status == "timed_out" for o in offers if str(o.id) in bobs_before)

        wait_for(bobs_timed_out, 20, "Bob's offers to time out under the new leader")

        # The killed server comes back: it stays a standby, the leader keeps deciding.
        leader.start()
        time.sleep(2.0)
        state = call(leader, "GET", "/routing/state", admin)
        assert leader_pid(state) == standby.proc.pid  # type: ignore[union-attr]
        items, offers, assignees = routing_rows(pg_url)
        check_no_double_assignment(offers, assignees)
        everything = [*convs, late]
        assert all(c in items for c in everything)  # every conversation is in routing
        assert all(items[c].state in ("waiting", "offered", "assigned") for c in everything)
        assert {c for c in everything if assignees[c] is not None} >= set(assigned_before)
        assert sum(1 for c in everything if assignees[c] == carol_id) == 3
    finally:
        a.stop()
        b.stop()
