"""An exclusive, crash-proof lock on a directory, held by one daemon at a time.

The lock is flock(2) on a pid file: the kernel drops it when the holder dies,
even by SIGKILL, so a stale file never blocks a restart. The file also records
the holder's pid, which a refused second daemon names in its error.
"""

from __future__ import annotations

import errno
import fcntl
import os

from common.errors import AlreadyExistsError


class LockHeldError(AlreadyExistsError):
    """Another process holds the lock."""

    def __init__(self, path: str, holder_pid: int | None) -> None:
        who = f"pid {holder_pid}" if holder_pid else "another process"
        super().__init__(f"{path} is locked by {who}: another crib uses this directory")
        self.path = path
        self.holder_pid = holder_pid


class PidLock:
    """Hold `path` locked for the life of this process and write our pid into it."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise `LockHeldError` naming the holder's pid."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            holder = _read_pid(fd)
            os.close(fd)
            if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise LockHeldError(self.path, holder) from None
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Drop the lock; the file stays (unlinking it would race a starting daemon)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None
