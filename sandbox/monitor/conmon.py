"""Driving conmon (Debian's 2.1.6) the way CRI-O does (docs/conmon.md, sections 1, 2, 4, 5).

Create, step by step:

    crib                                   conmon (1st)            conmon (monitor)     runtime
     │ socketpair sync, socketpair start
     │ exec conmon -b B -c ID ... ─────────►│
     │                                      │ read(start) blocks
     │ (place conmon in a cgroup here)      │
     │ write(start, "\\0") ────────────────►│
     │                                      │ fork ──────────────────►│ setsid, subreaper,
     │ wait() ◄──── exit 0 after writing ───│ -P conmon-pidfile        │ stdio → /dev/null
     │                                                               │ fork+exec ─────────►│ create
     │                                                               │ ◄── exit 0, -p pidfile
     │ read(sync) ◄──────────── {"pid": N}\\n (or {"pid": -1, "message": stderr}) ──│
     │ runtime start ID  (crib runs it itself, not conmon)
     ...
     │                                      container exits: conmon writes the exit status
     │                                      to EXIT_DIR/ID and PERSIST_DIR/exit, then exits

The sync and start pipes reach conmon as inherited fds named by `_OCI_SYNCPIPE` and
`_OCI_STARTPIPE`. conmon is the container's subreaper and reaps it (and every orphan
below it); its own first process is crib's child and is reaped by asyncio. The monitor
process is re-parented away from crib, so containers survive a crib restart.

ExecSync (`exec_sync`): `conmon -e --sync` stays in the foreground; with the legacy API it
sends exactly one `{"exit_code": N[, "message"]}` when the process ends, and the output is
in a k8s-file log (`read_k8s_log`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import shutil
import signal
import socket
import tempfile
from collections.abc import Mapping
from typing import Any

from sandbox.monitor import proc
from sandbox.monitor.errors import MonitorCreateError, MonitorError, MonitorTimeoutError
from sandbox.oci.client import stderr_message

CONMON_PIDFILE = "conmon-pidfile"
CONTAINER_PIDFILE = "pidfile"
DEFAULT_CREATE_TIMEOUT_S = 240.0  # CRI-O's container_create_timeout
# CRI-O's maxExecSyncSize (the dockershim limit): 16 MiB per stream.
EXEC_SYNC_MAX_BYTES = 16 << 20
EXEC_TIMED_OUT_MESSAGE = "command timed out"
LOG_DRIVER_NONE = "none"
# BUNDLE/ctl: conmon reads `TYPE HEIGHT WIDTH\n` lines (docs/conmon.md 6).
CTL_FIFO = "ctl"
CTL_RESIZE = 1
CTL_REOPEN_LOG = 2
ATTACH_SOCKET = "attach"


@dataclasses.dataclass(frozen=True)
class CreateSpec:
    """One container to create under conmon."""

    container_id: str
    name: str
    bundle_dir: str  # holds config.json; conmon's cwd, pidfiles, attach/ctl/winsz, oom
    persist_dir: str  # conmon writes `exit` (and `oom`) here
    log_path: str  # the CRI log (k8s-file format)
    runtime_path: str
    runtime_root: str
    terminal: bool = False
    stdin: bool = False
    stdin_once: bool = False
    log_size_max_bytes: int = -1
    no_pivot: bool = False
    timeout_s: float = DEFAULT_CREATE_TIMEOUT_S

    @property
    def pidfile(self) -> str:
        """Where the runtime writes the container's init pid."""
        return os.path.join(self.bundle_dir, CONTAINER_PIDFILE)

    @property
    def conmon_pidfile(self) -> str:
        """Where conmon writes the pid of its monitor process."""
        return os.path.join(self.bundle_dir, CONMON_PIDFILE)


@dataclasses.dataclass(frozen=True)
class Created:
    """A container created (not yet started) under conmon."""

    container_pid: int
    conmon_pid: int


@dataclasses.dataclass(frozen=True)
class ExecSyncResult:
    """What ExecSync returns: exit code (-1 on timeout) and captured output."""

    exit_code: int
    stdout: bytes
    stderr: bytes
    timed_out: bool = False


