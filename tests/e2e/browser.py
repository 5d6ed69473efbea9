"""What the browser tests share: the real server as a subprocess, a one-page site on a second
origin and where screenshots go. Chromium is started by ``tests/e2e/chromium.py``; the
``chromium`` and ``browser`` fixtures are in ``tests/e2e/conftest.py``."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from tests.builders import DEFAULT_PASSWORD
from tests.integration.webhook_sink import free_port

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
VIEWPORT = {"width": 1280, "height": 800}


def shot(name: str) -> str:
    """Where the screenshot ``name`` goes (``test-artifacts/``, created on first use)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return str(ARTIFACTS / name)


async def sign_in(
    page: Any,
    base: str,
    email: str,
    labels: tuple[str, str, str],
    password: str = DEFAULT_PASSWORD,
    timeout_ms: int = 20_000,
) -> None:
    """Sign in to the desk through the sign-in page, as a person would: open ``/desk``, be sent to
    sign in, fill the fields named by ``labels`` (the e-mail, password and button texts in the
    page's language) and wait for the inbox."""
    from playwright.async_api import expect

    await page.goto(f"{base}/desk")
    await expect(page).to_have_url(f"{base}/?next=/desk")
    await page.get_by_label(labels[0], exact=True).fill(email)
    await page.get_by_label(labels[1], exact=True).fill(password)
    await page.get_by_role("button", name=labels[2], exact=True).click()
    await page.wait_for_url(f"{base}/desk*")
    await page.locator('body[data-inbox-ready="1"]').wait_for(state="attached", timeout=timeout_ms)


class ServerProcess:
    """``frontdesk.app`` under uvicorn in a subprocess on a fixed free port, so a test can stop and
    restart it; no Redis (one process), no auto-migration (the test's database is ready)."""

    def __init__(
        self,
        database_url: str,
        data_dir: Path,
        log: Path,
        secret_key: str,
        env: dict[str, str] | None = None,
        factory: str = "frontdesk.app:create_app",
    ) -> None:
        self.factory = factory  # another app factory (module:function) a test builds on create_app
        self.database_url = database_url
        self.data_dir = data_dir
        self.log = log
        self.secret_key = secret_key
        self.extra_env = env or {}
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        env = {
            **os.environ,
            "FRONTDESK_DATABASE_URL": self.database_url,
            "FRONTDESK_DATA_DIR": str(self.data_dir),
            "FRONTDESK_SECRET_KEY": self.secret_key,
            "FRONTDESK_AUTO_MIGRATE": "false",
            "FRONTDESK_TIMERS_POLL_SECONDS": "0.2",
            **self.extra_env,
        }
        env.pop("FRONTDESK_REDIS_URL", None)
        command = ["-m", "uvicorn", self.factory, "--factory", "--host", "127.0.0.1"]
        with self.log.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, *command, "--port", str(self.port), "--log-level", "warning",
                cwd=ROOT, env=env, stdout=out, stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
        deadline = asyncio.get_running_loop().time() + 60
        async with httpx.AsyncClient(timeout=1) as client:
            while asyncio.get_running_loop().time() < deadline:
                if self.proc.returncode is not None:
                    raise AssertionError(f"server exited with {self.proc.returncode}:\n{self.tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{self.base}/readyz")).status_code == 200:
                        return
                await asyncio.sleep(0.1)
        raise AssertionError(f"server did not start:\n{self.tail()}")

    async def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.returncode is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 15)
        except TimeoutError:
            proc.kill()
            await proc.wait()

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""


@contextlib.contextmanager
def serve_page(html: str) -> Iterator[str]:
    """One HTML page at ``/`` of a second origin: ``localhost`` differs from the server's
    ``127.0.0.1``, as a customer's site differs from Frontdesk."""
    page = html.encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] not in ("/", "/index.html"):
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()
