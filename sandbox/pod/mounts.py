"""mount(2) and umount2(2) for the daemon's few host-side mounts: namespace pins and the
per-pod /dev/shm tmpfs.

Bind-mounting /proc/<pid>/ns/<kind> onto a file does not enter the namespace (setns(2)
does), so this is allowed in the multi-threaded daemon (ADR 0001). Everything else
mount-related runs in the exec'd runtime. Python's os module has no mount(2): the wrappers are
in sandbox/linux/syscalls.py, the only ctypes module.
"""

from __future__ import annotations

import errno
import os

from sandbox.linux import syscalls

# <sys/mount.h>
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_BIND = 0x1000
MNT_DETACH = 0x2
UMOUNT_NOFOLLOW = 0x8


def mount(source: str, target: str, fstype: str | None, flags: int, data: str = "") -> None:
    """mount(2); raises OSError naming the syscall and the target."""
    syscalls.mount(source, target, fstype, flags, data or None)


def umount(target: str) -> bool:
    """umount2(MNT_DETACH | UMOUNT_NOFOLLOW); False if `target` is not a mount point or
    is gone (EINVAL, ENOENT). Other errors raise OSError naming the target."""
    try:
        syscalls.umount2(target, MNT_DETACH | UMOUNT_NOFOLLOW)
    except OSError as err:
        if err.errno in (errno.EINVAL, errno.ENOENT):
            return False
        raise
    return True


def is_mount_point(path: str) -> bool:
    """Whether `path` (file or directory) is mounted on: its device differs from its
    parent directory's (bind mounts of nsfs and tmpfs always do)."""
    try:
        st = os.lstat(path)
        parent = os.stat(os.path.dirname(os.path.abspath(path)))
    except FileNotFoundError:
        return False
    return st.st_dev != parent.st_dev
