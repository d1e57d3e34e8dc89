"""cgroup managers (v1 and v2, cgroupfs driver) behind one interface.

    from sandbox.linux.cgroups import open_manager
    manager = open_manager(cgroups_path, container_id)   # CgroupManager (types.py)
    manager.stats()                                      # CgroupStats
    manager.oom_kill_count()

See manager.py for the path rules, v1.py and v2.py for the files each writes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sandbox.linux.cgroups.manager import (
    CGROUP_ROOT,
    CgroupError,
    CgroupValueError,
    is_unified,
    open_manager,
)

if TYPE_CHECKING:
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
    raise AttributeError(name)
