"""cgroup managers (v1 and v2, cgroupfs driver) behind one interface; see manager.py."""

from __future__ import annotations

from sandbox.linux.cgroups.manager import (
    CGROUP_ROOT,
    CgroupError,
    CgroupManager,
    CgroupStats,
    CgroupValueError,
    is_unified,
    open_manager,
)

__all__ = [
    "CGROUP_ROOT",
    "CgroupError",
    "CgroupManager",
    "CgroupStats",
    "CgroupValueError",
    "is_unified",
    "open_manager",
]
