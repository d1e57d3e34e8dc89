"""`crib-runtime exec`: run another process in a created or running container.

    exec (P0, subreaper)              E1 (joins)                    E2 (the process)
    ───────────────────────────────   ───────────────────────────   ─────────────────────────
    open /proc/<init>/ns/*, root
    fork ───────────────────────────▶ join cgroup, setns (user 1st)
                                      fork (pid ns applies) ──────▶ chroot to the init's root
              ◀─────── {"type":"pid","pid":N}                       console, rlimits, nnp,
                                      _exit(0): E2 re-parents       caps, user, cwd, seccomp
              ◀──────────────────────────────────────────── EOF: the sync socket is
    --pid-file; --detach: exit 0                                    close-on-exec, so EOF
    else wait for E2, forward                                       means execve succeeded;
    signals, exit with its status                                   else {"type":"error"}

With a terminal and no --console-socket, E2 sends the pty master to P0 ({"type":"console"}
with the fd attached) and P0 copies between its stdio and the pty until E2 exits.
"""

from __future__ import annotations

import os
import sys

from common import jsonc
from sandbox.linux import namespaces
from sandbox.oci.spec import parse_process, validate_process
from sandbox.runtime import container, sync
from sandbox.runtime import process as proc

# exec runs for every ExecSync probe: it imports neither typing (~10 ms) nor `signal`
# (its enums, ~5 ms) nor the error classes (common.errors, ~15 ms) until it fails.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal as _signal  # the same names, typed; _signal has no stubs
    from typing import Any

    from sandbox.oci.spec import Process
    from sandbox.runtime.errors import ExecError
else:
    import _signal

_FORWARDED = (
    _signal.SIGTERM,
    _signal.SIGINT,
    _signal.SIGHUP,
    _signal.SIGQUIT,
    _signal.SIGUSR1,
    _signal.SIGUSR2,
    _signal.SIGWINCH,
)


def _exec_error(message: str) -> ExecError:
    from sandbox.runtime.errors import ExecError

    return ExecError(message)


def _invalid(message: str) -> Exception:
    from common.errors import InvalidArgumentError

    return InvalidArgumentError(message)


def build_process(
    record: container.Record,
    process_file: str | None,
    args: list[str],
    *,
    cwd: str | None,
    env: list[str],
    user: str | None,
    tty: bool,
    additional_gids: list[int],
    cap_add: list[str],
    no_new_privs: bool,
) -> Process:
    """The process to run: --process FILE, or the container's process with runc's shorthands."""
    if process_file:
        try:
            with open(process_file, "rb") as process_json:
                raw = process_json.read()
        except OSError as err:
            raise _invalid(f"--process {process_file}: {err.strerror}") from None
        return parse_process(raw, "process")
    if not args:
        raise _invalid("exec: a command is required (args or --process)")
    base: Any = dict(record["config"].get("process", {}))
    base["args"] = list(args)
    base["terminal"] = tty
    base.pop("consoleSize", None)
    if env:
        base["env"] = list(base.get("env", [])) + list(env)
    if cwd:
        base["cwd"] = cwd
    if user:
        uid_text, _, gid_text = user.partition(":")
        try:
            base["user"] = dict(base.get("user", {}), uid=int(uid_text), gid=int(gid_text or 0))
        except ValueError:
            raise _invalid(f'--user: "{user}" is not UID[:GID]') from None
    if additional_gids:
        base["user"] = dict(base.get("user", {}), additionalGids=additional_gids)
    if cap_add:
        caps = {k: list(v) for k, v in (base.get("capabilities") or {}).items()}
        for set_name in ("bounding", "effective", "permitted", "ambient", "inheritable"):
            caps.setdefault(set_name, [])
            for cap in cap_add:
                if cap not in caps[set_name]:
                    caps[set_name].append(cap)
        base["capabilities"] = caps
    if no_new_privs:
        base["noNewPrivileges"] = True
    process: Process = base
    validate_process(process, "process")
    return process


