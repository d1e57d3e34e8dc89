"""The children of `create`: the intermediate (C1) and the container's init (C2).

See sync.py for the protocol diagram. Both run in forked copies of crib-runtime, never
return, and report the first failing step over the sync socket before `_exit(1)`.

Init steps, in order (runc standard_init_linux.go, config-linux.md):

     1. setsid                         (a new session; the console becomes its terminal)
     2. session keyring                (unless --no-new-keyring)
     3. root filesystem plan           (mounts.rootfs_plan: mounts, /dev, pivot_root, ro root)
     4. console                        (pty from the container's /dev/ptmx, master sent over
                                        --console-socket, slave on 0/1/2)
     5. hostname, domainname
     6. sysctls                        (before readonlyPaths make /proc/sys read-only)
     7. readonly and masked paths      (mounts.paths_plan)
     8. oom_score_adj
     9. rlimits .. umask               (process.privilege_steps)
    10. PATH lookup of process.args[0] (a missing binary fails `create`, as with runc)
    11. "ready" to the parent, then block opening exec.fifo for writing until `start`
    12. seccomp (when no_new_privs), execve
"""

from __future__ import annotations

import os

from sandbox.linux import mounts, namespaces, syscalls
from sandbox.runtime import process as proc
from sandbox.runtime import sync
from sandbox.runtime.process import run_steps

# Not typing.TYPE_CHECKING: crib-runtime's create does not pay for typing (see create.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


def intermediate(
    sock: sync.Socket,
    spec: Any,
    init_args: dict[str, Any],
) -> None:
    """C1: join the given namespaces, create the others (but cgroup), fork the init."""
    state: dict[str, Any] = {}
    ns_paths = {
        ns["type"]: ns.get("path") or None for ns in spec.get("linux", {}).get("namespaces", [])
    }
    to_create = [t for t, p in ns_paths.items() if p is None]
    linux = spec.get("linux", {})

    def open_namespaces() -> None:
        state["opened"] = namespaces.open_paths({t: p for t, p in ns_paths.items() if p})

    def new_userns() -> None:
        syscalls.unshare(syscalls.CLONE_NEWUSER)
        sync.send(sock, {"type": "userns"})
        sync.expect(sock, "userns-mapped")
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)

    def unshare_rest() -> None:
        flags = namespaces.unshare_flags([t for t in to_create if t not in ("user", "cgroup")])
        if flags:
            syscalls.unshare(flags)

    def time_offsets() -> None:
        # Written before the first child is forked into the new time namespace (time_namespaces(7)).
        lines = "".join(
            f"{clock} {offset.get('secs', 0)} {offset.get('nanosecs', 0)}\n"
            for clock, offset in linux.get("timeOffsets", {}).items()
        )
        with open("/proc/self/timens_offsets", "w") as offsets:
            offsets.write(lines)

    steps: list[proc.Step] = [
        ("open namespaces", open_namespaces),
        ("setns", lambda: namespaces.join(state["opened"])),
    ]
    if "user" in to_create:
        steps.append(("create user namespace", new_userns))
    unshared = [t for t in to_create if t not in ("user", "cgroup")]
    steps.append(("unshare " + ",".join(unshared), unshare_rest))
    if "time" in to_create and linux.get("timeOffsets"):
        steps.append(("time offsets", time_offsets))
    run_steps(sock, steps)
    try:
        pid = os.fork()
    except OSError as err:
        sync.send_error(sock, "fork init", err)
        os._exit(1)
    if pid == 0:
        try:
            container_init(sock, spec, **init_args)
        except BaseException as err:  # noqa: BLE001 - a forked child reports anything, then exits
            sync.send_error(sock, "init", err)
        os._exit(1)
    sync.send(sock, {"type": "pid", "pid": pid})
    os._exit(0)


