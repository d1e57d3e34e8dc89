"""Errors of the containers area.

DomainError
 └── ContainerError                      (INTERNAL) a container operation failed
      ├── ContainerNotFoundError         (NOT_FOUND) no container has this id or prefix
      ├── ContainerStateError            (FAILED_PRECONDITION) not in a state the call takes
      ├── ContainerStopError             (INTERNAL) the process does not die after SIGKILL
      └── ContainerTeardownError         (INTERNAL) resources could not be released; names them
"""

from __future__ import annotations

from common.errors import DomainError, FailedPreconditionError, NotFoundError


class ContainerError(DomainError):
    """Root of the containers area's own errors."""


class ContainerNotFoundError(ContainerError, NotFoundError):
    """No container has this id (or unique id prefix)."""


class ContainerStateError(ContainerError, FailedPreconditionError):
    """The container is not in a state the operation accepts."""


class ContainerStopError(ContainerError):
    """The container's process does not die."""


class ContainerTeardownError(ContainerError):
    """Some resources of the container could not be released; the message names them."""
