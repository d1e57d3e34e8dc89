"""Errors of the OCI runtime client and of reading a spec.

DomainError
 ├── OciRuntimeError                 (INTERNAL) `RUNTIME ... COMMAND` failed; carries stderr
 │    ├── OciContainerNotFoundError  (NOT_FOUND) the runtime does not know the container,
 │    │                              or it is not running (kill of a stopped container)
 │    ├── OciRuntimeTimeoutError     (DEADLINE_EXCEEDED) the runtime did not finish in time
 │    └── OciRuntimeMissingError     (FAILED_PRECONDITION) the runtime binary cannot be run
 ├── SpecError                       (INVALID_ARGUMENT) config.json (or a process or
 │                                   resources document) is not valid JSON, or a field has
 │                                   the wrong type or value
 └── SpecNotFoundError               (NOT_FOUND) the bundle or its config.json does not exist

spec.py re-exports the last two: it imports them only when it raises one (crib-runtime's
start-up budget; common.errors costs ~15 ms at import).
"""

from __future__ import annotations

from common.errors import (
    DeadlineExceededError,
    DomainError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
)


class OciRuntimeError(DomainError):
    """A runtime command failed."""

    def __init__(self, message: str, command: str = "", stderr: str = "") -> None:
        super().__init__(message)
        self.command = command
        self.stderr = stderr


class OciContainerNotFoundError(OciRuntimeError, NotFoundError):
    """The runtime has no such container (or it is not running)."""


class OciRuntimeTimeoutError(OciRuntimeError, DeadlineExceededError):
    """The runtime command outlived its timeout and was killed."""


class OciRuntimeMissingError(OciRuntimeError, FailedPreconditionError):
    """The runtime binary does not exist or cannot be executed."""


class SpecError(InvalidArgumentError):
    """config.json is not valid JSON, or a field has the wrong type or value."""


class SpecNotFoundError(NotFoundError):
    """The bundle or its config.json does not exist."""
