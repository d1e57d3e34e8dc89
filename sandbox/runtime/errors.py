"""crib-runtime's error classes, kept apart from the code that raises them.

They subclass `common.errors`, whose import (enum, typing: ~15 ms here) every command
would otherwise pay at start-up; a command pays it only when it fails. Raise sites
import this module there and then. `container` re-exports its three classes lazily
(PEP 562) for `except container.ContainerNotFoundError:` clauses, which name the class
only when an exception is being matched.

    DomainError
     ├── ContainerNotFoundError (NOT_FOUND)            no container with that id under --root
     ├── ContainerExistsError   (ALREADY_EXISTS)       `create` of an id that is taken
     ├── ContainerStateError    (FAILED_PRECONDITION)  the command does not fit the status
     ├── BundleError            (INVALID_ARGUMENT)     the bundle cannot be run (rootfs, console)
     ├── CreateError            (INVALID_ARGUMENT)     a create step failed (step, errno, path)
     ├── ExecError              (INVALID_ARGUMENT)     exec could not start the process
     └── SignalError            (INVALID_ARGUMENT)     `kill` got a signal that does not exist
"""

from __future__ import annotations

from common.errors import (
    AlreadyExistsError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
)


class ContainerNotFoundError(NotFoundError):
    """No container with that id under --root."""


class ContainerExistsError(AlreadyExistsError):
    """`create` of an id that is taken."""


class ContainerStateError(FailedPreconditionError):
    """The command does not fit the container's status."""


class ExecError(InvalidArgumentError):
    """exec could not start the process; `str()` names the step, errno and path."""


class SignalError(InvalidArgumentError):
    """`kill` got a signal name or number that does not exist."""


class BundleError(InvalidArgumentError):
    """The bundle cannot be run (rootfs missing, bad console socket)."""


class CreateError(InvalidArgumentError):
    """A setup step failed; `str()` is the one line naming step, errno and path."""
