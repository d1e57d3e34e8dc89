"""The pause process's cgroup: `<cgroup_parent>/crib-<sandbox_id>` (cgroupfs driver).

kubelet creates and sizes the pod cgroup (`cgroup_parent`, e.g.
/kubepods/burstable/pod<uid>); every process of the pod lives in a leaf below it: the
pause in `crib-<sandbox_id>`, each container in `crib-<container_id>` (CRI-O uses
`crio-<id>` the same way). Without a parent (crictl) the default parent is `/crib`.

The runtime creates the leaf and removes it on `delete`; `remove_leaf` removes what a
crashed runtime left behind, on v1 (one directory per hierarchy) and v2 (one tree).
"""

from __future__ import annotations

import errno
import os
import time

from sandbox.pod.errors import PodConfigError

CGROUP_ROOT = "/sys/fs/cgroup"
DEFAULT_PARENT = "/crib"
LEAF_PREFIX = "crib-"


def validate_parent(cgroup_parent: str, field: str = "linux.cgroup_parent") -> str:
    """A cgroupfs parent path: absolute, no `..`, not a systemd slice name."""
    if not cgroup_parent:
        return DEFAULT_PARENT
    if cgroup_parent.endswith(".slice") or ":" in cgroup_parent:
        raise PodConfigError(
            f"{field}: {cgroup_parent!r} is a systemd slice, but crib uses the cgroupfs driver"
            " (configure kubelet with --cgroup-driver=cgroupfs)"
        )
    parts = cgroup_parent.split("/")
    if (
        not cgroup_parent.startswith("/")
        or ".." in parts
        or "." in parts
        or "\0" in cgroup_parent
        or "\n" in cgroup_parent
    ):
        raise PodConfigError(f"{field}: {cgroup_parent!r} is not an absolute cgroup path")
    return "/" + "/".join(p for p in parts if p)


def leaf_path(cgroup_parent: str, object_id: str) -> str:
    """The OCI `linux.cgroupsPath` of a pod process (pause or container)."""
    parent = validate_parent(cgroup_parent)
    return f"{parent.rstrip('/')}/{LEAF_PREFIX}{object_id}"


def hierarchies(root: str = CGROUP_ROOT) -> list[str]:
    """The mounted hierarchies under `root`: [root] on v2, one dir per hierarchy on v1
    (named controllers, `systemd`, and the controller-less `unified` of hybrid mode)."""
    if os.path.exists(os.path.join(root, "cgroup.controllers")):
        return [root]
    found = []
    try:
        names = sorted(os.listdir(root))
    except FileNotFoundError:
        return []
    for name in names:
        path = os.path.join(root, name)
        # v1 co-mounts appear twice (cpu,cpuacct plus symlinks cpu -> cpu,cpuacct).
        if os.path.isdir(path) and not os.path.islink(path):
            found.append(path)
    return found


def remove_leaf(cgroups_path: str, root: str = CGROUP_ROOT, attempts: int = 5) -> list[str]:
    """rmdir the leaf in every hierarchy; returns the directories that could not go.

    A cgroup with processes is EBUSY: retried briefly (processes being reaped), then left
    and reported. A directory that is gone already is fine.
    """
    left: list[str] = []
    relative = cgroups_path.lstrip("/")
    if not relative or ".." in relative.split("/"):
        return left
    for hierarchy in hierarchies(root):
        path = os.path.join(hierarchy, relative)
        for attempt in range(attempts):
            try:
                os.rmdir(path)
                break
            except FileNotFoundError:
                break
            except OSError as err:
                if err.errno != errno.EBUSY or attempt == attempts - 1:
                    left.append(path)
                    break
                time.sleep(0.02 * (attempt + 1))
    return left


def exists(cgroups_path: str, root: str = CGROUP_ROOT) -> bool:
    """Whether the leaf exists in any hierarchy."""
    relative = cgroups_path.lstrip("/")
    return any(os.path.isdir(os.path.join(h, relative)) for h in hierarchies(root))


def processes(cgroups_path: str, root: str = CGROUP_ROOT) -> set[int]:
    """The pids in the leaf, over every hierarchy (empty if the leaf does not exist)."""
    relative = cgroups_path.lstrip("/")
    found: set[int] = set()
    if not relative or ".." in relative.split("/"):
        return found
    for hierarchy in hierarchies(root):
        try:
            with open(os.path.join(hierarchy, relative, "cgroup.procs")) as f:
                found.update(int(line) for line in f if line.strip())
        except (FileNotFoundError, NotADirectoryError):
            continue
    return found
