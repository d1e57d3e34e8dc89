"""Errors of pod sandbox set-up and teardown.

DomainError
 └── PodError                     (INTERNAL) a pod resource could not be made or released
      ├── PodConfigError          (INVALID_ARGUMENT) a pod setting is unusable; names it
      └── PodMountError           (INTERNAL) mount/umount of a pin or shm failed; names path
"""

from __future__ import annotations

from common.errors import DomainError, InvalidArgumentError


class PodError(DomainError):
    """A pod resource could not be made or released."""


class PodConfigError(PodError, InvalidArgumentError):
    """A pod setting (sysctl, DNS, cgroup parent, pause binary...) cannot be used."""


class PodMountError(PodError):
    """A mount or unmount failed; the message names the syscall, path and errno."""