class Conmon:
    """The conmon binary plus the directories every container shares."""

    def __init__(
        self,
        binary: str,
        exit_dir: str,
        socket_dir: str,
        log_level: str = "error",
        extra_env: Mapping[str, str] | None = None,
    ):
        self.binary = binary
        self.exit_dir = exit_dir
        self.socket_dir = socket_dir
        self.log_level = log_level
        # conmon gets exactly PATH, XDG_RUNTIME_DIR and these (CRI-O's monitor_env).
        self.extra_env = dict(extra_env or {})

    # -- command lines (pure) ---------------------------------------------------------------

    def create_argv(self, spec: CreateSpec) -> list[str]:
        """conmon's command line for `create` (CRI-O's, minus syslog and systemd)."""
        argv = [
            self.binary,
            "-b", spec.bundle_dir,
            "-c", spec.container_id,
            "--exit-dir", self.exit_dir,
            # conmon's "none" driver when the container has no CRI log (containerd too
            # writes nothing then); a file name that clashes would need ":none".
            "-l", spec.log_path or LOG_DRIVER_NONE,
            "--log-level", self.log_level,
            "-n", spec.name,
            "-P", spec.conmon_pidfile,
            "-p", spec.pidfile,
            "--persist-dir", spec.persist_dir,
            "-r", spec.runtime_path,
            "--runtime-arg", f"--root={spec.runtime_root}",
            "--socket-dir-path", self.socket_dir,
            "-u", spec.container_id,
        ]  # fmt: skip
        if spec.log_size_max_bytes >= 0:
            argv += ["--log-size-max", str(spec.log_size_max_bytes)]
        if spec.no_pivot:
            argv.append("--no-pivot")
        if spec.terminal:
            argv.append("-t")
        elif spec.stdin:
            argv.append("-i")
            if not spec.stdin_once:
                argv.append("--leave-stdin-open")
        return argv

    def exec_sync_argv(
        self,
        container_id: str,
        runtime_path: str,
        runtime_root: str,
        process_spec_path: str,
        log_path: str,
        pidfile: str,
        timeout_s: int,
        terminal: bool = False,
    ) -> list[str]:
        """conmon's command line for ExecSync (docs/conmon.md 5)."""
        argv = [
            self.binary,
            "-c", container_id,
            "-n", container_id,
            "-r", runtime_path,
            "-p", pidfile,
            "-e",
            "-l", log_path,
            "--socket-dir-path", self.socket_dir,
            "--log-level", self.log_level,
            "--sync",
            "--log-global-size-max", str(EXEC_SYNC_MAX_BYTES),
            "--exec-process-spec", process_spec_path,
            "--runtime-arg", f"--root={runtime_root}",
        ]  # fmt: skip
        if terminal:
            argv.append("-t")
        if timeout_s > 0:
            argv += ["-T", str(timeout_s)]
        return argv

    # -- create -------------------------------------------------------------------------------

    async def create(self, spec: CreateSpec) -> Created:
        """Create a container under conmon; returns its init pid and conmon's pid.

        On failure nothing of conmon is left running (it is killed on timeout; on a
        runtime failure it exits by itself). The caller starts the container with
        `runtime start` and later deletes it with the runtime.
        """
        os.makedirs(self.exit_dir, mode=0o700, exist_ok=True)
        os.makedirs(self.socket_dir, mode=0o700, exist_ok=True)
        os.makedirs(spec.persist_dir, mode=0o700, exist_ok=True)
        for stale in (spec.pidfile, spec.conmon_pidfile, self.exit_file(spec.container_id)):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(stale)
        try:
            message = await self._spawn(self.create_argv(spec), spec.bundle_dir, spec.timeout_s)
        except TimeoutError:
            raise MonitorTimeoutError(
                f"create {spec.container_id}: conmon reported no pid within"
                f" {spec.timeout_s:g} s; killed it"
            ) from None
        except MonitorCreateError as err:
            # conmon reports nothing when the runtime failed without a word on stderr.
            raise MonitorCreateError(
                f"create {spec.container_id} with {spec.runtime_path}: {err}"
            ) from None
        conmon_pid = _read_pid(spec.conmon_pidfile)
        pid = message.get("pid")
        if not isinstance(pid, int) or pid <= 0:
            if conmon_pid:
                _kill(conmon_pid)
            detail = stderr_message(str(message.get("message", "")).encode()) or "no reason given"
            raise MonitorCreateError(
                f"create {spec.container_id} with {spec.runtime_path}: {detail}"
            )
        return Created(container_pid=pid, conmon_pid=conmon_pid)

    async def _spawn(self, argv: list[str], cwd: str, timeout_s: float) -> dict[str, Any]:
        """Run conmon with the sync/start pipes and return the first sync message."""
        sync_parent, sync_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        start_parent, start_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        env = {
            **self.extra_env,
            "PATH": os.environ.get("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin"),
            "_OCI_SYNCPIPE": str(sync_child.fileno()),
            "_OCI_STARTPIPE": str(start_child.fileno()),
        }
        if "XDG_RUNTIME_DIR" in os.environ:
            env["XDG_RUNTIME_DIR"] = os.environ["XDG_RUNTIME_DIR"]
        try:
            try:
                process = await asyncio.create_subprocess_exec(
                    *argv,
                    cwd=cwd,
                    env=env,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.PIPE,
                    pass_fds=(sync_child.fileno(), start_child.fileno()),
                    start_new_session=True,  # CRI-O: Setpgid
                )
            except OSError as err:
                raise MonitorError(f"cannot run {argv[0]}: {err.strerror}") from None
            finally:
                sync_child.close()
                start_child.close()
            # conmon now waits on the start pipe: this is where CRI-O moves it into the
            # monitor cgroup. crib leaves it in its own cgroup (docs: pod cgroups hold
            # only the pod's processes).
            start_parent.sendall(b"\0")
            start_parent.close()
            try:
                line = await asyncio.wait_for(_read_line(sync_parent), timeout_s)
            except BaseException:
                # Timed out or cancelled: conmon and what it started must not live on.
                if process.returncode is None:
                    process.kill()
                pid = _read_pid(os.path.join(cwd, CONMON_PIDFILE))
                if pid:
                    _kill(pid)
                await asyncio.shield(process.communicate())
                raise
            _, stderr = await process.communicate()
            if not line:
                text = (stderr or b"").decode(errors="replace").strip()
                raise MonitorCreateError(
                    f"conmon exited (status {process.returncode}) without reporting a pid"
                    + (f": {' '.join(text.split())}" if text else "")
                )
            try:
                doc = json.loads(line)
            except ValueError:
                raise MonitorError(f"conmon sent an unreadable sync message {line!r}") from None
            if not isinstance(doc, dict):
                raise MonitorError(f"conmon sent an unreadable sync message {line!r}")
            return doc
        finally:
            sync_parent.close()
            start_parent.close()

    # -- the control fifo -----------------------------------------------------------------

    async def reopen_log(self, bundle_dir: str, log_path: str, timeout_s: float = 10.0) -> None:
        """Make conmon reopen the container's log and return once the new file exists.

        conmon (ctr_logging.c reopen_k8s_file) opens `<log>.tmp` truncated and renames it
        over the log path, so the path always gets a new inode: that is what is awaited
        (kubelet renames the old file first, then checks the new one, user-asks #13).
        """
        before = _inode(log_path)
        write_ctl(bundle_dir, CTL_REOPEN_LOG)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            now = _inode(log_path)
            if now is not None and now != before:
                return
            if loop.time() > deadline:
                raise MonitorTimeoutError(
                    f"conmon did not reopen {log_path} within {timeout_s:g} s"
                )
            await asyncio.sleep(0.005)

    # -- exit files ---------------------------------------------------------------------------

    def exit_file(self, container_id: str) -> str:
        """Where conmon writes the exit status of `container_id`."""
        return os.path.join(self.exit_dir, container_id)

    def read_exit_code(self, container_id: str) -> int | None:
        """The exit status conmon recorded, or None if the container has not exited."""
        return read_exit_file(self.exit_file(container_id))

    # -- ExecSync -----------------------------------------------------------------------------

    async def exec_sync(
        self,
        container_id: str,
        runtime_path: str,
        runtime_root: str,
        process_spec: dict[str, Any],
        work_dir: str,
        timeout_s: int = 0,
    ) -> ExecSyncResult:
        """Run `process_spec` (an OCI process object) in a running container and wait.

        Output is captured through conmon's k8s-file log in a private directory made (and
        removed) under `work_dir`, capped at 16 MiB per stream. With `timeout_s` > 0,
        conmon kills the process when it expires and the result is exit code -1 with
        "command timed out" on stderr, as CRI-O returns.
        """
        os.makedirs(work_dir, mode=0o700, exist_ok=True)
        # One private directory per exec: concurrent ExecSyncs never share a log.
        exec_dir = tempfile.mkdtemp(prefix="exec-", dir=work_dir)
        try:
            return await self._exec_sync(
                container_id, runtime_path, runtime_root, process_spec, exec_dir, timeout_s
            )
        finally:
            shutil.rmtree(exec_dir, ignore_errors=True)

    async def _exec_sync(
        self,
        container_id: str,
        runtime_path: str,
        runtime_root: str,
        process_spec: dict[str, Any],
        exec_dir: str,
        timeout_s: int,
    ) -> ExecSyncResult:
        spec_path = os.path.join(exec_dir, "process.json")
        log_path = os.path.join(exec_dir, "exec.log")
        pidfile = os.path.join(exec_dir, "exec-pid")
        with open(spec_path, "w") as f:
            json.dump(process_spec, f)
        argv = self.exec_sync_argv(
            container_id,
            runtime_path,
            runtime_root,
            spec_path,
            log_path,
            pidfile,
            timeout_s,
            bool(process_spec.get("terminal")),
        )
        # conmon enforces the timeout itself; crib's bound only guards against a hung conmon.
        guard_s = (timeout_s + 30) if timeout_s > 0 else None
        try:
            message = await self._spawn(argv, exec_dir, guard_s or 24 * 3600.0)
        except TimeoutError:
            raise MonitorTimeoutError(
                f"exec in {container_id}: conmon did not finish {guard_s} s after starting"
            ) from None
        code = message.get("exit_code")
        text = str(message.get("message", ""))
        stdout, stderr = read_k8s_log(log_path)
        if text == EXEC_TIMED_OUT_MESSAGE:
            await _collect_killed(_read_pid(pidfile))
            return ExecSyncResult(-1, stdout, stderr + EXEC_TIMED_OUT_MESSAGE.encode(), True)
        if not isinstance(code, int):
            raise MonitorError(f"exec in {container_id}: conmon sent no exit code: {message}")
        if code < 0 and text:
            # The runtime could not start the process: its error is the answer.
            # runc logs through logrus (`time=... level=error msg="..."`): keep the message.
            detail = stderr_message(text.encode())
            raise MonitorCreateError(f"exec in {container_id}: {detail}")
        return ExecSyncResult(code, stdout, stderr)


