"""A container's exit as conmon records it: exit status, finish time, OOM.

When the container's init exits, conmon (docs/conmon.md 4) drains its output, then writes
the status (exit code, or 128 + signal) as a bare decimal to

    <persist dir>/exit      finish time = this file's ctime (CRI-O's internal/oci/finished.go)
    <exit dir>/<id>         the same, in the volatile exit dir (crib removes it on Remove)

and, when the kernel's OOM killer struck the container's cgroup (memory.events on v2, the
memory.oom_control eventfd on v1), creates `oom` in its working directory (the bundle) and
in the persist dir. Reason: "OOMKilled" if an `oom` file exists, else "Completed" for status
0 and "Error" for anything else (containerd's and CRI-O's words, which kubectl shows).
"""

from __future__ import annotations

import dataclasses
import os
import time

from sandbox.monitor.conmon import read_exit_file

EXIT_FILE = "exit"
OOM_FILE = "oom"
REASON_COMPLETED = "Completed"
REASON_ERROR = "Error"
REASON_OOM_KILLED = "OOMKilled"
REASON_START_ERROR = "StartError"
REASON_UNKNOWN = "ContainerStatusUnknown"
# The status reported when nothing recorded one (CRI-O and containerd use 255 too).
UNKNOWN_EXIT_CODE = 255


@dataclasses.dataclass(frozen=True)
class Exit:
    """How a container ended."""

    exit_code: int
    finished_at_ns: int
    reason: str
    message: str = ""


def reason_for(exit_code: int, oom_killed: bool) -> str:
    """The ContainerStatus.reason for an exit."""
    if oom_killed:
        return REASON_OOM_KILLED
    return REASON_COMPLETED if exit_code == 0 else REASON_ERROR


def oom_killed(persist_dir: str, bundle_dir: str) -> bool:
    """Whether conmon saw the OOM killer strike the container."""
    return any(os.path.exists(os.path.join(d, OOM_FILE)) for d in (persist_dir, bundle_dir))


def read_exit(persist_dir: str, exit_file: str, bundle_dir: str) -> Exit | None:
    """The exit conmon recorded, or None if it recorded none (yet)."""
    for path in (os.path.join(persist_dir, EXIT_FILE), exit_file):
        code = read_exit_file(path)
        if code is None:
            continue
        try:
            finished_ns = os.stat(path).st_ctime_ns
        except FileNotFoundError:
            finished_ns = time.time_ns()
        return Exit(code, finished_ns, reason_for(code, oom_killed(persist_dir, bundle_dir)))
    return None


def exit_code_of_wait_status(status: int) -> int:
    """A waitpid(2) status as conmon writes it: the exit code, or 128 + the signal."""
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)
