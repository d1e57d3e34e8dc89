"""The runtime handlers the e2e tests run against, in one place.

Every handler is crib's default configuration for it: `crib` runs crib-runtime, `runc`
runs runc. crib never special-cases a handler; the tests run the same checks on each.
"""

from __future__ import annotations

from common.binaries import resolve

HANDLERS = ["crib", "runc"]

# The binary of each handler in crib's embedded default configuration.
BINARIES = {"crib": "crib-runtime", "runc": "runc", "crun": "crun"}


def runtime_binary(handler: str) -> str:
    """The absolute path of `handler`'s runtime binary, as the daemon would resolve it."""
    path = resolve(BINARIES.get(handler, handler))
    assert path is not None, f"runtime binary of handler {handler!r} not found"
    return path
