"""CNI errors.

DomainError
 └── CniError
      ├── CniConfigError   (INVALID_ARGUMENT) a network configuration cannot be used
      └── CniPluginError   (INTERNAL) a plugin failed; carries its code, msg and details
"""

from __future__ import annotations

from common.errors import DomainError, InvalidArgumentError


class CniError(DomainError):
    """Root of CNI errors."""


class CniConfigError(CniError, InvalidArgumentError):
    """A network configuration file is missing, unreadable or invalid."""
