"""Crash-safe file writes: temp file in the same directory, fsync, rename, fsync the directory.

After a crash at any point the path holds either the old content or the new one,
never a mix (rename(2) is atomic within a filesystem). Leftover temp files are
named `.<name>.tmp-<random>` so readers can recognise and sweep them.
"""

from __future__ import annotations

import json
import os
import secrets
from typing import Any

TMP_MARKER = ".tmp-"


def tmp_name(name: str) -> str:
    """The name of a temp file for `name`: hidden, unique, recognisable by `is_tmp_name`."""
    return f".{name}{TMP_MARKER}{secrets.token_hex(4)}"


def is_tmp_name(name: str) -> bool:
    """Whether `name` is a leftover of an interrupted atomic write."""
    return name.startswith(".") and TMP_MARKER in name


def fsync_dir(dir_path: str) -> None:
    """Flush a directory entry change (create, rename, unlink) to disk."""
    fd = os.open(dir_path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    """write(2) until every byte of `data` is written."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def write_bytes(path: str, data: bytes, mode: int = 0o644) -> None:
    """Replace `path` with `data` atomically and durably."""
    dir_path, name = os.path.split(os.path.abspath(path))
    tmp_path = os.path.join(dir_path, tmp_name(name))
    fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        try:
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp_path, path)
    except BaseException:
        # The rename did not happen: the temp file is ours alone, drop it.
        try:
            os.unlink(tmp_path)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(dir_path)


def write_json(path: str, value: Any, mode: int = 0o644) -> None:
    """Replace `path` with `value` as JSON, atomically and durably."""
    data = json.dumps(value, indent=1, sort_keys=True).encode() + b"\n"
    write_bytes(path, data, mode)


def sweep_tmp(dir_path: str) -> list[str]:
    """Remove temp files left in `dir_path` by interrupted writes; return their names."""
    removed = []
    try:
        names = os.listdir(dir_path)
    except FileNotFoundError:
        return []
    for name in names:
        if is_tmp_name(name):
            full = os.path.join(dir_path, name)
            if os.path.isdir(full) and not os.path.islink(full):
                continue  # directories are the caller's business (record stores)
            try:
                os.unlink(full)
                removed.append(name)
            except FileNotFoundError:
                pass
    return removed
