"""An undo stack: register a cleanup right after (or just before) each acquisition; on
failure run them newest first, keep going past failures, report what failed."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("crib.pods")


class UndoStack:
    """Cleanups of a half-made object, run in reverse order by `unwind`."""

    def __init__(self) -> None:
        self._steps: list[tuple[str, Callable[[], Awaitable[None]]]] = []

    def push(self, description: str, step: Callable[[], Awaitable[None]]) -> None:
        """Register a cleanup (`description` names it in logs and errors)."""
        self._steps.append((description, step))

    async def unwind(self) -> list[str]:
        """Run every cleanup, newest first; returns "description: error" for each failure."""
        failures = []
        while self._steps:
            description, step = self._steps.pop()
            try:
                await step()
            except Exception as err:  # noqa: BLE001 - every cleanup must get its turn
                log.error("undo %s failed: %s", description, err)
                failures.append(f"{description}: {err}")
        return failures