def container_init(
    sock: sync.Socket,
    spec: Any,
    *,
    rootfs: str,
    fifo_fd: int,
    console_fd: int | None,
    no_pivot: bool,
    no_new_keyring: bool,
    cgroup_dirs: dict[str, str],
    cgroup_unified: bool,
    seccomp_filter: Any,
    container_id: str,
) -> None:
    """C2: set the container up, report ready, wait for `start`, exec the process."""
    process = spec["process"]
    linux = spec.get("linux", {})
    namespace_types = {ns["type"] for ns in linux.get("namespaces", [])}
    new_userns = any(
        ns["type"] == "user" and not ns.get("path") for ns in linux.get("namespaces", [])
    )
    warnings: list[str] = []
    plan = mounts.rootfs_plan(
        spec,
        rootfs,
        cgroup_dirs=cgroup_dirs,
        cgroup_unified=cgroup_unified,
        in_new_userns=new_userns,
        no_pivot=no_pivot,
        host_has_kcore=os.path.exists("/proc/kcore"),
    )
    steps: list[proc.Step] = [("setsid", _setsid)]
    if not no_new_keyring:
        steps.append(("session keyring", lambda: _keyring(container_id)))

    def joined_cgroup() -> None:
        # The parent moves us into the cgroup while we build the rootfs (the first
        # cgroup.procs write waits for an RCU grace period, ~10 ms); the cgroup namespace
        # must be created after the move so that its root is the container's cgroup.
        sync.expect(sock, "cgroup-joined")
        if "cgroup" in namespace_types and not _joined_by_path(linux, "cgroup"):
            syscalls.unshare(syscalls.CLONE_NEWCGROUP)

    join_step: proc.Step = ("join cgroup", joined_cgroup)
    # v2's cgroup mount needs the cgroup namespace; v1 binds host directories (no need).
    first_cgroup_mount = next(
        (i for i, op in enumerate(plan) if isinstance(op, mounts.CgroupMount)), None
    )
    ops: list[proc.Step] = [(op.step, op.apply) for op in plan]
    if cgroup_unified and first_cgroup_mount is not None:
        ops.insert(first_cgroup_mount, join_step)
    else:
        ops.append(join_step)
    steps.extend(ops)
    if process.get("terminal"):
        size = process.get("consoleSize")
        steps.append(("console", lambda: _console(console_fd, size)))
    if "uts" in namespace_types:
        if spec.get("hostname"):
            steps.append(("sethostname", lambda: syscalls.sethostname(spec["hostname"])))
        if spec.get("domainname"):
            steps.append(("setdomainname", lambda: syscalls.setdomainname(spec["domainname"])))
    for key, value in linux.get("sysctl", {}).items():
        steps.append((f"sysctl {key}", _sysctl_writer(key, value)))
    steps.extend((op.step, op.apply) for op in mounts.paths_plan(spec))
    if "oomScoreAdj" in process:
        steps.append(
            ("oom_score_adj", lambda: proc.set_oom_score_adj(process["oomScoreAdj"], warnings))
        )
    steps.extend(proc.privilege_steps(process, seccomp_filter, warnings))
    resolved: dict[str, Any] = {}

    def lookup() -> None:
        resolved["env"] = proc.environment(process)
        resolved["path"] = proc.lookup_path(
            process["args"][0], resolved["env"], process.get("cwd", "/")
        )

    steps.append(("exec lookup", lookup))
    run_steps(sock, steps)
    sync.send(sock, {"type": "ready", "warnings": warnings})
    sock.close()

    # Block until `start` opens the fifo for reading (runc's exec.fifo handshake). The fd
    # was opened O_PATH before pivot_root; reopening it through /proc/self/fd works after.
    try:
        fifo = os.open(f"/proc/self/fd/{fifo_fd}", os.O_WRONLY | os.O_CLOEXEC)
        os.write(fifo, b"0")
        os.close(fifo)
        os.close(fifo_fd)
        late = proc.late_seccomp_step(process, seccomp_filter, warnings)
        if late is not None:
            late[1]()
        proc.prepare_exec_fds()
        proc.execve(resolved["path"], process["args"], resolved["env"])
    except BaseException as err:  # noqa: BLE001 - nobody else can report it
        # Nobody listens any more: the message goes to the container's stderr, like runc's.
        os.write(2, f"crib-runtime init: {err}\n".encode(errors="replace"))
    os._exit(127)


def _joined_by_path(linux: Any, ns_type: str) -> bool:
    return any(ns["type"] == ns_type and ns.get("path") for ns in linux.get("namespaces", []))


def _setsid() -> None:
    os.setsid()


def _keyring(container_id: str) -> None:
    try:
        syscalls.keyctl_join_session_keyring(container_id)
    except OSError as err:
        # ENOSYS/EPERM: keyrings disabled or denied (as in nested containers); runc ignores.
        if err.errno not in (1, 38):
            raise


def _sysctl_writer(key: str, value: str) -> Callable[[], None]:
    def write() -> None:
        path = "/proc/sys/" + key.replace(".", "/")
        try:
            with open(path, "w") as sysctl_file:
                sysctl_file.write(value)
        except OSError as err:
            raise OSError(err.errno, f"write sysctl: {err.strerror}", path) from None

    return write


def _console(console_fd: int | None, size: Any) -> None:
    import fcntl
    import struct
    import termios

    if console_fd is None:
        raise OSError(22, "process.terminal is true but no --console-socket was given")
    master, slave = os.openpty()
    if size:
        winsize = struct.pack("HHHH", size.get("height", 0), size.get("width", 0), 0, 0)
        fcntl.ioctl(slave, termios.TIOCSWINSZ, winsize)
    sync.send_fd_over(console_fd, b"/dev/ptmx", master)
    os.close(master)
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    if slave > 2:
        os.close(slave)
