"""Reading files inside an image's root filesystem without letting the image escape it.

An image is untrusted input: its /etc/passwd may be a symlink to the host's /etc/shadow,
a FIFO that blocks forever, or gigabytes of zeros (CVE-2025-4437 class: unbounded reads
of user database files). Paths are therefore resolved here component by component,
the way openat2(2) RESOLVE_IN_ROOT would:

    root_fd ── openat(O_PATH|O_NOFOLLOW) ──> dir fd ──> ... ──> final component
                 │
                 └─ a symlink is never followed by the kernel: its target is read with
                    readlinkat(2) and resolved again by us, "/" meaning the image root
                    and ".." stopping at the image root; 40 links at most (ELOOP, as
                    path_resolution(7))

Only regular files are read, and at most `MAX_USER_FILE_BYTES` of them.
"""

from __future__ import annotations

import collections
import errno
import os
import stat

from cri.specgen.errors import ImageUserFileError, SpecInvalidError
from cri.specgen.inputs import UserDatabase
from cri.specgen.user import parse_group, parse_passwd

# Real user databases are far below 1 MiB; containerd caps them at 10 MiB too.
MAX_USER_FILE_BYTES = 10 << 20
# path_resolution(7): at most 40 symbolic links are followed while resolving a path.
MAX_SYMLINKS = 40

_DIR_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _components(path: str) -> list[str]:
    return [part for part in path.split("/") if part not in ("", ".")]


def _resolve_in_root(root_fd: int, path: str) -> tuple[list[int], str, os.stat_result]:
    """Walk `path` below `root_fd`; return (opened dir fds, final name, lstat of final).

    The first fd of the returned stack is `root_fd` itself (not owned); the caller
    closes the rest. The final component is never a symlink. An empty final name means
    the path resolved to the directory on top of the stack.
    """
    stack = [root_fd]
    pending = collections.deque(_components(path))
    links = 0
    try:
        while pending:
            name = pending.popleft()
            if name == "..":
                if len(stack) > 1:
                    os.close(stack.pop())
                continue
            st = os.lstat(name, dir_fd=stack[-1])
            if stat.S_ISLNK(st.st_mode):
                links += 1
                if links > MAX_SYMLINKS:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
                target = os.readlink(name, dir_fd=stack[-1])
                if target.startswith("/"):
                    while len(stack) > 1:
                        os.close(stack.pop())
                pending.extendleft(reversed(_components(target)))
                continue
            if not pending:
                return stack, name, st
            if not stat.S_ISDIR(st.st_mode):
                raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
            stack.append(os.open(name, _DIR_FLAGS, dir_fd=stack[-1]))
        return stack, "", os.fstat(stack[-1])
    except BaseException:
        for fd in stack[1:]:
            os.close(fd)
        raise


def open_in_root(root: str, path: str, flags: int = os.O_RDONLY) -> int:
    """An fd for `path` resolved inside `root` as if `root` were "/" (see the module doc).

    Raises OSError (ENOENT, ENOTDIR, ELOOP, ...) like open(2) would.
    """
    root_fd = os.open(root, _DIR_FLAGS)
    try:
        stack, name, _ = _resolve_in_root(root_fd, path)
        try:
            # O_NOFOLLOW: if the final component became a symlink since lstat, fail (ELOOP)
            # instead of following it.
            return os.open(name or ".", flags | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=stack[-1])
        finally:
            for fd in stack[1:]:
                os.close(fd)
    finally:
        os.close(root_fd)


def resolve_in_root(root: str, path: str) -> str:
    """The host path `path` names inside `root` after resolving it there (no symlinks left)."""
    fd = open_in_root(root, path, os.O_PATH)
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)


def read_user_file(root: str, path: str, limit_bytes: int = MAX_USER_FILE_BYTES) -> str | None:
    """The text of a user database file in an image; None when the image has none.

    Refuses a file that is not regular or is larger than `limit_bytes`.
    """
    root_fd = os.open(root, _DIR_FLAGS)
    try:
        try:
            stack, name, st = _resolve_in_root(root_fd, path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as err:
            raise ImageUserFileError(
                f"cannot resolve /{path} in the image: {err.strerror}"
            ) from err
        try:
            if not stat.S_ISREG(st.st_mode):
                raise ImageUserFileError(f"/{path} in the image is not a regular file")
            # O_NONBLOCK: should a FIFO be swapped in after lstat, open must not hang.
            fd = os.open(
                name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=stack[-1]
            )
        finally:
            for dir_fd in stack[1:]:
                os.close(dir_fd)
    finally:
        os.close(root_fd)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ImageUserFileError(f"/{path} in the image is not a regular file")
        chunks = []
        remaining = limit_bytes + 1
        while remaining > 0:
            chunk = os.read(fd, min(remaining, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        if remaining <= 0:
            raise ImageUserFileError(f"/{path} in the image is larger than {limit_bytes} bytes")
    finally:
        os.close(fd)
    return b"".join(chunks).decode("utf-8", errors="replace")


def read_user_database(rootfs_path: str) -> UserDatabase:
    """The image's /etc/passwd and /etc/group, read rooted and size-limited.

    A missing file gives an empty table (numeric users still work; names do not).
    """
    passwd = read_user_file(rootfs_path, "etc/passwd")
    group = read_user_file(rootfs_path, "etc/group")
    return UserDatabase(
        passwd=parse_passwd(passwd) if passwd is not None else (),
        group=parse_group(group) if group is not None else (),
    )


def resolve_image_sub_path(image_root: str, sub_path: str, image_ref: str) -> str:
    """The host directory for Mount.image_sub_path inside an image volume's root.

    kubelet already refuses absolute sub paths and ".."; crib refuses them again, and
    resolves symlinks inside the image only. Only directories are supported (KEP 4639).
    """
    if not sub_path or sub_path == ".":
        return os.path.realpath(image_root)
    if sub_path.startswith("/") or ".." in sub_path.split("/"):
        raise SpecInvalidError(f"image_sub_path {sub_path!r} must be relative without '..'")
    try:
        resolved = resolve_in_root(image_root, sub_path)
    except (FileNotFoundError, NotADirectoryError):
        raise SpecInvalidError(
            f"sub path {sub_path!r} does not exist in image volume {image_ref!r}"
        ) from None
    except OSError as err:
        raise SpecInvalidError(
            f"sub path {sub_path!r} of image volume {image_ref!r}: {err.strerror}"
        ) from err
    if not os.path.isdir(resolved):
        raise SpecInvalidError(
            f"sub path {sub_path!r} of image volume {image_ref!r} is not a directory"
        )
    return resolved
