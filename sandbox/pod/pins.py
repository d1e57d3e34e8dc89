"""Namespace pins: bind mounts of the pause process's namespaces under
`<ns_dir>/<kind>/<sandbox_id>` (e.g. /run/crib/ns/net/<sandbox_id>).

A pin keeps the namespace alive without a process and names it by a path that cannot be
reused (unlike /proc/<pid>/ns/net after the pid is recycled, cri-o#2849). CNI gets the
net pin as CNI_NETNS, containers join the pod through the pins, and a DEL still finds the
netns after the pause died (user-asks #1-#3).

    pin:    create an empty file (O_EXCL) → mount --bind /proc/<pid>/ns/<kind> onto it
    unpin:  umount2(MNT_DETACH) → unlink; ENOENT, EINVAL (not mounted) and EBUSY are
            tolerated so teardown is idempotent and never stuck (user-asks #20)
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from collections.abc import Iterable

from sandbox.pod import mounts
from sandbox.pod.errors import PodMountError

log = logging.getLogger("crib.pod")

# The namespaces a pod may share, by their /proc/<pid>/ns names.
KINDS = ("net", "ipc", "uts", "pid")


def pin_path(ns_dir: str, kind: str, sandbox_id: str) -> str:
    """Where the `kind` namespace of `sandbox_id` is pinned."""
    return os.path.join(ns_dir, kind, sandbox_id)


def pin(pid: int, kind: str, target: str, proc_root: str = "/proc") -> None:
    """Bind-mount /proc/<pid>/ns/<kind> onto `target` (created, must not be mounted)."""
    os.makedirs(os.path.dirname(target), mode=0o711, exist_ok=True)
    if mounts.is_mount_point(target):
        # A pin left by an interrupted attempt for the same id: replace it.
        unpin(target)
    fd = os.open(target, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o444)
    os.close(fd)
    source = f"{proc_root}/{pid}/ns/{kind}"
    try:
        mounts.mount(source, target, None, mounts.MS_BIND)
    except OSError as err:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(target)
        raise PodMountError(f"pin {kind} namespace of pid {pid}: {err.strerror}") from None


def pin_all(pid: int, kinds: Iterable[str], ns_dir: str, sandbox_id: str) -> dict[str, str]:
    """Pin each of `kinds`; on failure the pins made so far are removed again."""
    made: dict[str, str] = {}
    try:
        for kind in kinds:
            path = pin_path(ns_dir, kind, sandbox_id)
            pin(pid, kind, path)
            made[kind] = path
    except BaseException:
        unpin_all(made.values())
        raise
    return made


def unpin(path: str) -> None:
    """Unmount and remove one pin; a missing or unmounted pin is not an error."""
    try:
        mounts.umount(path)
    except OSError as err:
        if err.errno != errno.EBUSY:
            raise PodMountError(f"unpin {path}: {err.strerror}") from None
        log.warning("unpin %s: busy, left for the kernel to release", path)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as err:
        if err.errno != errno.EBUSY:
            raise PodMountError(f"remove pin {path}: {err.strerror}") from None


def unpin_all(paths: Iterable[str]) -> None:
    """Remove every pin in `paths`; raises the first failure after trying them all."""
    first: PodMountError | None = None
    for path in paths:
        try:
            unpin(path)
        except PodMountError as err:
            first = first or err
    if first is not None:
        raise first


def is_pinned(path: str, pid: int = 0, kind: str = "") -> bool:
    """Whether `path` is a live pin (and, with `pid`, pins that process's `kind` namespace)."""
    if not mounts.is_mount_point(path):
        return False
    if pid <= 0:
        return True
    try:
        return os.stat(path).st_ino == os.stat(f"/proc/{pid}/ns/{kind}").st_ino
    except FileNotFoundError:
        return False
