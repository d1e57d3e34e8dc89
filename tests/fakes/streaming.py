"""A `StreamingRuntime` without containers: local processes, local ports, recorded calls.

- `exec` runs the command as a local subprocess (the container id is only recorded), so
  exit codes, stdin EOF and stderr are real; with a tty the process gets a pty as its
  controlling terminal (`setsid --ctty`) and resize events set its window size.
- `attach` attaches to a `FakeContainer` (a local process started by the test).
- `port_forward` relays to 127.0.0.1:PORT on the host, or, for sandboxes registered in
  `netns_paths`, into that network namespace through the real exec'd helper.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import pty
import signal
import socket
import struct
import termios
from collections.abc import Sequence
from typing import Any

from common.errors import NotFoundError
from cri.streaming.netns import NetnsPortForwarder, relay
from cri.streaming.runtime import (
    DuplexStream,
    InputStream,
    OutputStream,
    StdioStreams,
    StreamClosedError,
    TerminalSize,
)


def _exit_status(returncode: int) -> int:
    # The runtime contract: 0-255, 128+N for a signal (Python reports -N).
    return 128 - returncode if returncode < 0 else returncode


async def _pump_stdin(source: InputStream, sink: asyncio.StreamWriter | None) -> None:
    try:
        while data := await source.read():
            if sink is not None:
                sink.write(data)
                await sink.drain()
    except (StreamClosedError, ConnectionError):
        pass
    finally:
        if sink is not None:
            # user-asks #7: the process must see EOF as soon as the client half-closes.
            sink.close()


async def _pump_out(source: asyncio.StreamReader, sink: OutputStream | None) -> None:
    while data := await source.read(65536):
        if sink is not None:
            await sink.write(data)


def _set_size(pty_fd: int, size: TerminalSize) -> None:
    # TIOCSWINSZ takes struct winsize: rows, columns, then pixel sizes (tty_ioctl(4)).
    fcntl.ioctl(pty_fd, termios.TIOCSWINSZ, struct.pack("HHHH", size.height, size.width, 0, 0))


class FakeContainer:
    """A local process standing in for a running container's main process."""

    def __init__(self, cmd: Sequence[str]) -> None:
        self.cmd = list(cmd)
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        """Start the process with piped stdio."""
        self.process = await asyncio.create_subprocess_exec(
            *self.cmd,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )

    async def stop(self) -> None:
        """Kill the process."""
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            await self.process.wait()


