"""The pause root filesystem: a directory holding only the static pause binary.

    <dir>/usr/bin/<pause binary>   (copied from the host, mode 0555)
    <dir>/proc, <dir>/dev          (mount points; runc would otherwise mkdir them itself)

Shared by every pod and mounted read-only by the runtime. The binary must be statically
linked: nothing else (no libc, no loader) is in the root. Debian's catatonit is.
"""

from __future__ import annotations

import os
import struct

from common import atomicfile
from sandbox.pod.errors import PodConfigError

PT_INTERP = 3
IN_ROOT_DIR = "/usr/bin"
MOUNT_POINTS = ("proc", "dev", "sys")


def is_static_elf(path: str) -> bool:
    """Whether `path` is an ELF executable without a program interpreter (PT_INTERP)."""
    with open(path, "rb") as f:
        header = f.read(64)
        if len(header) < 64 or header[:4] != b"\x7fELF":
            return False
        is_64 = header[4] == 2
        endian = "<" if header[5] == 1 else ">"
        if is_64:
            (phoff,) = struct.unpack_from(endian + "Q", header, 32)
            phentsize, phnum = struct.unpack_from(endian + "HH", header, 54)
        else:
            (phoff,) = struct.unpack_from(endian + "I", header, 28)
            phentsize, phnum = struct.unpack_from(endian + "HH", header, 42)
        for index in range(phnum):
            f.seek(phoff + index * phentsize)
            (p_type,) = struct.unpack(endian + "I", f.read(4))
            if p_type == PT_INTERP:
                return False
    return True


def in_root_path(host_binary: str) -> str:
    """Where the pause binary appears inside the pause root."""
    return f"{IN_ROOT_DIR}/{os.path.basename(host_binary)}"


def ensure_rootfs(rootfs_dir: str, host_binary: str) -> str:
    """Make (or refresh) the pause root from `host_binary`; returns the in-root path.

    Raises `PodConfigError` naming the binary when it is not a static executable.
    """
    if not os.path.isfile(host_binary) or not os.access(host_binary, os.X_OK):
        raise PodConfigError(f"pause: {host_binary} is not an executable file")
    if not is_static_elf(host_binary):
        raise PodConfigError(
            f"pause: {host_binary} is not a statically linked executable; the pause root"
            " holds nothing else (use catatonit)"
        )
    target = rootfs_dir + in_root_path(host_binary)
    os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
    for name in MOUNT_POINTS:
        os.makedirs(os.path.join(rootfs_dir, name), mode=0o755, exist_ok=True)
    if not _same_file_content(host_binary, target):
        with open(host_binary, "rb") as f:
            data = f.read()
        atomicfile.write_bytes(target, data, mode=0o555)
    return in_root_path(host_binary)


def _same_file_content(a: str, b: str) -> bool:
    try:
        sa, sb = os.stat(a), os.stat(b)
    except FileNotFoundError:
        return False
    if sa.st_size != sb.st_size:
        return False
    with open(a, "rb") as fa, open(b, "rb") as fb:
        return fa.read() == fb.read()
