"""The runtime handlers the e2e tests run against, in one place.

"crib" (crib-runtime) is added here when crib-runtime lands; until then the tests drive
the runc handler (crib never special-cases runc: it is just another handler).
"""

from __future__ import annotations

HANDLERS = ["runc"]
