"""Mounting a container's overlay root filesystem, and read-only views of images.

The image store describes an overlay and mounts nothing (`mount_data` gives the mount(2)
data and, for images with many layers, a directory the lowerdirs are relative to). Who
mounts, step by step:

    data, cwd = overlay.mount_data()
    cwd is None ─► mount(2) from the daemon: mounting enters no namespace (ADR 0001)
    cwd is set  ─► exec `python -m sandbox.container.mount_helper`, which chdirs to cwd and
                   mounts: chdir is process-wide, and the daemon is multi-threaded, so it
                   never changes its own working directory

The mounts live in the host's mount namespace below crib's state directory; the runtime
bind-mounts the rootfs into the container's own namespace. Unmounting uses MNT_DETACH so a
busy mount never blocks a pod's removal (user-asks #20).
"""

from __future__ import annotations

import asyncio
import os
import sys

from sandbox.container.errors import RootfsMountError
from sandbox.pod import mounts

MS_RDONLY = 0x1
HELPER_MODULE = "sandbox.container.mount_helper"
HELPER_TIMEOUT_S = 60.0


async def mount_overlay(target: str, data: str, cwd: str | None, readonly: bool = False) -> None:
    """Mount an overlay on `target` with mount(2) data `data` (relative to `cwd` if set).

    A target that is already a mount point is left alone (a retried set-up). Raises
    `RootfsMountError` naming the target.
    """
    os.makedirs(target, mode=0o755, exist_ok=True)
    if mounts.is_mount_point(target):
        return
    flags = MS_RDONLY if readonly else 0
    if cwd is None:
        try:
            await asyncio.to_thread(mounts.mount, "overlay", target, "overlay", flags, data)
        except OSError as err:
            raise RootfsMountError(f"mount overlay on {target}: {err.strerror}") from None
        return
    argv = [sys.executable, "-m", HELPER_MODULE, cwd, target, str(flags), data]
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        # The helper must import crib's `sandbox` package however the daemon was started.
        env={**os.environ, "PYTHONPATH": _package_root()},
    )
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), HELPER_TIMEOUT_S)
    except BaseException:
        if process.returncode is None:
            process.kill()
        await asyncio.shield(process.communicate())
        raise
    if process.returncode != 0:
        text = " ".join(stderr.decode(errors="replace").split())
        raise RootfsMountError(f"mount overlay on {target}: {text or process.returncode}")


def unmount(target: str) -> bool:
    """Detach the mount on `target`; False if nothing was mounted there (or it is gone)."""
    try:
        return mounts.umount(target)
    except OSError as err:
        raise RootfsMountError(f"unmount {target}: {err.strerror}") from None


def unmount_all(target: str) -> None:
    """Detach every mount stacked on `target` (a retried mount may have stacked two)."""
    for _ in range(8):
        if not unmount(target):
            return


def is_mounted(target: str) -> bool:
    """Whether something is mounted on `target`."""
    return mounts.is_mount_point(target)


def _package_root() -> str:
    # sandbox/container/rootfs.py -> the directory holding the `sandbox` package
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.dirname(os.path.dirname(here))
