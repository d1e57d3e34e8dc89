"""CNI errors.

DomainError
 └── CniError
      ├── CniConfigError          (INVALID_ARGUMENT) a network configuration cannot be used
      ├── CniNotReadyError        (FAILED_PRECONDITION) no usable network / plugin binary
      ├── CniTimeoutError         (DEADLINE_EXCEEDED) a plugin call outlived its timeout
      ├── CniResultError          (INTERNAL) a plugin printed a result crib cannot read
      └── CniPluginError          (INTERNAL) a plugin failed; carries its code, msg and details
           └── CniTryAgainError   (UNAVAILABLE) codes 11 (try again later), 50, 51 (not available)

The plugin's error object is `{"cniVersion", "code", "msg", "details"}` on stdout
(SPEC.md "Error"); codes below 100 are the spec's, 100 and up are the plugin's own.
"""

from __future__ import annotations

from common.errors import (
    DeadlineExceededError,
    DomainError,
    FailedPreconditionError,
    InvalidArgumentError,
    UnavailableError,
)

# SPEC.md "Well-known Error Codes".
CODE_INCOMPATIBLE_VERSION = 1
CODE_UNSUPPORTED_FIELD = 2
CODE_CONTAINER_UNKNOWN = 3
CODE_INVALID_ENV = 4
CODE_IO = 5
CODE_DECODE = 6
CODE_INVALID_CONFIG = 7
CODE_TRY_AGAIN = 11
CODE_NOT_AVAILABLE = 50
CODE_NOT_AVAILABLE_DEGRADED = 51
TRY_AGAIN_CODES = frozenset({CODE_TRY_AGAIN, CODE_NOT_AVAILABLE, CODE_NOT_AVAILABLE_DEGRADED})


class CniError(DomainError):
    """Root of CNI errors."""


class CniConfigError(CniError, InvalidArgumentError):
    """A network configuration file is missing, unreadable or invalid."""


class CniNotReadyError(CniError, FailedPreconditionError):
    """No network configuration, or a plugin binary it needs, is usable."""


class CniTimeoutError(CniError, DeadlineExceededError):
    """A plugin did not finish within the per-call timeout and was killed."""


class CniResultError(CniError):
    """A plugin's result is not a result of any CNI version crib knows."""


class CniPluginError(CniError):
    """A plugin exited non-zero. `code`, `msg` and `details` are the plugin's own words."""

    def __init__(
        self,
        plugin: str,
        command: str,
        code: int,
        msg: str,
        details: str = "",
        network: str = "",
    ) -> None:
        where = f" (network {network!r})" if network else ""
        text = f"cni plugin {plugin} {command} failed{where}: code {code}: {msg}"
        if details:
            text += f": {details}"
        super().__init__(text)
        self.plugin = plugin
        self.command = command
        self.code = code
        self.msg = msg
        self.details = details
        self.network = network


class CniTryAgainError(CniPluginError, UnavailableError):
    """The plugin said: try again later, or not available right now."""


def plugin_error(
    plugin: str, command: str, code: int, msg: str, details: str = "", network: str = ""
) -> CniPluginError:
    """The error for a plugin's failure, of the class its code calls for."""
    cls = CniTryAgainError if code in TRY_AGAIN_CODES else CniPluginError
    return cls(plugin, command, code, msg, details, network)
