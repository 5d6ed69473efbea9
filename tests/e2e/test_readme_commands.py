"""The README's two commands, run from a fresh clone (committed files only, no .venv, no var/).

``make demo`` in the clone creates the virtualenv with the runtime only (no test tooling), migrates,
loads the demo data, prints the logins and serves: we sign in with the printed admin login and stop
it. ``make test`` then adds the dev extras, lints, type-checks and runs a restricted suite (only
tests/unit, so it cannot recurse into this file). The tests run in that order, on one clone. pip's
cache is shared with the outer run, so this takes a minute or two.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

NESTED = "FRONTDESK_E2E_NESTED"
# Another checkout to clone (e.g. a snapshot of uncommitted work); by default this repository.
REPO = Path(os.environ.get("FRONTDESK_TEST_E2E_REPO") or Path(__file__).resolve().parents[2])

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(1800),
    pytest.mark.skipif(bool(os.environ.get(NESTED)), reason="inside the README test's own `make test`"),
    pytest.mark.skipif(shutil.which("git") is None or shutil.which("make") is None, reason="needs git and make"),
]


def _env(tmp: Path) -> dict[str, str]:
    """The outer environment without Frontdesk settings (the clone must work on its defaults)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRONTDESK_") or k.startswith("FRONTDESK_TEST_")}
    env.pop("VIRTUAL_ENV", None)
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if "/.venv/" not in p)
    env[NESTED] = "1"
    env["FRONTDESK_DATA_DIR"] = str(tmp / "data")
    env.setdefault("PIP_CACHE_DIR", str(Path.home() / ".cache" / "pip"))
    env.pop("PIP_NO_CACHE_DIR", None)
    return env


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (REPO / ".git").exists():
        pytest.skip(f"{REPO} is not a git checkout")
    target = tmp_path_factory.mktemp("readme") / "frontdesk"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(target)], check=True, timeout=120)
    assert not (target / ".venv").exists()
    return target


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Server:
    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)  # the process group make started: make, frontdesk serve
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.reader.join(timeout=5)


@pytest.fixture
def demo_server(clone: Path) -> Iterator[tuple[_Server, str]]:
    port = _free_port()
    proc = subprocess.Popen(
        ["make", "demo", "HOST=127.0.0.1", f"PORT={port}"],
        cwd=clone, env={**_env(clone.parent), "COLUMNS": "160"}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True,
    )  # fmt: skip
    server = _Server(proc)
    try:
        yield server, f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def _printed_admin_login(output: str) -> tuple[str, str]:
    for line in output.splitlines():
        cells = [c.strip() for c in re.split(r"[│|]", line) if c.strip()]
        if cells[:1] == ["admin"] and len(cells) >= 3 and "@" in cells[1]:
            return cells[1], cells[2]
    raise AssertionError(f"no admin login in the output of make demo:\n{output[-4000:]}")


def test_make_demo_serves_and_the_printed_login_works(demo_server: tuple[_Server, str], clone: Path) -> None:
    server, base = demo_server
    deadline = time.monotonic() + 900  # installs the venv first
    page = None
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            pytest.fail(f"make demo exited with {server.proc.returncode}:\n{server.output[-6000:]}")
        try:
            page = httpx.get(base + "/", timeout=5)
            if page.status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    assert page is not None, server.output[-6000:]
    assert page.status_code == 200, server.output[-6000:]
    assert "Frontdesk" in page.text

    email, password = _printed_admin_login(server.output)
    with httpx.Client(base_url=base, timeout=10) as client:
        signed_in = client.post("/api/v1/auth/login", json={"email": email, "password": password})
        assert signed_in.status_code == 200, signed_in.text
        # The cookie is Secure even on 127.0.0.1 (browsers count loopback as a secure context; Python's
        # cookie jar does not and would keep it to itself), so send it back by hand.
        cookie = signed_in.cookies["frontdesk_session"]
        me = client.get("/api/v1/auth/me", headers={"Cookie": f"frontdesk_session={cookie}"})
        assert me.status_code == 200, me.text
        assert me.json()["user"]["email"] == email
        assert client.get("/healthz").json() == {"status": "ok"}
    assert (clone.parent / "data" / "frontdesk.db").exists()  # FRONTDESK_DATA_DIR was honoured
    # The demo needs no test tooling: the venv it made holds the runtime only.
    assert (clone / ".venv" / "bin" / "frontdesk").exists()
    assert not (clone / ".venv" / "bin" / "pytest").exists(), "make demo installed the dev extras"


def test_make_test_from_a_fresh_clone(clone: Path) -> None:
    result = subprocess.run(
        ["make", "test", 'PYTEST_ARGS=tests/unit -q -p no:cacheprovider'],
        cwd=clone, env=_env(clone.parent), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=1500,
    )  # fmt: skip
    output = result.stdout
    assert result.returncode == 0, output[-6000:]
    assert (clone / ".venv" / "bin" / "frontdesk").exists()
    assert re.search(r"\d+ passed", output), output[-3000:]
