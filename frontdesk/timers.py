"""Placeholder: due-work loop (being filled in)."""

from __future__ import annotations

from typing import Any


class Loops:
    async def stop(self) -> None:
        return None


async def start_loops(db: Any, settings: Any) -> Loops:
    return Loops()
