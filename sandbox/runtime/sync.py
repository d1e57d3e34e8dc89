"""The parent <-> child protocol of `create` and `exec` (one SOCK_SEQPACKET socketpair).

Each packet is one JSON object with a "type". Three processes take part, as in runc's
nsexec (stage 0/1/2) and youki's main/intermediate/init:

    create (P0, subreaper)              intermediate (C1)             init (C2)
    ─────────────────────────────────   ───────────────────────────   ──────────────────────
    cgroup mkdir + resources
    fork ─────────────────────────────▶ setns(paths)
                                        unshare(USER)?
              ◀─────────── {"type":"userns"}
    write uid_map/gid_map
              ──────── {"type":"userns-mapped"} ▶
                                        setresuid(0), unshare(rest
                                        but cgroup)
                                        fork ───────────────────────▶ (pid 1 of a new pid ns)
              ◀─────── {"type":"pid","pid":N}                         rootfs mounts ...
    write N to cgroup.procs             _exit(0): C2 re-parents to P0
              ─────────────────── {"type":"cgroup-joined"} ─────────▶ unshare(CGROUP),
                                                                      console, hostname,
                                                                      sysctls, paths, rlimits,
                                                                      caps, user, seccomp
              ◀──────────────────────────────────────── {"type":"ready"}
    write --pid-file, state.json
    exit 0: C2 re-parents to P0's                                     open(exec.fifo, WRONLY)
    subreaper (conmon)                                                blocks until `start`,
                                                                      then execve(args)

The cgroup move overlaps the init's rootfs work (runc's parent does it the same way): the
first cgroup.procs write of a burst waits for an RCU grace period (~10 ms on v1 here).
Any stage that fails sends {"type":"error","step":S,"errno":E,"path":P,"message":M} and
exits; P0 then kills what exists, removes the cgroup and the state directory, and prints
one line. EOF without "ready" means the child died: P0 reports its exit status.

`exec` runs the same protocol with its own stages (setns into /proc/<init>/ns/*).

No wait may outlive the side it waits for, whatever fails where:
  - a child blocks only for a reply P0 owes it ("userns-mapped", "cgroup-joined"); P0
    either sends it or, failing itself, closes its end and kills the children;
  - P0 blocks for the next message only while a child holds the socket (EOF then), and
    until it knows the init's pid it also watches the intermediate's pidfd: an
    intermediate killed between forking the init and reporting it leaves an init that
    holds the socket and waits for P0;
  - P0 never waits for a child after failing on its own side: when cgroup.procs refuses
    the init (an empty v1 cpuset answers ENOSPC) the init is blocked waiting for
    "cgroup-joined", so P0 only takes an error already queued (`queued_error`). The
    blocking read it once did there hung `create`, and conmon with it, for good.
"""

from __future__ import annotations

import _socket
import _struct
import os

from common import jsonc

# Not `typing.TYPE_CHECKING`: typing costs ~10 ms at every crib-runtime start.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# The C modules, not `socket` and `array`: the socket wrapper builds enums and imports
# selectors at start-up (~6 ms here), `array` registers itself with collections.abc
# (~3 ms), and crib-runtime's start-up is paid on every container start and exec.
Socket = _socket.socket
_INT_SIZE = _struct.calcsize("i")

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


def pair() -> tuple[Socket, Socket]:
    """A connected SOCK_SEQPACKET pair (parent end, child end); message boundaries kept.

    Both ends are close-on-exec: an exec'd process never holds the protocol open.
    """
    parent_fd, child_fd = _socketpair_fds()
    return (
        _socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET, 0, parent_fd),
        _socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET, 0, child_fd),
    )


def _socketpair_fds() -> tuple[int, int]:
    first, second = _socket.socketpair(
        _socket.AF_UNIX, _socket.SOCK_SEQPACKET | _socket.SOCK_CLOEXEC
    )
    return first.detach(), second.detach()


def connect_unix(path: str) -> int:
    """Connect a SOCK_STREAM unix socket to `path` (the console socket); returns its fd."""
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        raise
    return int(sock.detach())


def send_fds(sock: Socket, data: bytes, fds: list[int]) -> None:
    """sendmsg(2) with SCM_RIGHTS (unix(7)): `data` plus the file descriptors."""
    rights = _struct.pack(f"{len(fds)}i", *fds)
    sock.sendmsg([data], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, rights)])


def recv_fds(sock: Socket, size: int, max_fds: int) -> tuple[bytes, list[int]]:
    """recvmsg(2) of one message and the file descriptors passed with it."""
    data, ancillary, _, _ = sock.recvmsg(size, _socket.CMSG_SPACE(max_fds * _INT_SIZE))
    fds: list[int] = []
    for level, kind, payload in ancillary:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            count = len(payload) // _INT_SIZE
            fds.extend(_struct.unpack(f"{count}i", payload[: count * _INT_SIZE]))
    return data, fds


def send_fd_over(fd_of_socket: int, data: bytes, fd: int) -> None:
    """Send `fd` over the connected unix socket `fd_of_socket`, then close that socket."""
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM, 0, fd_of_socket)
    try:
        send_fds(sock, data, [fd])
    finally:
        sock.close()


def send(sock: Socket, message: dict[str, Any]) -> None:
    """Send one message."""
    sock.send(jsonc.dumps(message).encode())


def send_error(sock: Socket, step: str, err: BaseException) -> None:
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


def receive(sock: Socket) -> dict[str, Any] | None:
    """The next message, or None at EOF (the peer exited or closed its end)."""
    try:
        data = sock.recv(_MAX_PACKET)
    except ConnectionResetError:
        return None
    if not data:
        return None
    message: dict[str, Any] = jsonc.loads(data)
    return message


def queued_error(sock: Socket) -> SyncError | None:
    """The error message a child already sent, if one is queued; never waits.

    For a parent that failed on its own side while a child may be blocked waiting for
    the parent's next message: waiting for the child there would wait forever.
    """
    try:
        data = sock.recv(_MAX_PACKET, _socket.MSG_DONTWAIT)
    except (BlockingIOError, ConnectionResetError):
        return None
    if not data:
        return None
    message: dict[str, Any] = jsonc.loads(data)
    if message.get("type") != "error":
        return None
    return SyncError(message["step"], message["errno"], message["path"], message["message"])


def expect(sock: Socket, wanted: str) -> dict[str, Any]:
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
