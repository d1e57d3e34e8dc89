"""Exec'd by the daemon: chdir, then mount an overlay whose lowerdirs are relative paths.

    python -m sandbox.container.mount_helper CWD TARGET FLAGS DATA

A single-threaded process of its own, so changing the working directory affects nobody
else (see `sandbox.container.rootfs`). Exit status 0 on success; otherwise the error is
printed on stderr, naming the target.
"""

from __future__ import annotations

import os
import sys

from sandbox.pod import mounts


def main(argv: list[str]) -> int:
    """Mount as the command line says; returns the exit status."""
    if len(argv) != 4:
        sys.stderr.write("usage: mount_helper CWD TARGET FLAGS DATA\n")
        return 2
    cwd, target, flags, data = argv
    try:
        os.chdir(cwd)
        mounts.mount("overlay", target, "overlay", int(flags), data)
    except (OSError, ValueError) as err:
        sys.stderr.write(f"{err}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
