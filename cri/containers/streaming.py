"""Exec, attach and port-forward for real containers: the `StreamingRuntime` of crib.

Exec runs `RUNTIME exec --detach` as containerd's shim drives runc (CRI-O keeps runc in
the foreground instead, but runc then ignores --console-socket and relays through a
second pty of its own):

    crib                                   RUNTIME exec --detach         the process
    <bundle>/exec/<exec id>.json           joins the container ───────▶ execve(cmd)
    pipes, or a console socket ──spawn──▶  [tty: pty master ──SCM_RIGHTS──▶ crib]
                                           --pid-file, exit 0: the process is re-parented
                                           to crib (PR_SET_CHILD_SUBREAPER, cri/server.py)
    pidfd_open(pid); copy stdin/stdout/stderr (pipes) or the pty master; resize: TIOCSWINSZ
    pidfd readable ─▶ waitpid ─▶ exit status (128+N for signal N) ─▶ drain output ─▶ return

- The process gets real pipes, chowned to its user (a non-root process can then reopen
  /dev/stdin or /dev/stdout, as CRI-O does for stdin), so closing stdin is an EOF it sees.
- A tty is sized before the process starts (OCI process.consoleSize) and TERM=xterm is
  set when the image sets no TERM (containerd does the same for a tty exec).
- The runtime's own error text arrives on the stderr pipe before the process exists; it is
  held until the runtime exits: on failure it becomes the error, on success it is output.
- No container lock is held (user-asks #6). Exec processes are registered per container
  and SIGKILLed when it stops (CRI-O KillExecPIDs); a client that leaves kills its exec.

Attach connects to conmon's attach socket (docs/conmon.md 6): SOCK_SEQPACKET, each packet
from conmon one byte of stream (2 stdout, 3 stderr) and up to 8192 bytes; what we send goes
to the container's stdin (at most 32 KiB a packet: conmon reads that much and a seqpacket
read drops the rest); shutdown(SHUT_WR) closes the container's stdin when it was created
with stdin_once. Resizes go to conmon's ctl fifo. As CRI-O, the session ends when conmon
closes (the container exited), or at stdin EOF for a container whose stdin stays open.

Port-forward dials localhost:PORT inside the pod's network namespace through the exec'd
helper (cri/streaming/netns.py); host-network pods are dialled on the host's loopback
directly, as containerd does.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import secrets
import signal
import socket
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from typing import Any

from common.errors import FailedPreconditionError
from cri.containers import exits
from cri.containers.errors import ContainerError, ContainerStateError
from cri.containers.manager import EXEC_DIR, ContainerManager
from cri.containers.records import ContainerState
from cri.containers.stdio import (
    OutputCopy,
    OwnedFd,
    copy_stdin,
    finish_output,
    pty_eof,
    set_window_size,
    wait_fd,
)
from cri.pods.records import SandboxMetadata, SandboxState, SandboxStatus
from cri.store import Record
from cri.streaming.netns import NetnsConnectError, NetnsPortForwarder, relay
from cri.streaming.runtime import (
    DuplexStream,
    InputStream,
    OutputStream,
    StdioStreams,
    TerminalSize,
)
from sandbox.monitor import proc
from sandbox.monitor.conmon import CTL_RESIZE, write_ctl
from sandbox.monitor.errors import MonitorError
from sandbox.oci.client import RuntimeClient, stderr_message

log = logging.getLogger("crib.streaming")

SandboxRecord = Record[SandboxMetadata, SandboxStatus]

# Output copying goes on after the process exited while bytes flow; this much silence
# ends it (a background child may hold the pipe for ever).
DRAIN_IDLE_S = 2.0
# How long a SIGKILLed exec process may take to die before crib stops waiting.
KILL_WAIT_S = 10.0
# conmon's attach socket: 1 stream byte + STDIO_BUF_SIZE out, CONN_SOCK_BUF_SIZE in.
ATTACH_READ_BYTES = 8192 + 1
ATTACH_WRITE_BYTES = 32 * 1024
ATTACH_STDOUT, ATTACH_STDERR = 2, 3


class ContainerExecError(ContainerError):
    """The runtime could not start the exec'd process (its message says why)."""


