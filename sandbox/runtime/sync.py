"""The parent <-> child protocol of `create` and `exec` (one SOCK_SEQPACKET socketpair).

Each packet is one JSON object with a "type". Three processes take part, as in runc's
nsexec (stage 0/1/2) and youki's main/intermediate/init:

    create (P0, subreaper)              intermediate (C1)             init (C2)
    ─────────────────────────────────   ───────────────────────────   ──────────────────────
    cgroup mkdir + resources
    fork ─────────────────────────────▶ join cgroup, setns(paths)
                                        unshare(USER)?
              ◀─────────── {"type":"userns"}
    write uid_map/gid_map
              ──────── {"type":"userns-mapped"} ▶
                                        setresuid(0), unshare(rest)
                                        fork ───────────────────────▶ (pid 1 of a new pid ns)
              ◀─────── {"type":"pid","pid":N}
                                        _exit(0): C2 re-parents to P0
                                                                      rootfs, console,
                                                                      hostname, sysctls,
                                                                      paths, rlimits, caps,
                                                                      user, seccomp
              ◀──────────────────────────────────────── {"type":"ready"}
    write --pid-file, state.json
    exit 0: C2 re-parents to P0's                                     open(exec.fifo, WRONLY)
    subreaper (conmon)                                                blocks until `start`,
                                                                      then execve(args)

Any stage that fails sends {"type":"error","step":S,"errno":E,"path":P,"message":M} and
exits; P0 then kills what exists, removes the cgroup and the state directory, and prints
one line. EOF without "ready" means the child died: P0 reports its exit status.
`exec` runs the same protocol with its own stages (setns into /proc/<init>/ns/*).
"""

from __future__ import annotations

import json
import os
import socket
from typing import Any

# Big enough for any message (error messages are one line).
_MAX_PACKET = 65536


class SyncError(Exception):
    """A setup step failed in a child; carries the step, errno and path for one line."""

    def __init__(self, step: str, errno_value: int, path: str, message: str) -> None:
        super().__init__(step, errno_value, path, message)
        self.step = step
        self.errno = errno_value
        self.path = path
        self.message = message

    def line(self) -> str:
        """`<step>: <message>` with errno and path; the one line callers print."""
        text = f"{self.step}: {self.message}"
        if self.errno:
            text += f" (errno {self.errno}"
            text += f", path {self.path})" if self.path else ")"
        elif self.path:
            text += f" (path {self.path})"
        return text


def pair() -> tuple[socket.socket, socket.socket]:
    """A connected SOCK_SEQPACKET pair (parent end, child end); message boundaries kept."""
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    return parent, child


def send(sock: socket.socket, message: dict[str, Any]) -> None:
    """Send one message."""
    sock.send(json.dumps(message).encode())


def send_error(sock: socket.socket, step: str, err: BaseException) -> None:
    """Report a failed step; never raises (the child exits right after)."""
    if isinstance(err, OSError):
        errno_value = err.errno or 0
        path = str(err.filename) if err.filename is not None else ""
        message = err.strerror or str(err)
        if errno_value and message and ":" not in message:
            message = message.lower()
    else:
        errno_value, path, message = 0, "", str(err)
    try:
        send(
            sock,
            {"type": "error", "step": step, "errno": errno_value, "path": path, "message": message},
        )
    except OSError:
        pass


def receive(sock: socket.socket) -> dict[str, Any] | None:
    """The next message, or None at EOF (the peer exited or closed its end)."""
    try:
        data = sock.recv(_MAX_PACKET)
    except ConnectionResetError:
        return None
    if not data:
        return None
    message: dict[str, Any] = json.loads(data)
    return message


def expect(sock: socket.socket, wanted: str) -> dict[str, Any]:
    """Receive a message of type `wanted`; an error message raises SyncError."""
    message = receive(sock)
    if message is None:
        raise EOFError(f"child exited before sending {wanted!r}")
    if message.get("type") == "error":
        raise SyncError(message["step"], message["errno"], message["path"], message["message"])
    if message.get("type") != wanted:
        raise SyncError("sync", 0, "", f"expected {wanted!r}, got {message.get('type')!r}")
    return message


def close_quietly(fd: int) -> None:
    """close(2), ignoring EBADF."""
    try:
        os.close(fd)
    except OSError:
        pass
