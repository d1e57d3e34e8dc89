"""The one seam between the streaming server and containers: `StreamingRuntime`.

The server speaks the wire protocols (SPDY/3.1, WebSocket) and hands the runtime plain
async streams; the runtime (the containers area) runs the process, attaches to conmon,
or dials into the pod's network namespace, and knows nothing about the protocols.

    client ──SPDY/WebSocket──▶ StreamingServer ──InputStream/OutputStream──▶ StreamingRuntime
                                 (cri/streaming)                              (containers area)

Rules every implementation follows (they come from what CRI-O and containerd users hit,
docs/user-asks.md):

- stdin half-close (user-asks #7): `InputStream.read()` returns b"" as soon as the client
  half-closes stdin (SPDY FIN on the stdin stream, the v5 WebSocket CLOSE signal). The
  runtime must then close the process's stdin at once, and it must be a pipe (or the pty
  EOF character for a tty), not a socket, so `cat`-style processes see EOF.
- exec I/O never holds locks that stop/remove need (user-asks #6): copying stdout into an
  `OutputStream` may block for as long as the client does not read (`kubectl exec ... |
  sleep infinity`); do that copying without holding any container lock, and kill exec
  processes when their container stops.
- cancellation means the client went away (connection lost, idle timeout, daemon
  shutdown): `exec` kills its process and returns, `attach` detaches, `port_forward`
  closes its socket. Raising `asyncio.CancelledError` out is fine.
- exit codes: `exec` returns the process's exit status 0-255; a process killed by signal N
  reports 128+N as a shell does (the client parses the code as an unsigned byte).
- errors: raise a `common.errors.DomainError`; its message reaches the user in the
  protocol's error channel ("Internal error occurred: ..."). A non-zero exit is not an
  error: return the code.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from common.errors import UnavailableError


class StreamClosedError(ConnectionError):
    """The client's side of a stream is gone (reset, or the connection was lost)."""


@dataclasses.dataclass(frozen=True)
class TerminalSize:
    """A terminal size from the client's resize channel (columns x rows)."""

    width: int
    height: int


class InputStream(Protocol):
    """Bytes from the client (stdin, or the client half of a forwarded connection)."""

    async def read(self, max_bytes: int = 65536) -> bytes:
        """Up to `max_bytes`; b"" once the client half-closed (end of input).

        Raises `StreamClosedError` when the stream was reset or the connection lost;
        for stdin treat that as end of input too.
        """
        ...


class OutputStream(Protocol):
    """Bytes to the client (stdout, stderr, or the pod half of a forwarded connection)."""

    async def write(self, data: bytes) -> None:
        """Send `data`; waits while the client is slow (backpressure).

        Raises `StreamClosedError` once the client can no longer receive.
        """
        ...

    async def close(self) -> None:
        """Half-close: the client sees end of stream. Closing twice is harmless."""
        ...


class DuplexStream(InputStream, OutputStream, Protocol):
    """A forwarded TCP connection as the client sees it."""


@dataclasses.dataclass(frozen=True)
class StdioStreams:
    """What exec and attach get: the streams the client asked for, and resize events.

    With `tty` there is no `stderr` (the CRI forbids tty with stderr: one pty carries
    both). `initial_size` is the client's terminal size when the session began (clients
    send it right after setting up their streams): size the pty with it BEFORE starting
    the process, or `kubectl exec -it ... top` starts at 0x0. `resize` then yields later
    changes until the client leaves. Without a tty both are None. The server closes
    `stdout`/`stderr` after the runtime returns, so a runtime need not close them.
    """

    tty: bool
    stdin: InputStream | None
    stdout: OutputStream | None
    stderr: OutputStream | None
    resize: AsyncIterator[TerminalSize] | None
    initial_size: TerminalSize | None = None


class StreamingRuntime(Protocol):
    """What the containers area implements for the streaming server."""

    async def exec(self, container_id: str, cmd: Sequence[str], streams: StdioStreams) -> int:
        """Run `cmd` in the running container `container_id`; return its exit status."""
        ...

    async def attach(self, container_id: str, streams: StdioStreams) -> None:
        """Attach `streams` to the container's own stdio (conmon's attach socket) until
        the container exits or the client leaves (stdin_once: stdin EOF detaches)."""
        ...

    async def port_forward(self, sandbox_id: str, port: int, stream: DuplexStream) -> None:
        """Relay `stream` to TCP `port` on localhost inside the pod's network namespace.

        Propagate half-close both ways; return when both directions are done.
        """
        ...


class UnwiredStreamingRuntime:
    """The runtime until the containers area provides one: every session fails cleanly.

    Nothing mints exec/attach/port-forward URLs before then (the RPCs answer
    UNIMPLEMENTED), so this is reached only by a request for a URL that cannot exist.
    """

    async def exec(self, container_id: str, cmd: Sequence[str], streams: StdioStreams) -> int:
        """Refuse: no container runtime is wired to the streaming server."""
        raise UnavailableError(f"exec in container {container_id}: no container runtime wired")

    async def attach(self, container_id: str, streams: StdioStreams) -> None:
        """Refuse: no container runtime is wired to the streaming server."""
        raise UnavailableError(f"attach to container {container_id}: no container runtime wired")

    async def port_forward(self, sandbox_id: str, port: int, stream: DuplexStream) -> None:
        """Refuse: no container runtime is wired to the streaming server."""
        raise UnavailableError(f"port-forward to sandbox {sandbox_id}: no container runtime wired")
