"""Placeholder: group-commit ingest writer (being filled in)."""

from __future__ import annotations

from typing import Any


class IngestWriter:
    def __init__(self, db: Any, settings: Any) -> None:
        self.db = db
        self.settings = settings

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None
