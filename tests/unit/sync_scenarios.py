"""`create`'s handshake (sandbox/runtime/create.py) against stand-in children that fail or
die at each step of the protocol drawn in sandbox/runtime/sync.py.

Run as `python -m tests.unit.sync_scenarios NAME` by test_runtime_sync.py: each scenario
runs in a process of its own that is PR_SET_CHILD_SUBREAPER, as `crib-runtime create` is,
so the stand-in init is re-parented to it. The process plays P0 with the real
`handshake` and `abort`; the forked stand-ins play the intermediate (C1) and the init
(C2) with the real sync module. It prints one JSON line:

    {"outcome": "ready" | "error", "message": "...", "left": [pids still alive]}

A scenario that hangs is the bug these tests exist for: the caller gives each one a
deadline and kills its process group when it passes.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import signal
import sys
import time
from collections.abc import Callable

from sandbox.runtime import sync
from sandbox.runtime.create import abort, handshake
from sandbox.runtime.errors import CreateError

PR_SET_CHILD_SUBREAPER = 36
ENOSPC_PATH = "/sys/fs/cgroup/cpuset/crt-x/cgroup.procs"


def _init(sock: sync.Socket, name: str) -> None:
    """C2: what the stand-in init does in scenario `name`; never returns."""
    if name == "init-dies-before-join":
        os._exit(4)
    sync.expect(sock, "cgroup-joined")  # EOFError if P0 closes its end
    if name == "init-error-after-join":
        sync.send_error(sock, "mount /proc", OSError(errno.EPERM, "Operation not permitted"))
        os._exit(1)
    if name == "init-dies-after-join":
        os._exit(5)
    sync.send(sock, {"type": "ready", "warnings": []})
    sock.close()
    signal.pause()  # the real init waits on exec.fifo here; the scenario kills it
    os._exit(0)


def _intermediate(sock: sync.Socket, name: str) -> None:
    """C1: what the stand-in intermediate does in scenario `name`; never returns."""
    if name == "intermediate-exits":
        os._exit(3)
    if name == "intermediate-error":
        sync.send_error(sock, "setns", OSError(errno.EINVAL, "Invalid argument", "/proc/1/ns/x"))
        os._exit(1)
    init_pid = os.fork()
    if init_pid == 0:
        try:
            _init(sock, name)
        except BaseException as err:  # as the real init: report, then exit
            sync.send_error(sock, "init", err)
        os._exit(1)
    if name == "intermediate-killed-after-fork":
        # Killed between forking the init and reporting its pid (OOM killer, kill -9):
        # the init holds the socket open and waits for "cgroup-joined".
        os.kill(os.getpid(), signal.SIGKILL)
    if name == "init-dies-before-join":
        os.waitpid(init_pid, 0)
    sync.send(sock, {"type": "pid", "pid": init_pid})
    os._exit(0)


def _join_for(name: str) -> Callable[[int], None]:
    def join(pid: int) -> None:
        if name == "join-fails":
            # What a v1 cpuset with empty cpus/mems answers (the hang this guards).
            raise OSError(errno.ENOSPC, "No space left on device", ENOSPC_PATH)
        os.kill(pid, 0)  # a dead init cannot be moved: ESRCH, like cgroup.procs

    return join


def _children_left() -> list[int]:
    """Our children still alive after a deadline (zombies are reaped on the way)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return []
        if pid == 0:
            time.sleep(0.01)
    left = []
    for tid in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{tid}/children") as children:
            left += [int(p) for p in children.read().split()]
    return left


def run(name: str) -> dict[str, object]:
    """Play P0 against the stand-ins of scenario `name`."""
    parent_sock, child_sock = sync.pair()
    intermediate_pid = os.fork()
    if intermediate_pid == 0:
        parent_sock.close()
        try:
            _intermediate(child_sock, name)
        except BaseException as err:  # as the real intermediate
            sync.send_error(child_sock, "intermediate", err)
        os._exit(1)
    child_sock.close()
    children = {"intermediate": intermediate_pid, "init": 0}
    result: dict[str, object]
    try:
        init_pid = handshake(parent_sock, {}, children, _join_for(name))
    except CreateError as err:
        result = {"outcome": "error", "message": str(err)}
        abort(parent_sock, children)  # what create's undo stack runs
    else:
        result = {"outcome": "ready", "message": ""}
        os.kill(init_pid, signal.SIGKILL)
        os.waitpid(init_pid, 0)
        parent_sock.close()
    result["left"] = _children_left()
    return result


def main() -> int:
    ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    print(json.dumps(run(sys.argv[1])), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