def write_ctl(bundle_dir: str, message_type: int, height: int = 0, width: int = 0) -> None:
    """Send one control message to the conmon of the container in `bundle_dir`.

    Opened non-blocking: with no conmon reading (it exited) open fails with ENXIO instead
    of waiting for ever, and that is reported as `MonitorError`.
    """
    path = os.path.join(bundle_dir, CTL_FIFO)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as err:
        raise MonitorError(f"conmon control fifo {path}: {err.strerror}") from None
    try:
        os.write(fd, f"{message_type} {height} {width}\n".encode())
    except OSError as err:
        raise MonitorError(f"conmon control fifo {path}: {err.strerror}") from None
    finally:
        os.close(fd)


def _inode(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


def read_exit_file(path: str) -> int | None:
    """An exit file's status (a bare decimal), or None if absent or still being written."""
    try:
        with open(path, "rb") as f:
            text = f.read().strip()
    except FileNotFoundError:
        return None
    try:
        return int(text)
    except ValueError:
        return None


def read_k8s_log(path: str, cap_bytes: int = EXEC_SYNC_MAX_BYTES) -> tuple[bytes, bytes]:
    """stdout and stderr from a k8s-file log (docs/conmon.md 7), each capped at `cap_bytes`.

    Each line is `<timestamp> <stream> <tag> <content>`; tag F ends a line, P is a partial
    chunk whose newline conmon added.
    """
    out = {b"stdout": bytearray(), b"stderr": bytearray()}
    try:
        with open(path, "rb") as f:
            for record in f:
                parts = record.split(b" ", 3)
                if len(parts) < 4 or parts[1] not in out:
                    continue
                content = parts[3]
                tags = parts[2].split(b":")
                if b"P" in tags and content.endswith(b"\n"):
                    content = content[:-1]
                buf = out[parts[1]]
                if len(buf) < cap_bytes:
                    buf += content[: cap_bytes - len(buf)]
    except FileNotFoundError:
        pass
    return bytes(out[b"stdout"]), bytes(out[b"stderr"])


async def _read_line(sock: socket.socket) -> bytes:
    """Read up to and including the first newline (or to EOF) from a socket."""
    loop = asyncio.get_running_loop()
    sock.setblocking(False)
    data = bytearray()
    while b"\n" not in data:
        chunk = await loop.sock_recv(sock, 4096)
        if not chunk:
            break
        data += chunk
    return bytes(data.split(b"\n", 1)[0])


async def _collect_killed(pid: int) -> None:
    """Wait for a process conmon SIGKILLed on an exec timeout and reap it.

    conmon kills the exec's process group and exits without waiting (conmon.c), so the
    killed process is re-parented to crib, the subreaper, as a zombie: until it is reaped
    it still shows in the container (`pgrep` finds it: critest checks exactly that).
    """
    if pid <= 0:
        return
    started = proc.start_time(pid)
    if started is None:
        return
    if await proc.wait_exit(pid, started, 10.0):
        proc.reap_child(pid)


def _read_pid(path: str) -> int:
    try:
        with open(path, "rb") as f:
            return int(f.read().strip() or b"0")
    except (FileNotFoundError, ValueError):
        return 0


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)
