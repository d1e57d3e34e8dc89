"""A container's record under `--root` and its lifecycle.

    ROOT/<container_id>/state.json   the record (written atomically: temp file, fsync, rename)
    ROOT/<container_id>/init         "PID START_TIME" of the init (read by the lean `start`)
    ROOT/<container_id>/exec.fifo    exists while the init waits for `start` (runc's protocol)

The status is never stored; it is derived from the kernel each time (runc does the same):

    init pid alive (same start time, not a zombie) and exec.fifo present  -> created
    init pid alive and exec.fifo gone                                     -> running
    otherwise                                                             -> stopped

Which commands each status allows (runc's rules, `delete --force` kills first):

    command          created    running    stopped
    start            yes        error      error
    kill             yes        yes        error "container not running" (kill --all: ok)
    exec             yes        yes        error
    delete           yes(kill)  error      yes
    delete --force   yes        yes(kill)  yes
"""

from __future__ import annotations

import os

from common import jsonc
from sandbox.oci.state import CREATED, RUNNING, STOPPED
from sandbox.runtime.container_paths import EXEC_FIFO, INIT_FILE, STATE_FILE, check_id_fast

__all__ = ["EXEC_FIFO", "INIT_FILE", "STATE_FILE"]

# Not `typing.TYPE_CHECKING`: typing costs ~10 ms at every crib-runtime start; mypy
# honours the name.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TypedDict


ALLOWED = {
    "start": (CREATED,),
    "kill": (CREATED, RUNNING),
    "exec": (CREATED, RUNNING),
    "delete": (CREATED, STOPPED),
    "delete --force": (CREATED, RUNNING, STOPPED),
    "update": (CREATED, RUNNING),
    "ps": (CREATED, RUNNING, STOPPED),
}

_ERRORS = ("ContainerNotFoundError", "ContainerExistsError", "ContainerStateError")


def __getattr__(name: str) -> type[Exception]:
    # The error classes live in errors.py (see there why); looked up only on failure.
    if name in _ERRORS:
        from sandbox.runtime import errors

        error: type[Exception] = getattr(errors, name)
        return error
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if TYPE_CHECKING:
    # For mypy only (start-up budget); at run time a record is the JSON dict.
    class Record(TypedDict):
        """state.json: what later commands need to find the container again."""

        id: str
        init_pid: int
        init_start_time: int
        bundle: str
        rootfs: str
        created: str
        annotations: dict[str, str]
        cgroups_path: str
        cgroup_dirs: dict[str, str]
        cgroup_unified: bool
        no_pivot: bool
        config: dict[str, Any]


def check_id(container_id: str) -> None:
    """Container ids become directory names: runc's charset, no path tricks."""
    if not check_id_fast(container_id):
        from sandbox.runtime.errors import ContainerStateError

        raise ContainerStateError(f'invalid container id "{container_id}"')


def container_dir(root: str, container_id: str) -> str:
    """ROOT/<container_id>."""
    check_id(container_id)
    return os.path.join(root, container_id)


def save(root: str, record: Record) -> None:
    """Write state.json atomically (temp file in the same directory, rename).

    Atomic, not durable: --root is volatile state (/run, a tmpfs, in production) that
    does not outlive a reboot, so an fsync buys nothing and costs milliseconds on disks.
    """
    directory = container_dir(root, record["id"])
    final = os.path.join(directory, STATE_FILE)
    tmp = os.path.join(directory, f".{STATE_FILE}.tmp-{os.getpid()}")
    data = jsonc.dumps(record, separators=(",", ":")).encode()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
    os.replace(tmp, final)
    init_path = os.path.join(directory, INIT_FILE)
    tmp = os.path.join(directory, f".{INIT_FILE}.tmp-{os.getpid()}")
    with open(tmp, "w") as init_file:
        init_file.write(f"{record['init_pid']} {record['init_start_time']}\n")
    os.replace(tmp, init_path)


def write_pid_file(path: str, pid: int) -> None:
    """Write --pid-file atomically (conmon reads it the moment create or exec exits)."""
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.tmp-{os.getpid()}")
    with open(tmp, "w") as pid_file:
        pid_file.write(str(pid))
    os.replace(tmp, path)


def load(root: str, container_id: str) -> Record:
    """Read state.json; a missing one means the container does not exist."""
    path = os.path.join(container_dir(root, container_id), STATE_FILE)
    try:
        with open(path, "rb") as state_file:
            record: Record = jsonc.loads(state_file.read())
    except FileNotFoundError:
        from sandbox.runtime.errors import ContainerNotFoundError

        raise ContainerNotFoundError(f'container "{container_id}" does not exist') from None
    except ValueError as err:
        from sandbox.runtime.errors import ContainerStateError

        raise ContainerStateError(f"{path}: corrupt state: {err}") from None
    return record


def list_ids(root: str) -> list[str]:
    """Ids of the containers with a state.json under `root`."""
    try:
        names = sorted(os.listdir(root))
    except FileNotFoundError:
        return []
    return [n for n in names if os.path.exists(os.path.join(root, n, STATE_FILE))]


def process_start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (start time in clock ticks), None if gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat_file:
            data = stat_file.read()
    except OSError:
        return None
    # comm (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = data[data.rindex(b")") + 2 :].split()
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


def init_alive(record: Record) -> bool:
    """Whether the container's init still runs (pid reuse is caught by the start time)."""
    return process_start_time(record["init_pid"]) == record["init_start_time"]


def status(root: str, record: Record) -> str:
    """created, running or stopped, derived from the kernel."""
    if not init_alive(record):
        return STOPPED
    fifo = os.path.join(container_dir(root, record["id"]), EXEC_FIFO)
    return CREATED if os.path.exists(fifo) else RUNNING


def require(command: str, container_id: str, current: str) -> None:
    """Raise ContainerStateError unless `command` is allowed in status `current`."""
    if current in ALLOWED[command]:
        return
    from sandbox.runtime.errors import ContainerStateError

    if command in ("kill", "exec") and current == STOPPED:
        raise ContainerStateError("container not running")
    if command == "start":
        raise ContainerStateError(
            f"cannot start a container that has {current}"
            if current == STOPPED
            else f"cannot start an already {current} container"
        )
    if command == "delete":
        raise ContainerStateError(
            f"cannot delete container {container_id} that is not stopped: {current}"
        )
    raise ContainerStateError(f"container {container_id} is {current}: cannot {command}")
