"""`crib-runtime start`: release the init waiting on exec.fifo (runc's handshake).

Kept to `os` and `select`: `start` is on every container's critical path (CRI-O runs it
for StartContainer), so it reads the plain `init` file ("PID START_TIME") that create
writes next to state.json instead of parsing JSON, and imports the error classes only
when it fails.
"""

from __future__ import annotations

import os
import select

from sandbox.runtime.container_paths import EXEC_FIFO, INIT_FILE, STATE_FILE, check_id_fast


def _fail(kind: str, message: str) -> Exception:
    from sandbox.runtime.errors import ContainerNotFoundError, ContainerStateError

    classes = {"not_found": ContainerNotFoundError, "state": ContainerStateError}
    return classes[kind](message)


def _alive(pid: int, start_time: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat_file:
            data = stat_file.read()
    except OSError:
        return False
    fields = data[data.rindex(b")") + 2 :].split()
    return fields[0] not in (b"Z", b"X") and int(fields[19]) == start_time


def start(root: str, container_id: str) -> None:
    """Open exec.fifo for reading; the init writes one byte and goes on to execve."""
    if not check_id_fast(container_id):
        raise _fail("state", f'invalid container id "{container_id}"')
    directory = os.path.join(root, container_id)
    try:
        with open(os.path.join(directory, INIT_FILE)) as init_file:
            pid_text, start_text = init_file.read().split()
    except (FileNotFoundError, ValueError):
        if not os.path.exists(os.path.join(directory, STATE_FILE)):
            raise _fail("not_found", f'container "{container_id}" does not exist') from None
        raise _fail("state", f"container {container_id}: unreadable init record") from None
    pid, start_time = int(pid_text), int(start_text)
    if not _alive(pid, start_time):
        raise _fail("state", "cannot start a container that has stopped")
    fifo_path = os.path.join(directory, EXEC_FIFO)
    try:
        fd = os.open(fifo_path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise _fail("state", "cannot start an already running container") from None
    try:
        # The init is blocked in open(O_WRONLY); our open released it. Wait for its byte,
        # checking it is still alive (a dead init would leave us waiting forever).
        while True:
            readable, _, _ = select.select([fd], [], [], 0.1)
            if readable:
                if os.read(fd, 1):
                    break
                raise _fail("state", "container init exited before start")
            if not _alive(pid, start_time):
                raise _fail("state", "container init exited before start")
    finally:
        os.close(fd)
    os.unlink(fifo_path)