class ContainerAttachError(ContainerError):
    """conmon's attach socket cannot be reached."""


@dataclasses.dataclass(eq=False)
class ExecProcess:
    """A running exec'd process, held by its pidfd (immune to pid reuse)."""

    container_id: str
    pid: int
    pidfd: int

    def kill(self) -> None:
        """SIGKILL it (pidfd_send_signal(2)); a process already gone is fine."""
        with contextlib.suppress(OSError):
            signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)


@dataclasses.dataclass
class _Started:
    """What a successful `RUNTIME exec --detach` leaves crib holding."""

    process: ExecProcess
    early_stderr: bytes
    master: OwnedFd | None = None  # tty
    stdin: OwnedFd | None = None  # pipes: our ends
    stdout: OwnedFd | None = None
    stderr: OwnedFd | None = None

    def close(self) -> None:
        for end in (self.master, self.stdin, self.stdout, self.stderr):
            if end is not None:
                end.close()
        with contextlib.suppress(OSError):
            os.close(self.process.pidfd)


class ContainerStreamingRuntime:
    """`StreamingRuntime` (cri/streaming/runtime.py) over crib's containers and pods."""

    def __init__(
        self,
        containers: ContainerManager,
        sandbox_of: Callable[[str], SandboxRecord],
        runtime_client: Callable[[str], RuntimeClient],
        console_dir: str,
        drain_idle_s: float = DRAIN_IDLE_S,
    ) -> None:
        self.containers = containers
        self.sandbox_of = sandbox_of
        self.runtime_client = runtime_client
        # Console sockets: short paths (sun_path holds 108 bytes), one per tty exec.
        self.console_dir = console_dir
        self.drain_idle_s = drain_idle_s
        self._execs: dict[str, set[ExecProcess]] = {}
        self._netns = NetnsPortForwarder(self._netns_path_of)
        containers.listeners.append(self._on_container_event)

    def sweep(self) -> None:
        """Remove console sockets a crashed crib left (call with the daemon locks held)."""
        with contextlib.suppress(FileNotFoundError):
            for name in os.listdir(self.console_dir):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(self.console_dir, name))

    def _on_container_event(self, container_id: str, event: str) -> None:
        # The container's init is dead: its exec'd processes go too (user-asks #6). In a
        # container of its own pid namespace the kernel already killed them; in a pod's
        # shared one they would live on.
        if event in ("stopped", "deleted"):
            for process in list(self._execs.get(container_id, ())):
                log.info("container %s stopped: killing exec process %d", container_id, process.pid)
                process.kill()

    # -- exec ------------------------------------------------------------------------------------

    async def exec(self, container_id: str, cmd: Sequence[str], streams: StdioStreams) -> int:
        """Run `cmd` in the running container; its exit status (see module doc)."""
        record = self.containers.require(container_id)
        container_id = record.record_id
        process = self.containers.exec_process_spec(container_id, list(cmd), tty=streams.tty)
        if streams.tty:
            _for_tty(process, streams.initial_size)
        runtime = self.runtime_client(record.metadata.runtime_handler)
        work_dir = os.path.join(record.metadata.bundle_dir, EXEC_DIR)
        exec_id = secrets.token_hex(8)
        process_file = os.path.join(work_dir, f"{exec_id}.json")
        pid_file = os.path.join(work_dir, f"{exec_id}.pid")
        try:
            await asyncio.to_thread(_write_json, work_dir, process_file, process)
            started = await self._start(
                runtime, container_id, process, process_file, pid_file, streams
            )
        finally:
            for path in (process_file, pid_file):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
        registered = self._execs.setdefault(container_id, set())
        registered.add(started.process)
        try:
            return await self._run(started, streams)
        finally:
            registered.discard(started.process)
            if not registered:
                self._execs.pop(container_id, None)
            started.close()

    async def _start(
        self,
        runtime: RuntimeClient,
        container_id: str,
        process: dict[str, Any],
        process_file: str,
        pid_file: str,
        streams: StdioStreams,
    ) -> _Started:
        """`RUNTIME exec --detach`; the process runs when this returns."""
        user = process.get("user") or {}
        uid, gid = int(user.get("uid", 0)), int(user.get("gid", 0))
        args = ["exec", "--process", process_file, "--pid-file", pid_file, "--detach"]
        ours: list[OwnedFd] = []  # our ends of the pipes
        theirs: list[int] = []  # the runtime's (and so the process's) ends: closed here

        def pipe(process_reads: bool) -> tuple[OwnedFd, int]:
            read_end, write_end = os.pipe()
            mine, other = (write_end, read_end) if process_reads else (read_end, write_end)
            ours.append(OwnedFd(mine))
            theirs.append(other)
            return ours[-1], other

        listener: socket.socket | None = None
        console_path = ""
        master_task: asyncio.Future[int] | None = None
        started: _Started | None = None
        try:
            # The runtime's stderr; without a tty the process's stderr too.
            stderr_end, stderr_fd = pipe(process_reads=False)
            stdin_end = stdout_end = None
            stdin_fd = stdout_fd = asyncio.subprocess.DEVNULL
            if streams.tty:
                os.makedirs(self.console_dir, mode=0o700, exist_ok=True)
                console_path = os.path.join(self.console_dir, f"{secrets.token_hex(8)}.sock")
                listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                listener.bind(console_path)
                listener.listen(1)
                listener.setblocking(False)
                master_task = asyncio.ensure_future(_receive_fd(listener))
                args += ["--console-socket", console_path]
            else:
                if streams.stdin is not None:
                    stdin_end, stdin_fd = pipe(process_reads=True)
                if streams.stdout is not None:
                    stdout_end, stdout_fd = pipe(process_reads=False)
                # Owned by the process's user, who may reopen them (/dev/stdout).
                for fd in theirs:
                    os.fchown(fd, uid, gid)
            status = await _run_runtime(
                runtime, [*args, container_id], stdin_fd, stdout_fd, stderr_fd
            )
            early = _read_available(stderr_end.fd)
            if status != 0:
                message = stderr_message(early) or f"exit status {status}"
                raise ContainerExecError(
                    f"exec in container {container_id}: {runtime.name} exec: {message}"
                )
            pid = _read_pid(pid_file)
            try:
                pidfd = os.pidfd_open(pid)
            except ProcessLookupError:
                pidfd = -1  # the orphan reaper got it first: its status waits for us
            started = _Started(ExecProcess(container_id, pid, pidfd), early)
            if master_task is None:
                started.stdin, started.stdout, started.stderr = stdin_end, stdout_end, stderr_end
            else:
                stderr_end.close()  # only the runtime wrote there
                try:
                    started.master = OwnedFd(await asyncio.wait_for(master_task, 10.0))
                except TimeoutError:
                    raise ContainerExecError(
                        f"exec in container {container_id}: {runtime.name} sent no terminal"
                    ) from None
            return started
        except BaseException:
            if started is None:
                # Cancelled while the runtime ran: it may have started the process.
                await asyncio.shield(_kill_pid_file(container_id, pid_file))
            else:
                started.process.kill()
                await asyncio.shield(_reap(started.process))
                started.close()
            for end in ours:
                end.close()
            raise
        finally:
            for fd in theirs:
                with contextlib.suppress(OSError):
                    os.close(fd)
            if master_task is not None and not master_task.done():
                master_task.cancel()
            if listener is not None:
                listener.close()
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(console_path)

    async def _run(self, started: _Started, streams: StdioStreams) -> int:
        """Copy the session's bytes until the process exits; its exit status."""
        process = started.process
        copies: list[tuple[OutputCopy, asyncio.Task[None]]] = []
        helpers: list[asyncio.Task[None]] = []
        exited = False
        early = started.early_stderr
        try:
            if started.master is not None:
                master = started.master.fd
                os.set_blocking(master, False)
                if early:
                    log.info("exec in %s: runtime said %r", process.container_id, early[:200])
                _copy_out(copies, master, streams.stdout)
                if streams.stdin is not None:
                    helpers.append(
                        _task(copy_stdin(streams.stdin, master, lambda: pty_eof(master)))
                    )
                if streams.resize is not None:
                    helpers.append(_task(_apply_resizes(master, streams.resize)))
            else:
                if early and streams.stderr is not None:
                    await streams.stderr.write(early)
                for end, sink in (
                    (started.stdout, streams.stdout),
                    (started.stderr, streams.stderr),
                ):
                    if end is not None:
                        os.set_blocking(end.fd, False)
                        _copy_out(copies, end.fd, sink)
                if started.stdin is not None and streams.stdin is not None:
                    stdin = started.stdin
                    os.set_blocking(stdin.fd, False)
                    helpers.append(_task(copy_stdin(streams.stdin, stdin.fd, stdin.close)))
            status = await _wait_exit(process)
            exited = True
            await finish_output(copies, self.drain_idle_s)
            return status
        finally:
            if not exited:
                # The client went away (or copying failed): the process goes too.
                process.kill()
                await asyncio.shield(_reap(process))
            for task in [*helpers, *(task for _, task in copies)]:
                task.cancel()
            await asyncio.gather(*helpers, *(task for _, task in copies), return_exceptions=True)

    # -- attach ----------------------------------------------------------------------------------

    async def attach(self, container_id: str, streams: StdioStreams) -> None:
        """Attach to the container's stdio through conmon until it exits or, for a
        container whose stdin stays open, until the client closes stdin."""
        record = self.containers.require(container_id)
        container_id = record.record_id
        if record.status.state is not ContainerState.RUNNING:
            raise ContainerStateError(
                f"container {container_id} is {record.status.state.value}, not running"
            )
        paths = self.containers.monitor_paths(container_id)
        bundle_dir = record.metadata.bundle_dir
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        sock.setblocking(False)
        tasks: list[asyncio.Task[None]] = []
        try:
            try:
                await loop.sock_connect(sock, paths.attach_socket)
            except OSError as err:
                raise ContainerAttachError(
                    f"attach to container {container_id}: {paths.attach_socket}:"
                    f" {err.strerror or err}"
                ) from None
            if streams.tty:
                if streams.initial_size is not None:
                    _resize_via_conmon(bundle_dir, streams.initial_size)
                if streams.resize is not None:
                    tasks.append(_task(_conmon_resizes(bundle_dir, streams.resize)))
            output = _task(_attach_output(sock, streams))
            tasks.append(output)
            if streams.stdin is None:
                await output
                return
            stdin = _task(_attach_input(sock, streams.stdin))
            tasks.append(stdin)
            await asyncio.wait({output, stdin}, return_when=asyncio.FIRST_COMPLETED)
            if output.done():
                output.result()
                return
            stdin.result()
            if paths.stdin and not paths.stdin_once and not paths.tty:
                return  # the container keeps its stdin: the client is done (CRI-O)
            await output
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            sock.close()

    # -- port-forward ------------------------------------------------------------------------------

    async def port_forward(self, sandbox_id: str, port: int, stream: DuplexStream) -> None:
        """Relay `stream` to localhost:`port` in the pod's network namespace."""
        record = self.sandbox_of(sandbox_id)
        if record.metadata.namespaces.host_network:
            sock = await _connect_loopback(port)
            log.debug("port-forward to host-network sandbox %s port %d", sandbox_id, port)
            await relay(stream, sock)
            return
        await self._netns.port_forward(record.record_id, port, stream)

    def _netns_path_of(self, sandbox_id: str) -> str:
        record = self.sandbox_of(sandbox_id)
        path = record.status.namespace_paths.get("net", "")
        if record.status.state is not SandboxState.READY or not path:
            raise FailedPreconditionError(
                f"pod sandbox {sandbox_id} is {record.status.state.value}: its network"
                " namespace is gone"
            )
        return str(path)


