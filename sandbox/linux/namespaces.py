"""Namespace kinds: OCI names, clone(2) flags, /proc/<pid>/ns names, and joining/creating.

Order (runc nsexec.c, and namespaces(7)): the user namespace is joined or created first,
because it owns every namespace created after it; the pid and time namespaces only apply
to children, so the caller forks afterwards to put the container's init inside them.
"""

from __future__ import annotations

import os

from sandbox.linux import syscalls

CLONE_FLAGS = {
    "user": syscalls.CLONE_NEWUSER,
    "mount": syscalls.CLONE_NEWNS,
    "uts": syscalls.CLONE_NEWUTS,
    "ipc": syscalls.CLONE_NEWIPC,
    "network": syscalls.CLONE_NEWNET,
    "pid": syscalls.CLONE_NEWPID,
    "cgroup": syscalls.CLONE_NEWCGROUP,
    "time": syscalls.CLONE_NEWTIME,
}

PROC_NAMES = {
    "user": "user",
    "mount": "mnt",
    "uts": "uts",
    "ipc": "ipc",
    "network": "net",
    "pid": "pid",
    "cgroup": "cgroup",
    "time": "time",
}

# Join order: user first (it owns the rest), mount last among joined ones so the paths of
# the other namespaces are opened before the mount namespace changes what paths mean.
JOIN_ORDER = ("user", "ipc", "uts", "network", "pid", "cgroup", "time", "mount")


def open_paths(paths: dict[str, str]) -> list[tuple[str, int, str]]:
    """Open every namespace path up front: (type, fd, path) in join order."""
    opened = []
    try:
        for ns_type in JOIN_ORDER:
            path = paths.get(ns_type)
            if path:
                opened.append((ns_type, os.open(path, os.O_RDONLY | os.O_CLOEXEC), path))
    except OSError as err:
        for _, fd, _ in opened:
            os.close(fd)
        raise OSError(err.errno, f"open namespace: {err.strerror}", err.filename) from None
    return opened


def join(opened: list[tuple[str, int, str]]) -> None:
    """setns(2) into each opened namespace, closing the fds."""
    for ns_type, fd, path in opened:
        try:
            syscalls.setns(fd, CLONE_FLAGS[ns_type], path)
        finally:
            os.close(fd)


def unshare_flags(types: list[str]) -> int:
    """The clone flags for `types`."""
    flags = 0
    for ns_type in types:
        flags |= CLONE_FLAGS[ns_type]
    return flags


def same_as_host(ns_type: str, pid: int, proc: str = "/proc") -> bool:
    """Whether process `pid` shares the `ns_type` namespace with pid 1."""
    name = PROC_NAMES[ns_type]
    try:
        return os.stat(f"{proc}/{pid}/ns/{name}").st_ino == os.stat(f"{proc}/1/ns/{name}").st_ino
    except OSError:
        return False


def write_id_mappings(
    pid: int, uid_maps: list[tuple[int, int, int]], gid_maps: list[tuple[int, int, int]]
) -> None:
    """Write /proc/PID/uid_map and gid_map (user_namespaces(7)); root may write any range."""
    for name, maps in (("uid_map", uid_maps), ("gid_map", gid_maps)):
        text = "".join(f"{inside} {outside} {size}\n" for inside, outside, size in maps)
        path = f"/proc/{pid}/{name}"
        with open(path, "w") as map_file:
            map_file.write(text)
