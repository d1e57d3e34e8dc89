"""Errors of the container host-side helpers.

DomainError
 └── ContainerHostError              (INTERNAL) a host-side step for a container failed
      └── RootfsMountError           (INTERNAL) mounting or unmounting a root filesystem
"""

from __future__ import annotations

from common.errors import DomainError


class ContainerHostError(DomainError):
    """A host-side step for a container failed."""


class RootfsMountError(ContainerHostError):
    """A container root filesystem (or image view) could not be mounted or unmounted."""