def run_exec(
    record: container.Record,
    process: Process,
    *,
    pid_file: str | None,
    detach: bool,
    console_socket: str | None,
) -> int:
    """Start `process` in the container; returns the exit code to exit with."""
    if not container.init_alive(record):
        from sandbox.runtime.errors import ContainerStateError

        raise ContainerStateError("cannot exec in a stopped container")
    config = record["config"]
    seccomp_filter = None
    if config.get("linux", {}).get("seccomp"):
        # Built before the chroot into the container (libseccomp is a host library).
        from sandbox.linux import seccomp

        seccomp_filter, _ = seccomp.build(seccomp.compile_profile(config["linux"]["seccomp"]))
    if process.get("terminal"):
        import fcntl  # noqa: F401
        import struct  # noqa: F401
        import termios  # noqa: F401
    init_pid = record["init_pid"]
    types = [ns["type"] for ns in config.get("linux", {}).get("namespaces", [])]
    paths = {t: f"/proc/{init_pid}/ns/{namespaces.PROC_NAMES[t]}" for t in types}
    # Only the namespaces that differ from ours: setns into our own user namespace is EINVAL.
    paths = {t: p for t, p in paths.items() if not _same_ns(p, namespaces.PROC_NAMES[t])}
    opened = namespaces.open_paths(paths)
    root_fd = os.open(f"/proc/{init_pid}/root", os.O_PATH | os.O_CLOEXEC)
    if not container.init_alive(record):
        from sandbox.runtime.errors import ContainerStateError

        raise ContainerStateError("container not running")
    # The directories create recorded: one cgroup.procs write per hierarchy, nothing read.
    cgroup_procs = [os.path.join(d, "cgroup.procs") for d in record["cgroup_dirs"].values()]

    console_fd = None
    if process.get("terminal") and console_socket:
        try:
            console_fd = sync.connect_unix(console_socket)
        except OSError as err:
            raise _exec_error(f"--console-socket {console_socket}: {err.strerror}") from None
    elif process.get("terminal") and detach:
        raise _exec_error("--tty with --detach needs --console-socket")

    from sandbox.linux import syscalls

    parent_sock, child_sock = sync.pair()
    syscalls.prctl(syscalls.PR_SET_CHILD_SUBREAPER, 1)
    joiner = os.fork()
    if joiner == 0:
        parent_sock.close()
        try:
            _joiner(
                child_sock,
                opened,
                root_fd,
                cgroup_procs,
                process,
                seccomp_filter,
                console_fd,
                "user" in paths,
            )
        except BaseException as err:  # noqa: BLE001 - a forked child reports anything, then exits
            sync.send_error(child_sock, "exec", err)
        os._exit(1)
    child_sock.close()
    for _, fd, _ in opened:
        os.close(fd)
    os.close(root_fd)
    if console_fd is not None:
        sync.close_quietly(console_fd)

    exec_pid = 0
    relay_fd = None
    try:
        while True:
            message, fds = _receive_with_fds(parent_sock)
            if message is None:
                break
            kind = message.get("type")
            if kind == "error":
                error = sync.SyncError(
                    message["step"], message["errno"], message["path"], message["message"]
                )
                raise _exec_error(error.line())
            if kind == "pid":
                exec_pid = int(message["pid"])
                os.waitpid(joiner, 0)
                joiner = 0
            elif kind == "console" and fds:
                relay_fd = fds[0]
    except BaseException:
        for pid in (exec_pid, joiner):
            if pid:
                try:
                    os.kill(pid, _signal.SIGKILL)
                    os.waitpid(pid, 0)
                except (ProcessLookupError, ChildProcessError):
                    pass
        raise
    finally:
        parent_sock.close()
    if joiner:
        os.waitpid(joiner, 0)
        raise _exec_error("exec: the joining process exited before starting the process")
    if not exec_pid:
        raise _exec_error("exec: no process was started")
    if pid_file:
        container.write_pid_file(pid_file, exec_pid)
    if detach:
        return 0
    return _wait_foreground(exec_pid, relay_fd)


def join_cgroup(cgroup_procs: list[str], pid: int) -> None:
    """Write `pid` into each hierarchy's cgroup.procs (cgroups(7)); names the file on error."""
    value = str(pid).encode()
    for path in cgroup_procs:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, value)
        except OSError as err:
            raise OSError(err.errno, f"write {pid} to cgroup.procs: {err.strerror}", path) from None
        finally:
            os.close(fd)


def _same_ns(path: str, proc_name: str) -> bool:
    try:
        return os.stat(path).st_ino == os.stat(f"/proc/self/ns/{proc_name}").st_ino
    except OSError:
        return False


