"""cgroup managers (v1 and v2, cgroupfs driver) behind one interface.

    from sandbox.linux.cgroups import open_manager
    manager = open_manager(cgroups_path, container_id)   # CgroupManager (types.py)
    manager.stats()                                      # CgroupStats
    manager.oom_kill_count()

See manager.py for the path rules, v1.py and v2.py for the files each writes.
"""

from __future__ import annotations

from sandbox.linux.cgroups.manager import (
    CGROUP_ROOT,
    is_unified,
    open_manager,
)

# Not typing.TYPE_CHECKING: see manager.py (crib-runtime imports this package).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from sandbox.linux.cgroups.errors import CgroupError, CgroupValueError
    from sandbox.linux.cgroups.types import CgroupManager, CgroupStats

__all__ = [
    "CGROUP_ROOT",
    "CgroupError",
    "CgroupManager",
    "CgroupStats",
    "CgroupValueError",
    "is_unified",
    "open_manager",
]


def __getattr__(name: str) -> Any:
    # Lazy, as in manager.py: the interface types cost start-up time crib-runtime skips.
    if name in ("CgroupManager", "CgroupStats"):
        from sandbox.linux.cgroups import types

        return getattr(types, name)
    if name in ("CgroupError", "CgroupValueError"):
        from sandbox.linux.cgroups import errors

        return getattr(errors, name)
    raise AttributeError(name)
