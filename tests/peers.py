"""Real peers the suite drives (Chromium, Dovecot, PostgreSQL, Redis) and what to do when one is missing.

A test that needs a peer calls :func:`require`; when the peer is missing the test skips with the
reason (or fails under ``FRONTDESK_TEST_REQUIRE_SERVICES=1``) and the peer is remembered, so the
end of the run can say which peers were missing and the one command that installs them
(``pytest_terminal_summary`` in ``tests/conftest.py``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import pytest

REQUIRE_SERVICES = os.environ.get("FRONTDESK_TEST_REQUIRE_SERVICES", "") not in ("", "0", "false")


@dataclass(frozen=True)
class Peer:
    name: str
    what_for: str
    debian_package: str | None = None  # installed by `apt-get install`; None: a service to start
    start_hint: str | None = None


CHROMIUM = Peer("Chromium", "browser tests of the widget, desk, wallboard and admin", debian_package="chromium")
DOVECOT = Peer("Dovecot", "IMAP polling tests", debian_package="dovecot-imapd")
PLAYWRIGHT = Peer("playwright (Python)", "driving Chromium", start_hint="make .venv/.installed")
POSTGRESQL = Peer(
    "PostgreSQL",
    "the PostgreSQL variant of every database test",
    start_hint="start it (pg_ctlcluster <version> main start) or point FRONTDESK_TEST_POSTGRES_URL at one",
)
REDIS = Peer(
    "Redis",
    "the Redis variant of the hub tests",
    start_hint="start it (redis-server --daemonize yes) or point FRONTDESK_TEST_REDIS_URL at one",
)

PEERS = {p.name: p for p in (CHROMIUM, DOVECOT, PLAYWRIGHT, POSTGRESQL, REDIS)}
missing: dict[str, tuple[Peer, str]] = {}  # peer name -> (peer, first reason)
_MARK = re.compile(r"^(?P<reason>.*) \[missing peer: (?P<name>[^\]]+)\]$", re.S)


def require(peer: Peer, present: bool, reason: str) -> None:
    """Skip (or fail, when services are required) the calling test unless ``peer`` is ``present``.

    The skip reason names the peer, so the run's summary can gather them wherever the test ran
    (a pytest-xdist worker reports its skips to the controller: :func:`note_skip`)."""
    if present:
        return
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (FRONTDESK_TEST_REQUIRE_SERVICES=1: this test must run)")
    pytest.skip(f"{reason} [missing peer: {peer.name}]")


def note_skip(message: str) -> None:
    """Remember the peer a skip reason names (``pytest_runtest_logreport`` in tests/conftest.py)."""
    found = _MARK.match(message.removeprefix("Skipped: ").strip())
    if found and found["name"] in PEERS:
        missing.setdefault(found["name"], (PEERS[found["name"]], found["reason"]))


def install_command(peers: list[Peer]) -> str | None:
    """The one command that installs every missing Debian package, or ``None`` when none is missing."""
    packages = sorted({p.debian_package for p in peers if p.debian_package})
    if not packages:
        return None
    sudo = "" if hasattr(os, "geteuid") and os.geteuid() == 0 else "sudo "
    return f"{sudo}apt-get install -y --no-install-recommends {' '.join(packages)}"


def summary_lines() -> list[str]:
    """What the end of a run says about missing peers (empty when nothing was missing)."""
    if not missing:
        return []
    peers = [peer for peer, _ in missing.values()]
    lines = [f"{len(peers)} real peer(s) missing, so the tests that need them were skipped:"]
    lines += [f"  - {peer.name} ({peer.what_for}): {reason}" for peer, reason in missing.values()]
    command = install_command(peers)
    if command:
        lines.append(f"Install the missing packages with:  {command}")
    lines += [f"{peer.name}: {peer.start_hint}" for peer in peers if peer.start_hint and not peer.debian_package]
    return lines
