"""Checks that a test left no kernel object behind (cgroups, mounts)."""

from __future__ import annotations

import os

CGROUP_ROOT = "/sys/fs/cgroup"


def cgroup_leftovers(name: str) -> list[str]:
    """Directories named `name` left in any hierarchy (v1 controllers and the v2 mount)."""
    found = []
    for entry in os.listdir(CGROUP_ROOT):
        path = os.path.join(CGROUP_ROOT, entry, name)
        if os.path.isdir(path) and not os.path.islink(os.path.join(CGROUP_ROOT, entry)):
            found.append(path)
    return found


def mounts_under(path: str) -> list[str]:
    """Mount points of the host mount namespace at or below `path`."""
    result = []
    with open("/proc/self/mountinfo") as info:
        for line in info:
            mount_point = line.split()[4]
            if mount_point == path or mount_point.startswith(path.rstrip("/") + "/"):
                result.append(mount_point)
    return result