def _receive_with_fds(sock: sync.Socket) -> tuple[dict[str, Any] | None, list[int]]:
    data, fds = sync.recv_fds(sock, 65536, 1)
    if not data:
        return None, []
    message: dict[str, Any] = jsonc.loads(data)
    return message, list(fds)


def _joiner(
    sock: sync.Socket,
    opened: list[tuple[str, int, str]],
    root_fd: int,
    cgroup_procs: list[str],
    process: Process,
    seccomp_filter: Any,
    console_fd: int | None,
    joins_userns: bool,
) -> None:
    """E1: join the cgroup and the namespaces, fork E2."""

    def become_root() -> None:
        if joins_userns:
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)

    proc.run_steps(
        sock,
        [
            ("join cgroup", lambda: join_cgroup(cgroup_procs, os.getpid())),
            ("setns", lambda: namespaces.join(opened)),
            ("become namespace root", become_root),
        ],
    )
    pid = os.fork()
    if pid == 0:
        try:
            _exec_process(sock, root_fd, process, seccomp_filter, console_fd)
        except BaseException as err:  # noqa: BLE001 - a forked child reports anything, then exits
            sync.send_error(sock, "exec", err)
        os._exit(1)
    sync.send(sock, {"type": "pid", "pid": pid})
    os._exit(0)


def _exec_process(
    sock: sync.Socket,
    root_fd: int,
    process: Process,
    seccomp_filter: Any,
    console_fd: int | None,
) -> None:
    """E2: enter the container's root, become the process, execve."""
    warnings: list[str] = []

    def enter_root() -> None:
        os.fchdir(root_fd)
        os.chroot(".")
        os.close(root_fd)

    steps: list[proc.Step] = [("chroot", enter_root), ("setsid", _setsid)]
    if process.get("terminal"):
        steps.append(("console", lambda: _console(sock, console_fd, process)))
    steps.extend(proc.privilege_steps(process, seccomp_filter, warnings))
    resolved: dict[str, Any] = {}

    def lookup() -> None:
        resolved["env"] = proc.environment(process)
        resolved["path"] = proc.lookup_path(
            process["args"][0], resolved["env"], process.get("cwd", "/")
        )

    steps.append(("exec lookup", lookup))
    late = proc.late_seccomp_step(process, seccomp_filter, warnings)
    if late is not None:
        steps.append(late)
    steps.append(("prepare exec", proc.prepare_exec_fds))
    steps.append(
        ("execve", lambda: proc.execve(resolved["path"], process["args"], resolved["env"]))
    )
    proc.run_steps(sock, steps)


def _setsid() -> None:
    os.setsid()


def _console(sock: sync.Socket, console_fd: int | None, process: Process) -> None:
    import fcntl
    import struct
    import termios

    master, slave = os.openpty()
    size = process.get("consoleSize")
    if size:
        winsize = struct.pack("HHHH", size.get("height", 0), size.get("width", 0), 0, 0)
        fcntl.ioctl(slave, termios.TIOCSWINSZ, winsize)
    if console_fd is not None:
        sync.send_fd_over(console_fd, b"/dev/ptmx", master)
    else:
        sync.send_fds(sock, b'{"type":"console"}', [master])
    os.close(master)
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    if slave > 2:
        os.close(slave)


def _wait_foreground(pid: int, relay_fd: int | None) -> int:
    """Wait for the exec'd process (our child now), forwarding signals; its exit code."""

    def forward(signum: int, _frame: Any) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for signum in _FORWARDED:
        _signal.signal(signum, forward)
    if relay_fd is not None:
        _relay(relay_fd, pid)
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _relay(master: int, pid: int) -> None:
    """Copy stdin -> pty master and master -> stdout until the process closes the pty."""
    import select

    stdin_open = True
    while True:
        watched = [master] + ([0] if stdin_open else [])
        try:
            readable, _, _ = select.select(watched, [], [])
        except InterruptedError:
            continue
        if 0 in readable:
            data = os.read(0, 4096)
            if data:
                os.write(master, data)
            else:
                stdin_open = False
        if master in readable:
            try:
                data = os.read(master, 4096)
            except OSError:
                data = b""
            if not data:
                break
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
    os.close(master)