class LocalProcessRuntime:
    """The fake runtime; `calls` records (method, target, details) in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Any]] = []
        self.resizes: list[TerminalSize] = []
        self.initial_sizes: list[TerminalSize] = []
        self.containers: dict[str, FakeContainer] = {}
        self.netns_paths: dict[str, str] = {}
        self.running_execs = 0
        self.max_running_execs = 0
        self._netns = NetnsPortForwarder(self._netns_path_of)

    def _netns_path_of(self, sandbox_id: str) -> str:
        return self.netns_paths[sandbox_id]

    # -- exec ---------------------------------------------------------------------------------

    async def exec(self, container_id: str, cmd: Sequence[str], streams: StdioStreams) -> int:
        """Run `cmd` locally."""
        self.calls.append(("exec", container_id, list(cmd)))
        if container_id == "missing":
            raise NotFoundError(f"container {container_id} not found")
        self.running_execs += 1
        self.max_running_execs = max(self.max_running_execs, self.running_execs)
        try:
            if streams.tty:
                return await self._exec_tty(cmd, streams)
            return await self._exec_pipes(cmd, streams)
        finally:
            self.running_execs -= 1

    async def _exec_pipes(self, cmd: Sequence[str], streams: StdioStreams) -> int:
        pipe, null = asyncio.subprocess.PIPE, asyncio.subprocess.DEVNULL
        process = await asyncio.create_subprocess_exec(
            *cmd,
            stdin=pipe if streams.stdin else null,
            stdout=pipe if streams.stdout else null,
            stderr=pipe if streams.stderr else null,
            start_new_session=True,
        )
        stdin_task = None
        if streams.stdin is not None:
            stdin_task = asyncio.ensure_future(_pump_stdin(streams.stdin, process.stdin))
        outputs = [
            _pump_out(source, sink)
            for source, sink in ((process.stdout, streams.stdout), (process.stderr, streams.stderr))
            if source is not None
        ]
        try:
            await asyncio.gather(*outputs)
            return _exit_status(await process.wait())
        finally:
            if stdin_task is not None:
                stdin_task.cancel()
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                await process.wait()

    async def _exec_tty(self, cmd: Sequence[str], streams: StdioStreams) -> int:
        master, slave = pty.openpty()
        if streams.initial_size is not None:
            # Sized before the process starts, as a runtime must.
            self.initial_sizes.append(streams.initial_size)
            _set_size(master, streams.initial_size)
        try:
            process = await asyncio.create_subprocess_exec(
                "setsid",
                "--ctty",
                "--wait",
                *cmd,
                stdin=slave,
                stdout=slave,
                stderr=slave,
            )
        finally:
            os.close(slave)
        loop = asyncio.get_running_loop()
        os.set_blocking(master, False)
        output: asyncio.Queue[bytes] = asyncio.Queue()

        def readable() -> None:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every slave end is closed
                data = b""
            if not data:
                loop.remove_reader(master)
            output.put_nowait(data)

        loop.add_reader(master, readable)

        async def pump_output() -> None:
            while data := await output.get():
                if streams.stdout is not None:
                    await streams.stdout.write(data)

        async def pump_input() -> None:
            assert streams.stdin is not None
            try:
                while data := await streams.stdin.read():
                    os.write(master, data)
            except StreamClosedError:
                pass
            # A tty has no half-close: its EOF character ends a read in canonical mode.
            with contextlib.suppress(OSError):
                os.write(master, b"\x04")

        async def apply_resizes() -> None:
            assert streams.resize is not None
            async for size in streams.resize:
                self.resizes.append(size)
                _set_size(master, size)

        helpers = [asyncio.ensure_future(pump_output())]
        if streams.stdin is not None:
            helpers.append(asyncio.ensure_future(pump_input()))
        if streams.resize is not None:
            helpers.append(asyncio.ensure_future(apply_resizes()))
        try:
            status = await process.wait()
            await helpers[0]
            return _exit_status(status)
        finally:
            for helper in helpers:
                helper.cancel()
            loop.remove_reader(master)
            os.close(master)
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()

    # -- attach -------------------------------------------------------------------------------

    async def attach(self, container_id: str, streams: StdioStreams) -> None:
        """Attach to a registered `FakeContainer` until its process exits."""
        self.calls.append(("attach", container_id, streams.tty))
        container = self.containers.get(container_id)
        if container is None or container.process is None:
            raise NotFoundError(f"container {container_id} not found")
        process = container.process
        stdin_task = None
        if streams.stdin is not None:
            stdin_task = asyncio.ensure_future(_pump_stdin(streams.stdin, process.stdin))
        try:
            assert process.stdout is not None
            assert process.stderr is not None
            await asyncio.gather(
                _pump_out(process.stdout, streams.stdout),
                _pump_out(process.stderr, streams.stderr),
            )
            await process.wait()
        finally:
            if stdin_task is not None:
                stdin_task.cancel()

    # -- port-forward ---------------------------------------------------------------------------

    async def port_forward(self, sandbox_id: str, port: int, stream: DuplexStream) -> None:
        """Relay to the port on the host, or inside a registered network namespace."""
        self.calls.append(("port_forward", sandbox_id, port))
        if sandbox_id in self.netns_paths:
            await self._netns.port_forward(sandbox_id, port, stream)
            return
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        except OSError as err:
            sock.close()
            raise NotFoundError(f"nothing listens on port {port}: {err.strerror}") from None
        await relay(stream, sock)
