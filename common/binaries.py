"""Finding the binaries crib runs (runtimes, conmon, pause, CNI plugins)."""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig


def scripts_dir() -> str:
    """The directory holding crib's own console scripts (the virtualenv's bin)."""
    return sysconfig.get_path("scripts") or os.path.dirname(sys.executable)


def resolve(name_or_path: str) -> str | None:
    """The absolute path of an executable given by path, or by name.

    A name is looked up first next to crib's own console scripts (so `crib-runtime`
    from the same install wins even when that directory is not on PATH), then on PATH.
    """
    if os.sep in name_or_path:
        path = os.path.abspath(name_or_path)
        return path if os.path.isfile(path) and os.access(path, os.X_OK) else None
    own = os.path.join(scripts_dir(), name_or_path)
    if os.path.isfile(own) and os.access(own, os.X_OK):
        return own
    return shutil.which(name_or_path)
