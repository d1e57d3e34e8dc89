"""Errors of the OCI runtime client.

DomainError
 └── OciRuntimeError                 (INTERNAL) `RUNTIME ... COMMAND` failed; carries stderr
      ├── OciContainerNotFoundError  (NOT_FOUND) the runtime does not know the container,
      │                              or it is not running (kill of a stopped container)
      ├── OciRuntimeTimeoutError     (DEADLINE_EXCEEDED) the runtime did not finish in time
      └── OciRuntimeMissingError     (FAILED_PRECONDITION) the runtime binary cannot be run
"""

from __future__ import annotations

from common.errors import (
    DeadlineExceededError,
    DomainError,
    FailedPreconditionError,
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
