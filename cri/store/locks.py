"""Per-id asyncio locks: operations on one sandbox or container run one at a time,
operations on different ones run concurrently."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class KeyedLock:
    """`async with locks.hold(container_id): ...` serialises work per key.

    Entries are dropped when nobody holds or waits for them, so the map does not grow
    with every id ever seen.
    """

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        """Hold the lock of `key` for the duration of the block."""
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._users[key] = self._users.get(key, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._users[key] -= 1
            if self._users[key] == 0:
                del self._users[key]
                del self._locks[key]

    def locked(self, key: str) -> bool:
        """Whether someone holds `key` now."""
        lock = self._locks.get(key)
        return lock is not None and lock.locked()
