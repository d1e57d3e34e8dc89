"""Facts about processes crib does not parent: start time (PID reuse guard) and exit waits.

A pid alone does not name a process across time: after it exits the kernel may hand the
number to another. crib records the start time (`/proc/<pid>/stat` field 22, clock ticks
since boot, proc(5)) next to every pid and only trusts the pair.
"""

from __future__ import annotations

import asyncio
import contextlib
import os

from sandbox.linux import syscalls

PR_SET_CHILD_SUBREAPER = 36  # <linux/prctl.h>


def start_time(pid: int, proc_root: str = "/proc") -> int | None:
    """The start time of `pid` in clock ticks since boot, or None if there is no such process.

    A zombie still has a start time; `is_alive` checks for that separately.
    """
    try:
        with open(f"{proc_root}/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # comm (field 2) is in parentheses and may hold spaces or ')': split after the last ')'.
    fields = data[data.rindex(b")") + 2 :].split()
    # fields[0] is field 3 (state); field 22 (starttime) is fields[19].
    return int(fields[19])


def state(pid: int, proc_root: str = "/proc") -> str | None:
    """The one-letter state of `pid` (R, S, D, Z, ...), or None if there is no such process."""
    try:
        with open(f"{proc_root}/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return data[data.rindex(b")") + 2 :].split()[0].decode()


def is_alive(pid: int, expected_start_time: int, proc_root: str = "/proc") -> bool:
    """Whether the process recorded as (`pid`, `expected_start_time`) still runs."""
    if pid <= 0:
        return False
    if start_time(pid, proc_root) != expected_start_time:
        return False
    return state(pid, proc_root) not in (None, "Z", "X")


async def wait_exit(pid: int, expected_start_time: int, timeout_s: float | None) -> bool:
    """Wait until the process (`pid`, `expected_start_time`) has exited; False on timeout
    (`timeout_s` None waits for ever).

    Uses a pidfd (pidfd_open(2), Linux 5.3): it becomes readable when the process
    terminates, also for processes that are not crib's children.
    """
    if not is_alive(pid, expected_start_time):
        return True
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        # The pid might have been reused between the check and pidfd_open.
        if not is_alive(pid, expected_start_time):
            return True
        return await _pidfd_readable(pidfd, timeout_s)
    finally:
        with contextlib.suppress(OSError):
            os.close(pidfd)


def set_child_subreaper() -> None:
    """Make this process the reaper of its orphaned descendants (prctl(2)).

    conmon double-forks: its monitor process is re-parented to the nearest subreaper, or
    to PID 1. Making the daemon the subreaper means crib reaps its conmons itself
    (`reap_child`) instead of relying on an init that may not reap (user-asks #19).
    """
    syscalls.prctl(PR_SET_CHILD_SUBREAPER, 1)


def reap_child(pid: int) -> int | None:
    """waitpid(pid, WNOHANG) for an adopted child; its wait status, or None if it still
    runs or is not crib's child (e.g. adopted by init after a crib restart).

    A status the orphan reaper collected first is handed over here. Call once per pid:
    after the reap the number may be reused by another child.
    """
    try:
        reaped, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return _REAPED.pop(pid, None)
    return status if reaped == pid else None


# Wait statuses the orphan reaper collected, by pid, for `reap_child` to hand over (bounded:
# the oldest are forgotten first).
_REAPED: dict[int, int] = {}
_REAPED_MAX = 4096


def children(proc_root: str = "/proc") -> set[int]:
    """The pids of this process's children (every thread's, proc(5) task/<tid>/children)."""
    found: set[int] = set()
    task_dir = f"{proc_root}/self/task"
    try:
        tids = os.listdir(task_dir)
    except FileNotFoundError:
        return found
    for tid in tids:
        try:
            with open(f"{task_dir}/{tid}/children", "rb") as f:
                found.update(int(pid) for pid in f.read().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return found


class OrphanReaper:
    """Reaps zombies crib adopted as subreaper and nobody waits for (user-asks #19).

    As PR_SET_CHILD_SUBREAPER, crib inherits every orphan below it: conmon's monitors
    (which crib reaps where it watches them), but also processes a monitor left unreaped,
    e.g. an ExecSync process conmon killed on timeout. A targeted waitpid is the only
    safe kind here: asyncio's child watcher waits for crib's own subprocesses by pid and
    must not lose their status. So a zombie child is reaped only after it has stayed a
    zombie for a whole scan interval (a watched child is reaped by its waiter at once),
    and its status is kept for `reap_child`.
    """

    def __init__(self, interval_s: float = 1.0, proc_root: str = "/proc") -> None:
        self.interval_s = interval_s
        self.proc_root = proc_root
        self._seen: set[tuple[int, int]] = set()
        self.reaped_total = 0

    def scan(self) -> list[int]:
        """One pass: reap zombies seen in the previous pass too; returns the reaped pids."""
        zombies: set[tuple[int, int]] = set()
        for pid in children(self.proc_root):
            if state(pid, self.proc_root) == "Z":
                started = start_time(pid, self.proc_root)
                if started is not None:
                    zombies.add((pid, started))
        reaped = []
        for pid, _ in zombies & self._seen:
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                continue
            if done == pid:
                if len(_REAPED) >= _REAPED_MAX:
                    del _REAPED[next(iter(_REAPED))]
                _REAPED[pid] = status
                reaped.append(pid)
        self.reaped_total += len(reaped)
        self._seen = zombies - {z for z in zombies if z[0] in reaped}
        return reaped

    async def run(self) -> None:
        """Scan every `interval_s` until cancelled."""
        while True:
            await asyncio.sleep(self.interval_s)
            self.scan()


async def _pidfd_readable(pidfd: int, timeout_s: float | None) -> bool:
    """Wait until a pidfd is readable (its process ended); False on timeout."""
    loop = asyncio.get_running_loop()
    exited: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not exited.done():
            exited.set_result(None)

    loop.add_reader(pidfd, readable)
    try:
        await asyncio.wait_for(exited, timeout_s)
        return True
    except TimeoutError:
        return False
    finally:
        loop.remove_reader(pidfd)


async def wait_and_reap(pid: int, timeout_s: float) -> bool:
    """Wait for an adopted child (a conmon) to exit, then reap it; False on timeout."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        if not await _pidfd_readable(pidfd, timeout_s):
            return False
        reap_child(pid)
        return True
    finally:
        with contextlib.suppress(OSError):
            os.close(pidfd)
