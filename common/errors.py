"""Error kinds shared by every crib package.

Lower layers raise a `DomainError` subclass that carries an `ErrorKind`; only the
API edge (`cri/edge.py`) turns a kind into a gRPC status code. Any exception that
is not a `DomainError` is a bug and reaches kubelet as UNKNOWN.

    Exception
     └── DomainError                (kind = INTERNAL)
          ├── InvalidArgumentError  (kind = INVALID_ARGUMENT)
          ├── NotFoundError         (kind = NOT_FOUND)
          ├── AlreadyExistsError    (kind = ALREADY_EXISTS)
          ├── FailedPreconditionError
          ├── ResourceExhaustedError
          ├── UnavailableError
          ├── UnimplementedError
          ├── DeadlineExceededError
          └── InternalError

Each package adds its own root (`ImageError(DomainError)`, …) and leaves that mix
in one of the categories above, e.g. `class ImageNotFoundError(ImageError,
NotFoundError)`. Messages are lowercase, carry no trailing period and name the
id, path or value at fault.
"""

from __future__ import annotations

import enum
from typing import ClassVar


class ErrorKind(enum.Enum):
    """What kind of failure a `DomainError` is; the edge maps each to one gRPC code."""

    INVALID_ARGUMENT = "invalid_argument"
    NOT_FOUND = "not_found"
    ALREADY_EXISTS = "already_exists"
    FAILED_PRECONDITION = "failed_precondition"
    RESOURCE_EXHAUSTED = "resource_exhausted"
    UNAVAILABLE = "unavailable"
    UNIMPLEMENTED = "unimplemented"
    DEADLINE_EXCEEDED = "deadline_exceeded"
    INTERNAL = "internal"


class DomainError(Exception):
    """Root of every error crib raises on purpose; `kind` says how callers should treat it."""

    kind: ClassVar[ErrorKind] = ErrorKind.INTERNAL


class InvalidArgumentError(DomainError):
    """The request itself is wrong (a field, a reference, a config value)."""

    kind = ErrorKind.INVALID_ARGUMENT


class NotFoundError(DomainError):
    """The named sandbox, container, image or file does not exist."""

    kind = ErrorKind.NOT_FOUND


class AlreadyExistsError(DomainError):
    """A name or id is already taken."""

    kind = ErrorKind.ALREADY_EXISTS


class FailedPreconditionError(DomainError):
    """The object exists but is in the wrong state for the request."""

    kind = ErrorKind.FAILED_PRECONDITION


class ResourceExhaustedError(DomainError):
    """A limit was reached (tokens, IPs, disk)."""

    kind = ErrorKind.RESOURCE_EXHAUSTED


class UnavailableError(DomainError):
    """A dependency (registry, plugin, the daemon itself while starting) cannot be reached."""

    kind = ErrorKind.UNAVAILABLE


class UnimplementedError(DomainError):
    """The operation is not built (yet), or not supported on this host."""

    kind = ErrorKind.UNIMPLEMENTED


class DeadlineExceededError(DomainError):
    """An operation ran out of time."""

    kind = ErrorKind.DEADLINE_EXCEEDED


class InternalError(DomainError):
    """Something crib relies on broke in a way the caller cannot fix."""

    kind = ErrorKind.INTERNAL
