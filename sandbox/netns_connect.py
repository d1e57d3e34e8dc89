"""Connect to a TCP port inside a network namespace and hand the socket to the caller.

The crib daemon is multi-threaded and so never calls setns(2) itself (DESIGN.md, process
model); for each forwarded connection it execs this single-threaded helper, which enters
the pod's network namespace, connects, passes the connected socket back over a unix
socket with SCM_RIGHTS (unix(7)), and exits. The socket keeps the namespace it was made
in, so the daemon then relays bytes on it directly.

    daemon                                  helper (python -I -S netns_connect.py ...)
    socketpair(AF_UNIX) ── one end as FD ──▶  open(NETNS_PATH); setns(fd, CLONE_NEWNET)
                                             connect 127.0.0.1:PORT, else [::1]:PORT
                        ◀── one message ──   {"ok": true}  + SCM_RIGHTS [connected socket]
                                         or  {"error": "...", "errno": N}  (no descriptor)
    waitpid                                  exit 0 (2: bad arguments)

Usage: netns_connect.py NETNS_PATH PORT FD. Standard library only, and runnable as a
plain script (`-I -S`, no site packages) so that it starts in a few milliseconds.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import socket
import sys

CLONE_NEWNET = 0x40000000  # <sched.h>
CONNECT_TIMEOUT_S = 10.0
# localhost, as CRI-O dials it: IPv4 first, then IPv6, one after the other (no
# happy-eyeballs: a pod usually listens on one family only).
ADDRESSES = (("127.0.0.1", socket.AF_INET), ("::1", socket.AF_INET6))


def setns(fd: int, nstype: int, path: str) -> None:
    """setns(2); raises OSError naming the syscall and the namespace path."""
    if hasattr(os, "setns"):  # Python 3.12+
        try:
            os.setns(fd, nstype)
        except OSError as err:
            raise OSError(err.errno, f"setns {path}: {err.strerror}") from None
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(ctypes.c_int(fd), ctypes.c_int(nstype)) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"setns {path}: {os.strerror(code)}")


def connect(port: int) -> socket.socket:
    """A socket connected to localhost:`port` in the current network namespace."""
    last: OSError | None = None
    for address, family in ADDRESSES:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(CONNECT_TIMEOUT_S)
        try:
            sock.connect((address, port))
        except OSError as err:
            sock.close()
            last = err
            continue
        sock.setblocking(True)
        return sock
    assert last is not None
    if isinstance(last, TimeoutError):
        raise OSError(errno.ETIMEDOUT, f"connect localhost:{port}: timed out")
    raise OSError(last.errno, f"connect localhost:{port}: {last.strerror}")


def main(argv: list[str]) -> int:
    """Run the helper; see the module docstring."""
    if len(argv) != 3 or not argv[1].isdigit() or not argv[2].isdigit():
        print("usage: netns_connect.py NETNS_PATH PORT FD", file=sys.stderr)
        return 2
    netns_path, port, reply_fd = argv[0], int(argv[1]), int(argv[2])
    reply = socket.socket(fileno=reply_fd)
    try:
        if not 1 <= port <= 65535:
            raise OSError(errno.EINVAL, f"port {port}: want 1-65535")
        ns_fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            setns(ns_fd, CLONE_NEWNET, netns_path)
        finally:
            os.close(ns_fd)
        sock = connect(port)
    except OSError as err:
        message = err.strerror or str(err)
        if err.filename:
            message = f"{err.filename}: {message}"
        reply.sendall(json.dumps({"error": message, "errno": err.errno or 0}).encode())
        return 0
    socket.send_fds(reply, [json.dumps({"ok": True}).encode()], [sock.fileno()])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
