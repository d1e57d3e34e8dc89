"""Errors of the conmon driver.

DomainError
 └── MonitorError                 (INTERNAL) conmon could not be run or reported nonsense
      ├── MonitorCreateError      (INTERNAL) the runtime failed to create; carries its stderr
      └── MonitorTimeoutError     (DEADLINE_EXCEEDED) no pid reported in time; conmon killed
"""

from __future__ import annotations

from common.errors import DeadlineExceededError, DomainError


class MonitorError(DomainError):
    """conmon failed or could not be started."""


class MonitorCreateError(MonitorError):
    """`runtime create` (run by conmon) failed; the message is the runtime's stderr."""


class MonitorTimeoutError(MonitorError, DeadlineExceededError):
    """conmon did not report the container pid within the create timeout."""