# -- exec helpers ------------------------------------------------------------------------------


def _for_tty(process: dict[str, Any], size: TerminalSize | None) -> None:
    """A tty exec's process: sized before it runs, and a TERM when the image set none."""
    env = process.setdefault("env", [])
    if not any(entry.startswith("TERM=") for entry in env):
        env.append("TERM=xterm")
    if size is not None and size.width and size.height:
        process["consoleSize"] = {"height": size.height, "width": size.width}


def _write_json(directory: str, path: str, document: dict[str, Any]) -> None:
    # 0600: the process carries the container's environment (secrets, often).
    os.makedirs(directory, mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    with open(fd, "w", encoding="utf-8") as f:
        json.dump(document, f)


def _read_pid(path: str) -> int:
    try:
        with open(path, encoding="ascii") as f:
            return int(f.read().strip())
    except (OSError, ValueError) as err:
        raise ContainerExecError(f"exec: the runtime left no pid in {path}: {err}") from None


def _task(coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    return asyncio.ensure_future(coroutine)


def _copy_out(
    copies: list[tuple[OutputCopy, asyncio.Task[None]]], fd: int, sink: OutputStream | None
) -> None:
    copy = OutputCopy(fd, sink)
    copies.append((copy, _task(copy.run())))


async def _run_runtime(
    runtime: RuntimeClient, args: list[str], stdin_fd: int, stdout_fd: int, stderr_fd: int
) -> int:
    """Run `RUNTIME args` to its exit (bounded by the runtime's timeout); its status."""
    try:
        child = await asyncio.create_subprocess_exec(
            *runtime.argv(*args),
            stdin=stdin_fd,
            stdout=stdout_fd,
            stderr=stderr_fd,
            start_new_session=True,
        )
    except OSError as err:
        raise ContainerExecError(f"cannot run {runtime.path}: {err.strerror}") from None
    try:
        return await asyncio.wait_for(asyncio.shield(child.wait()), runtime.timeout_s)
    except asyncio.CancelledError:
        # Let the runtime finish: killed half-way it could leave a process behind with no
        # pid file naming it (runc's init calls setsid: killpg would not reach it).
        with contextlib.suppress(TimeoutError):
            await asyncio.shield(asyncio.wait_for(child.wait(), runtime.timeout_s))
        raise
    finally:
        if child.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
            await asyncio.shield(child.wait())


def _read_available(fd: int, max_bytes: int = 1 << 20) -> bytes:
    """What a pipe holds now (up to `max_bytes`), without waiting for more."""
    os.set_blocking(fd, False)
    parts: list[bytes] = []
    size = 0
    with contextlib.suppress(BlockingIOError):
        while size < max_bytes and (data := os.read(fd, 65536)):
            parts.append(data)
            size += len(data)
    return b"".join(parts)


async def _kill_pid_file(container_id: str, pid_file: str) -> None:
    """SIGKILL and reap the process named in `pid_file`, if the runtime wrote it."""
    try:
        with open(pid_file, encoding="ascii") as f:
            pid = int(f.read().strip())
        pidfd = os.pidfd_open(pid)
    except (OSError, ValueError):
        return
    process = ExecProcess(container_id, pid, pidfd)
    try:
        process.kill()
        await _reap(process)
    finally:
        os.close(pidfd)


async def _receive_fd(listener: socket.socket) -> int:
    """Accept the runtime's connection on the console socket and take the pty master it
    sends (SCM_RIGHTS, unix(7))."""
    loop = asyncio.get_running_loop()
    conn, _ = await loop.sock_accept(listener)
    with conn:
        conn.setblocking(False)
        while True:
            try:
                _, fds, _, _ = socket.recv_fds(conn, 4096, 1)
            except BlockingIOError:
                await wait_fd(conn.fileno())
                continue
            if not fds:
                raise ContainerExecError("exec: the runtime closed the console socket")
            return fds[0]


async def _wait_exit(process: ExecProcess) -> int:
    """Wait for the process to exit and reap it; its exit status as conmon reports one."""
    if process.pidfd >= 0:
        await wait_fd(process.pidfd)
    status = proc.reap_child(process.pid)
    if status is None:
        # Not crib's child: crib is not the subreaper it should be (cri/server.py).
        raise ContainerExecError(
            f"exec process {process.pid} in container {process.container_id}: its exit"
            " status is lost (crib is not its reaper)"
        )
    return exits.exit_code_of_wait_status(status)


async def _reap(process: ExecProcess) -> None:
    """Wait (bounded) for a killed process to die and reap it, so no zombie stays."""
    if process.pidfd >= 0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wait_fd(process.pidfd), KILL_WAIT_S)
    proc.reap_child(process.pid)


async def _apply_resizes(master: int, sizes: AsyncIterator[TerminalSize]) -> None:
    async for size in sizes:
        with contextlib.suppress(OSError):
            set_window_size(master, size)


# -- attach helpers ------------------------------------------------------------------------------


async def _attach_output(sock: socket.socket, streams: StdioStreams) -> None:
    """conmon's packets to the client's stdout/stderr until conmon closes the socket."""
    loop = asyncio.get_running_loop()
    sinks = {ATTACH_STDOUT: streams.stdout, ATTACH_STDERR: streams.stderr}
    while packet := await loop.sock_recv(sock, ATTACH_READ_BYTES):
        sink = sinks.get(packet[0])
        if sink is not None and len(packet) > 1:
            await sink.write(packet[1:])


async def _attach_input(sock: socket.socket, stdin: InputStream) -> None:
    """Client stdin to conmon, then shutdown(SHUT_WR): conmon closes the container's stdin
    unless it runs with --leave-stdin-open (stdin_once false)."""
    loop = asyncio.get_running_loop()
    try:
        while data := await stdin.read(ATTACH_WRITE_BYTES):
            for offset in range(0, len(data), ATTACH_WRITE_BYTES):
                await loop.sock_sendall(sock, data[offset : offset + ATTACH_WRITE_BYTES])
    except ConnectionError:
        pass  # a reset stdin or a gone conmon: either way the input is over
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)


def _resize_via_conmon(bundle_dir: str, size: TerminalSize) -> None:
    try:
        write_ctl(bundle_dir, CTL_RESIZE, size.height, size.width)
    except MonitorError as err:
        log.info("resize of %s: %s", bundle_dir, err)


async def _conmon_resizes(bundle_dir: str, sizes: AsyncIterator[TerminalSize]) -> None:
    async for size in sizes:
        _resize_via_conmon(bundle_dir, size)


# -- port-forward helpers -------------------------------------------------------------------------


async def _connect_loopback(port: int) -> socket.socket:
    """A connection to localhost:`port` on the host: IPv4, then IPv6 (serially, as
    containerd and CRI-O do in a pod's namespace)."""
    loop = asyncio.get_running_loop()
    errors = []
    for family, address in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, (address, port))
            return sock
        except OSError as err:
            sock.close()
            errors.append(f"{address}: {err.strerror or err}")
    raise NetnsConnectError(
        f"failed to connect to localhost:{port} on the host: {'; '.join(errors)}"
    )
