"""Property-based API testing with schemathesis: every operation in /openapi.json, fed valid and invalid
input, with an admin API token, on both backends.

What must hold for every request: no server error (5xx), and the answer (status, content type and body)
matches what /openapi.json documents. Examples are bounded and derandomised so the run is quick and the
same each time; a failure names the operation and shows a curl command that reproduces it.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.result import Err
from schemathesis.python.asgi import shutdown_lifespans

from frontdesk.app import create_app
from frontdesk.db import Database
from frontdesk.settings import Settings
from tests.builders import make_token, make_user
from tests.conftest import truncate_all

MAX_EXAMPLES = int(os.environ.get("FRONTDESK_TEST_FUZZ_EXAMPLES", "12"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXCLUDED_PREFIXES = ("/ws",)  # the WebSocket has its own tests; schemathesis speaks HTTP


async def _admin_token(url: str) -> str:
    database = Database(url)
    try:
        admin = await make_user(database, role="admin", email="fuzz-admin@example.com")
        return await make_token(database, admin, ["read", "write"])
    finally:
        await database.dispose()


async def _truncate(url: str) -> None:
    database = Database(url)
    try:
        await truncate_all(database)
    finally:
        await database.dispose()


def _describe(exc: BaseException) -> str:
    notes = "\n".join(getattr(exc, "__notes__", []))
    text = str(exc).strip()
    if isinstance(exc, BaseExceptionGroup):
        text = "\n".join(f"{type(e).__name__}: {str(e).strip()}" for e in exc.exceptions)
    return f"{text}\n{notes}".strip()


def _fuzz(operation: Any, mode: Any, headers: dict[str, str]) -> str | None:
    """Run the bounded examples of one operation in one mode; the failure report, or ``None``."""
    strategy = operation.as_strategy(generation_mode=mode)

    @hypothesis.settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate],
        verbosity=hypothesis.Verbosity.quiet,
        report_multiple_bugs=False,
    )
    @hypothesis.given(case=strategy)
    def run(case: Any) -> None:
        try:
            case.call_and_validate(headers=headers, checks=CHECKS)
        except (Exception, BaseExceptionGroup) as exc:
            exc.add_note(case.as_curl_command(headers={"Authorization": "Bearer $TOKEN"}))
            raise

    try:
        run()
    except hypothesis.errors.Unsatisfiable:
        return None  # nothing invalid can be said to an operation without inputs
    except (Exception, BaseExceptionGroup) as exc:  # schemathesis's FailureGroup is a BaseExceptionGroup
        return f"{operation.method.upper()} {operation.path} [{mode.value}]: {_describe(exc)}"
    return None


def test_every_operation_answers_within_its_schema(database_url: str, tmp_path: Path) -> None:
    settings = Settings(database_url=database_url, data_dir=tmp_path / "var", secret_key="fuzz-secret-key-0123456789",
                        auto_migrate=False, run_loops=False)  # fmt: skip
    token = asyncio.run(_admin_token(database_url))
    headers = {"Authorization": f"Bearer {token}"}
    app = create_app(settings)
    failures: list[str] = []
    tested: list[str] = []
    try:
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        for result in schema.get_all_operations():
            if isinstance(result, Err):
                failures.append(f"an operation cannot be tested, its schema is invalid: {result.err()}")
                continue
            operation = result.ok()
            if operation.path.startswith(EXCLUDED_PREFIXES):
                continue
            tested.append(operation.label)
            for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
                if (failure := _fuzz(operation, mode, headers)) is not None:
                    failures.append(failure)
    finally:
        shutdown_lifespans()
        asyncio.run(_truncate(database_url))
    assert len(tested) >= 5, tested  # /openapi.json really lists the API
    assert not failures, f"{len(failures)} of {len(tested)} operations broke their contract:\n\n" + "\n\n".join(
        failures
    )


@pytest.mark.parametrize("path", ["/openapi.json", "/docs"])
async def test_api_documentation_is_served(client: Any, path: str) -> None:
    r = await client.get(path)
    assert r.status_code == 200
    if path == "/openapi.json":
        spec = r.json()
        assert spec["info"]["title"] == "Frontdesk"
        assert any(p.startswith("/api/v1/") for p in spec["paths"])
        for path_item in spec["paths"].values():
            for method, op in path_item.items():
                assert op.get("summary"), f"{method.upper()} without a summary"
