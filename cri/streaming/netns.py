"""Port-forward into a pod's network namespace without entering it.

`connect_in_netns` execs the single-threaded helper sandbox/netns_connect.py (the daemon
never calls setns: it is multi-threaded), which returns a socket connected to
localhost:PORT inside the namespace; `relay` then copies bytes between that socket and
the client's stream, propagating half-close both ways. `NetnsPortForwarder` puts the
two together behind `StreamingRuntime.port_forward`, given a way to find a sandbox's
network namespace path (its bind-mounted pin).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import sys
from collections.abc import Callable

from common.errors import UnavailableError
from cri.streaming.errors import StreamingError
from cri.streaming.runtime import DuplexStream, StreamClosedError
from sandbox import netns_connect

log = logging.getLogger("crib.streaming")

HELPER_PATH = os.path.abspath(netns_connect.__file__)
HELPER_TIMEOUT_S = 20.0
RELAY_BYTES = 256 * 1024


class NetnsConnectError(StreamingError, UnavailableError):
    """Nothing could be reached at the port inside the pod's network namespace."""


async def connect_in_netns(
    netns_path: str, port: int, timeout_s: float = HELPER_TIMEOUT_S
) -> socket.socket:
    """A socket connected to localhost:`port` inside the network namespace at `netns_path`."""
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with parent:
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-I",  # isolated: no user site, no environment influence
                "-S",  # no site module: the helper is stdlib-only and starts faster
                HELPER_PATH,
                netns_path,
                str(port),
                str(child.fileno()),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                pass_fds=(child.fileno(),),
            )
        finally:
            child.close()
        try:
            _, stderr = await asyncio.wait_for(process.communicate(), timeout_s)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            raise NetnsConnectError(
                f"connect to port {port} in {netns_path}: timed out after {timeout_s:.0f} s"
            ) from None
        parent.setblocking(False)
        try:
            message, fds, _, _ = socket.recv_fds(parent, 65536, 1)
        except BlockingIOError:
            message, fds = b"", []
    sock = socket.socket(fileno=fds[0]) if fds else None
    try:
        reply = json.loads(message) if message else {}
    except ValueError:
        reply = {}
    if sock is None or not reply.get("ok"):
        if sock is not None:
            sock.close()
        detail = reply.get("error") or stderr.decode(errors="replace").strip()
        raise NetnsConnectError(
            f"failed to connect to localhost:{port} inside namespace {netns_path}:"
            f" {detail or f'helper exited {process.returncode}'}"
        )
    return sock


async def relay(stream: DuplexStream, sock: socket.socket) -> None:
    """Copy bytes both ways between `stream` and `sock` until both directions end.

    A half-close travels on: the client's FIN shuts down our write side of the socket,
    the pod's FIN becomes the stream's. A reset or lost stream ends both directions.
    """
    reader, writer = await asyncio.open_connection(sock=sock)

    async def upstream() -> None:  # client -> pod
        while data := await stream.read(RELAY_BYTES):
            try:
                writer.write(data)
                await writer.drain()
            except (ConnectionError, OSError):
                # The pod stopped reading; how the connection ends is up to its other
                # direction. Keep consuming so the client's data cannot stall the session.
                while await stream.read(RELAY_BYTES):
                    pass
                return
        if writer.can_write_eof():
            with contextlib.suppress(OSError):
                writer.write_eof()

    async def downstream() -> None:  # pod -> client
        while data := await reader.read(RELAY_BYTES):
            await stream.write(data)
        await stream.close()

    tasks = {asyncio.ensure_future(upstream()), asyncio.ensure_future(downstream())}
    try:
        while tasks:
            done, tasks = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                error = task.exception()
                if error is not None:
                    raise error
    except (ConnectionError, OSError) as err:
        if isinstance(err, StreamClosedError):
            raise
        raise NetnsConnectError(f"connection to the pod broke: {err}") from None
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        writer.close()


class NetnsPortForwarder:
    """`StreamingRuntime.port_forward` for pods with a pinned network namespace.

    `netns_path_of(sandbox_id)` returns the pod's network namespace path, raising a
    `DomainError` (NotFound, FailedPrecondition) when there is none to enter.
    """

    def __init__(self, netns_path_of: Callable[[str], str]) -> None:
        self._netns_path_of = netns_path_of

    async def port_forward(self, sandbox_id: str, port: int, stream: DuplexStream) -> None:
        """Connect to `port` in the sandbox's network namespace and relay `stream` to it."""
        netns_path = self._netns_path_of(sandbox_id)
        sock = await connect_in_netns(netns_path, port)
        log.debug("port-forward to sandbox %s port %d: connected", sandbox_id, port)
        await relay(stream, sock)
