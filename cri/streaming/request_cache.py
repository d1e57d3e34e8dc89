"""Single-use tokens for streaming URLs, as the Kubernetes CRI streaming library makes them.

Exec/Attach/PortForward only mint a URL; the request itself waits here under a random
token until the client connects:

    RPC ──insert(request)──▶ token ──URL /exec/<token>──▶ client ──consume(token)──▶ request

- a token is 8 URL-safe base64 characters (6 random bytes from the OS CSPRNG);
- it lives one minute, and is consumed by its first use, even a failing one;
- at most 1000 are outstanding; more is RESOURCE_EXHAUSTED (a DoS guard: in steady state
  a client uses its URL within milliseconds);
- an unknown, used or expired token is simply not found (the server answers 404).
"""

from __future__ import annotations

import base64
import collections
import secrets
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from cri.streaming.errors import StreamingError, TooManyStreamingRequestsError

TTL_S = 60.0
MAX_IN_FLIGHT = 1000
TOKEN_BYTES = 6  # 8 characters of base64

RequestT = TypeVar("RequestT")


class RequestCache(Generic[RequestT]):
    """Requests waiting for their streaming connection, by token."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        ttl_s: float = TTL_S,
        max_in_flight: int = MAX_IN_FLIGHT,
    ) -> None:
        self._clock = clock
        self._ttl_s = ttl_s
        self._max_in_flight = max_in_flight
        # Insertion order is expiry order (one TTL for all), so expired entries are a prefix.
        self._entries: collections.OrderedDict[str, tuple[float, RequestT]] = (
            collections.OrderedDict()
        )

    def __len__(self) -> int:
        return len(self._entries)

    def _gc(self, now: float) -> None:
        while self._entries:
            token, (expires_at, _) = next(iter(self._entries.items()))
            if now <= expires_at:
                return
            del self._entries[token]

    def insert(self, request: RequestT) -> str:
        """Store `request`; return its new token. Raises `TooManyStreamingRequestsError`."""
        now = self._clock()
        self._gc(now)
        if len(self._entries) >= self._max_in_flight:
            raise TooManyStreamingRequestsError(
                f"maximum number of in-flight streaming requests exceeded ({self._max_in_flight})"
            )
        for _ in range(10):
            token = base64.urlsafe_b64encode(secrets.token_bytes(TOKEN_BYTES)).decode("ascii")
            if token not in self._entries:
                self._entries[token] = (now + self._ttl_s, request)
                return token
        raise StreamingError("cannot generate a unique streaming token")  # pragma: no cover

    def consume(self, token: str) -> RequestT | None:
        """The request stored under `token`, removing it; None if unknown or expired."""
        entry = self._entries.pop(token, None)
        if entry is None:
            return None
        expires_at, request = entry
        if self._clock() > expires_at:
            return None
        return request
