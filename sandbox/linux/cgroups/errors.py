"""The cgroup error classes, apart from the code that raises them.

They subclass `common.errors`, whose import (enum, typing: ~15 ms) crib-runtime's `delete`
would otherwise pay at every container stop; `manager.cgroup_error` and
`manager.cgroup_value_error` import this module when they build an error, and `manager`
and the package re-export the classes lazily (PEP 562).

    DomainError
     ├── CgroupError       (FAILED_PRECONDITION)  a cgroup file could not be written or read
     └── CgroupValueError  (INVALID_ARGUMENT)     a value the kernel interface cannot express
"""

from __future__ import annotations

from common.errors import FailedPreconditionError, InvalidArgumentError


class CgroupError(FailedPreconditionError):
    """A cgroup file could not be written or read (names the file and the value)."""


class CgroupValueError(InvalidArgumentError):
    """A resource value the kernel interface cannot express (names the field)."""
