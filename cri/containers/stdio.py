"""Copying between a streaming client and an exec'd process's pipes or pty master.

Plain file descriptors, non-blocking, driven by the event loop (add_reader/add_writer):
the same code serves pipes and a pty master. Two rules come from what users of CRI-O and
containerd hit (docs/user-asks.md):

- stdin end (user-asks #7): when the client half-closes stdin the pipe's write end is
  closed at once, so `cat`-style processes see EOF; a pty has no half-close, so its EOF
  character (termios VEOF, ^D) is written instead, which ends a read in canonical mode.
- output after exit: a process's children may keep its stdout open for ever
  (`sh -c 'sleep 1d &'`). Once the process has exited, output is copied as long as it
  flows and abandoned after `drain_idle_s` of silence (containerd's
  drain_exec_sync_io_timeout, applied to streaming exec too); a client that stops reading
  is given `STALL_S`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import struct
import termios
from collections.abc import Callable

from cri.streaming.runtime import InputStream, OutputStream, StreamClosedError, TerminalSize

READ_BYTES = 64 * 1024
# After the process exited, a client that takes no output for this long is given up on.
STALL_S = 30.0


async def wait_fd(fd: int, writable: bool = False) -> None:
    """Wait until `fd` is readable (or writable)."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    if writable:
        loop.add_writer(fd, wake)
    else:
        loop.add_reader(fd, wake)
    try:
        await ready
    finally:
        if writable:
            loop.remove_writer(fd)
        else:
            loop.remove_reader(fd)


async def read_fd(fd: int, max_bytes: int = READ_BYTES) -> bytes:
    """Up to `max_bytes` from a non-blocking fd; b"" at end of file.

    A pty master reads EIO once no process holds the slave open any more (pty(7)): that is
    its end of file.
    """
    while True:
        try:
            return os.read(fd, max_bytes)
        except BlockingIOError:
            await wait_fd(fd)
        except OSError as err:
            if err.errno == errno.EIO:
                return b""
            raise


async def write_fd(fd: int, data: bytes) -> None:
    """All of `data` to a non-blocking fd (BrokenPipeError once the reader is gone)."""
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except BlockingIOError:
            await wait_fd(fd, writable=True)
            continue
        view = view[written:]


def set_window_size(pty_fd: int, size: TerminalSize) -> None:
    """TIOCSWINSZ (tty_ioctl(4)): struct winsize is rows, columns, then pixel sizes. The
    kernel sends SIGWINCH to the terminal's foreground process group."""
    fcntl.ioctl(pty_fd, termios.TIOCSWINSZ, struct.pack("HHHH", size.height, size.width, 0, 0))


def eof_character(pty_fd: int) -> bytes:
    """The terminal's VEOF character (^D unless the process changed it)."""
    try:
        control_chars = termios.tcgetattr(pty_fd)[6]
        eof = control_chars[termios.VEOF]
    except (termios.error, OSError, IndexError):
        return b"\x04"
    return eof if isinstance(eof, bytes) and eof else b"\x04"


async def copy_stdin(source: InputStream, fd: int, end: Callable[[], None]) -> None:
    """Client stdin into `fd` until the client half-closes it, then `end()` the process's
    input (close the pipe, or write VEOF to a pty: `pty_eof`)."""
    try:
        while data := await source.read(READ_BYTES):
            await write_fd(fd, data)
    except StreamClosedError:
        pass  # a reset stdin is an ended stdin (runtime.py)
    except OSError:
        # The process closed its stdin (EPIPE) or is gone: what the client still sends
        # has nowhere to go; keep reading it so the session cannot stall.
        with contextlib.suppress(StreamClosedError):
            while await source.read(READ_BYTES):
                pass
    finally:
        end()


def pty_eof(pty_fd: int) -> None:
    """End a tty's input: a pty has no half-close, its EOF character ends a read in
    canonical mode (termios(3) VEOF)."""
    with contextlib.suppress(OSError):
        os.write(pty_fd, eof_character(pty_fd))


class OwnedFd:
    """An fd closed exactly once, by whoever gets there first (never a reused number)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.closed = False

    def close(self) -> None:
        """Close the fd if still open."""
        if not self.closed:
            self.closed = True
            with contextlib.suppress(OSError):
                os.close(self.fd)


class OutputCopy:
    """Copies a process's output fd to a client stream (or discards it), tracking activity
    so the caller can tell a draining copy from an abandoned one."""

    def __init__(self, fd: int, sink: OutputStream | None) -> None:
        self.fd = fd
        self.sink = sink
        self.last_activity = asyncio.get_running_loop().time()
        self.writing = False

    async def run(self) -> None:
        """Copy until end of file; a client that went away only stops the forwarding."""
        loop = asyncio.get_running_loop()
        self.last_activity = loop.time()
        sink = self.sink
        while data := await read_fd(self.fd):
            self.last_activity = loop.time()
            if sink is None:
                continue
            self.writing = True
            try:
                await sink.write(data)
            except StreamClosedError:
                sink = None  # keep draining so the process never blocks on a full pipe
            finally:
                self.writing = False
                self.last_activity = loop.time()


async def finish_output(
    copies: list[tuple[OutputCopy, asyncio.Task[None]]],
    drain_idle_s: float,
    stall_s: float = STALL_S,
) -> None:
    """After the process exited: let the copies reach end of file, abandoning one that
    reads nothing for `drain_idle_s` (a child holds the fd but writes nothing) or whose
    client takes no bytes for `stall_s` (`kubectl exec ... | sleep infinity`)."""
    loop = asyncio.get_running_loop()
    pending = {task for _, task in copies if not task.done()}
    while pending:
        _, pending = await asyncio.wait(pending, timeout=drain_idle_s / 4)
        for copy, task in copies:
            limit_s = stall_s if copy.writing else drain_idle_s
            if task in pending and loop.time() - copy.last_activity >= limit_s:
                task.cancel()
    for _, task in copies:
        if task.cancelled():
            continue
        error = task.exception()
        if error is not None:
            raise error
