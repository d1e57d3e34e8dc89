"""Directories a container needs before it starts: inside its rootfs (rooted) and on the host.

Inside the rootfs (the working directory, image volumes) every path is resolved below the
rootfs as if it were "/": an image symlink never leads the daemon outside it (CVE-2024-5154
class). Each missing component is created with mkdirat(2) relative to its resolved parent.

On the host: a bind mount whose host path does not exist gets it created as a directory
(containerd and CRI-O do the same; kubelet normally creates them itself), and the log
directory is created for conmon, which opens the log file but makes no directories.
"""

from __future__ import annotations

import errno
import os

from cri.specgen import RootfsDir, SpecInvalidError
from cri.specgen.rootfs import open_in_root

_DIR_PATH_FLAGS = os.O_PATH | os.O_DIRECTORY


def _components(path: str) -> list[str]:
    return [part for part in path.split("/") if part not in ("", ".")]


def mkdir_in_root(rootfs: str, wanted: RootfsDir) -> None:
    """Create `wanted.path` (and missing parents, mode 0755) inside `rootfs`, rooted.

    The last component is chowned to `wanted.uid`:`wanted.gid` when it is created and
    they are set; an existing directory is left as it is. Raises `SpecInvalidError`
    naming the path when a component is not a directory.
    """
    parts = _components(wanted.path)
    if ".." in parts:
        raise SpecInvalidError(f"directory {wanted.path!r} to create contains '..'")
    for i, name in enumerate(parts):
        prefix = "/".join(parts[: i + 1])
        try:
            os.close(open_in_root(rootfs, prefix, _DIR_PATH_FLAGS))
            continue
        except FileNotFoundError:
            pass
        except NotADirectoryError:
            raise SpecInvalidError(
                f"cannot create {wanted.path!r} in the container: /{prefix} is not a directory"
            ) from None
        except OSError as err:
            raise SpecInvalidError(
                f"cannot create {wanted.path!r} in the container: /{prefix}: {err.strerror}"
            ) from None
        parent_fd = open_in_root(rootfs, "/".join(parts[:i]), _DIR_PATH_FLAGS)
        try:
            try:
                os.mkdir(name, 0o755, dir_fd=parent_fd)
            except FileExistsError:
                # Only a dangling symlink exists and resolves to nothing: refuse rather than
                # create its target somewhere the image chose.
                raise SpecInvalidError(
                    f"cannot create {wanted.path!r} in the container: /{prefix} is a symlink"
                    " to a missing path"
                ) from None
            is_last = i == len(parts) - 1
            if is_last and (wanted.uid is not None or wanted.gid is not None):
                os.chown(
                    name,
                    wanted.uid if wanted.uid is not None else -1,
                    wanted.gid if wanted.gid is not None else -1,
                    dir_fd=parent_fd,
                    follow_symlinks=False,
                )
        finally:
            os.close(parent_fd)


def ensure_host_dir(path: str) -> None:
    """Create a missing bind-mount source (or log directory) as a directory, mode 0755.

    An existing path of any kind (file, socket, symlink) is left alone: the runtime
    reports it if it cannot be mounted.
    """
    if os.path.lexists(path):
        return
    try:
        os.makedirs(path, mode=0o755, exist_ok=True)
    except OSError as err:
        if err.errno == errno.EEXIST:
            return
        raise SpecInvalidError(f"cannot create host directory {path!r}: {err.strerror}") from None
