"""Process facts of a cgroup for the CRI metrics: open files, sockets, threads, the
init's soft open-files limit (cAdvisor's container_file_descriptors, container_sockets,
container_threads, container_ulimits_soft), read from /proc (proc(5))."""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterable


@dataclasses.dataclass(frozen=True)
class ProcessFacts:
    """Totals over the processes of one cgroup."""

    file_descriptors: int = 0
    sockets: int = 0
    threads: int = 0


def process_facts(pids: Iterable[int], proc_root: str = "/proc") -> ProcessFacts:
    """Open fds, of which sockets, and threads of `pids` (gone processes count 0)."""
    fds = sockets = threads = 0
    for pid in pids:
        base = os.path.join(proc_root, str(pid))
        try:
            threads += len(os.listdir(os.path.join(base, "task")))
        except OSError:
            continue
        fd_dir = os.path.join(base, "fd")
        try:
            names = os.listdir(fd_dir)
        except OSError:
            continue
        fds += len(names)
        for name in names:
            with contextlib.suppress(OSError):
                if os.readlink(os.path.join(fd_dir, name)).startswith("socket:"):
                    sockets += 1
    return ProcessFacts(fds, sockets, threads)


def soft_open_files_limit(pid: int, proc_root: str = "/proc") -> int | None:
    """The soft RLIMIT_NOFILE of `pid` ("Max open files" in /proc/<pid>/limits); None
    when unlimited or unreadable."""
    try:
        with open(os.path.join(proc_root, str(pid), "limits")) as f:
            for line in f:
                if line.startswith("Max open files"):
                    soft = line[len("Max open files") :].split()[0]
                    return int(soft) if soft.isdigit() else None
    except OSError:
        return None
    return None
