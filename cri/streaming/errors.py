"""Errors of the streaming server.

    DomainError
     └── StreamingError
          ├── StreamingRequestInvalidError   (INVALID_ARGUMENT: Exec/Attach/PortForward request)
          ├── TooManyStreamingRequestsError  (RESOURCE_EXHAUSTED: 1000 URLs outstanding)
          └── StreamingUnavailableError      (UNAVAILABLE: the server is not serving)

Wire-level problems (bad handshakes, broken SPDY or WebSocket framing) never become
these: they are answered on the wire (HTTP status, GOAWAY, RST_STREAM, close codes).
"""

from __future__ import annotations

from common.errors import (
    DomainError,
    InvalidArgumentError,
    ResourceExhaustedError,
    UnavailableError,
)


class StreamingError(DomainError):
    """Root of the streaming server's errors."""


class StreamingRequestInvalidError(StreamingError, InvalidArgumentError):
    """An Exec, Attach or PortForward request cannot be served as asked."""


class TooManyStreamingRequestsError(StreamingError, ResourceExhaustedError):
    """Too many streaming URLs are outstanding (minted but not yet used or expired)."""


class StreamingUnavailableError(StreamingError, UnavailableError):
    """The streaming server is not listening (not started, or stopped)."""
