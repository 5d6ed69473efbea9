"""A run that lacks a real peer says so: every skip with its reason, and at the end which peers
were missing and the one command that installs them (a fresh machine used to skip 20 tests
without a word)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import peers

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_a_run_without_chromium_names_the_skips_and_the_install_command(tmp_path: Path, workers: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if k != "FRONTDESK_TEST_REQUIRE_SERVICES"}
    env["FRONTDESK_CHROMIUM"] = str(tmp_path / "no-chromium-here")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *workers, "-k", "sqlite",
         "tests/e2e/test_demo_browser.py"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300,
    )  # fmt: skip
    out = result.stdout
    assert result.returncode == 0, out[-3000:]
    assert "1 skipped" in out, out[-3000:]
    skipped = [line for line in out.splitlines() if line.startswith("SKIPPED [1] tests/e2e/test_demo_browser.py")]
    assert len(skipped) == 1, out[-3000:]
    assert f"Chromium not found at {tmp_path}" in skipped[0]
    assert "missing real peers" in out, out[-3000:]
    assert "apt-get install -y --no-install-recommends chromium" in out, out[-3000:]


def test_the_install_command_names_each_package_once() -> None:
    command = peers.install_command([peers.CHROMIUM, peers.DOVECOT, peers.CHROMIUM, peers.POSTGRESQL])
    assert command is not None
    assert command.endswith("apt-get install -y --no-install-recommends chromium dovecot-imapd")
    assert peers.install_command([peers.POSTGRESQL, peers.REDIS]) is None
