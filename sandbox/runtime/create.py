"""`crib-runtime create`: the parent side (P0) of the protocol drawn in sync.py.

P0 validates the bundle, creates the state directory, the cgroup and exec.fifo, forks the
intermediate, answers its requests, and returns once the init reported "ready" (its pid is
then in --pid-file). P0 is a child subreaper while it runs, so the init re-parents to P0
when the intermediate exits, and to P0's own subreaper (conmon) when P0 exits: the double
fork. Every acquisition registers an undo; a failure runs them in reverse, so a failed
create leaves no process, cgroup, mount or directory behind.
"""

from __future__ import annotations

import os
import select
import stat
import time

from sandbox.linux import namespaces, syscalls
from sandbox.linux.cgroups import open_manager
from sandbox.oci.spec import load_spec
from sandbox.runtime import container, init, sync

# conmon runs create for every container: like exec it leaves typing, `signal` (its
# enums) and the error classes (common.errors) unimported until they are needed.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal as _signal  # the same names, typed; _signal has no stubs
    from collections.abc import Callable
    from typing import Any

    from sandbox.runtime.errors import BundleError, CreateError
else:
    import _signal


def _bundle_error(message: str) -> BundleError:
    from sandbox.runtime.errors import BundleError

    return BundleError(message)


def _create_error(message: str) -> CreateError:
    from sandbox.runtime.errors import CreateError

    return CreateError(message)


def now_rfc3339() -> str:
    """The current UTC time with nanoseconds, as runc prints `created`."""
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1_000_000_000)) + (
        f".{ns % 1_000_000_000:09d}Z"
    )


def resolve_rootfs(bundle: str, spec: Any) -> str:
    """The absolute rootfs path; it must be an existing directory."""
    path = spec["root"]["path"]
    rootfs = path if os.path.isabs(path) else os.path.join(bundle, path)
    rootfs = os.path.realpath(rootfs)
    try:
        if not stat.S_ISDIR(os.stat(rootfs).st_mode):
            raise _bundle_error(f"root.path: {rootfs} is not a directory")
    except FileNotFoundError:
        raise _bundle_error(f"root.path: rootfs {rootfs} does not exist") from None
    return rootfs


class Undo:
    """A stack of cleanups run in reverse order on failure (containerd's defer pattern)."""

    def __init__(self) -> None:
        self._actions: list[tuple[str, Callable[[], None]]] = []

    def push(self, what: str, action: Callable[[], None]) -> None:
        self._actions.append((what, action))

    def run(self) -> list[str]:
        """Run every cleanup; returns the ones that failed (as text) instead of raising."""
        failures = []
        while self._actions:
            what, action = self._actions.pop()
            try:
                action()
            except Exception as err:  # noqa: BLE001 - every cleanup runs; failures are reported
                failures.append(f"{what}: {err}")
        return failures

    def clear(self) -> None:
        self._actions.clear()


def create(
    root: str,
    container_id: str,
    bundle: str,
    *,
    pid_file: str | None,
    console_socket: str | None,
    no_pivot: bool,
    no_new_keyring: bool,
    warn: Callable[[str], None],
) -> int:
    """Create the container; returns the init's pid. Raises DomainError subclasses."""
    bundle = os.path.abspath(bundle)
    if not os.path.isdir(bundle):
        from common.errors import NotFoundError

        raise NotFoundError(f"bundle {bundle} does not exist")
    spec = load_spec(bundle)
    rootfs = resolve_rootfs(bundle, spec)
    hooks = spec.get("hooks")
    if isinstance(hooks, dict) and any(hooks.values()):
        # Failing beats silently skipping a hook a workload relies on (GPU hooks, ...).
        raise _bundle_error(
            f"hooks: {', '.join(sorted(k for k, v in hooks.items() if v))}: "
            "OCI hooks are not supported by crib-runtime"
        )
    linux = spec.get("linux", {})
    seccomp_filter = None
    if linux.get("seccomp"):
        # Built here, before any fork: libseccomp lives on the host's filesystem, which the
        # init cannot reach after pivot_root; the forked children load the filter as is.
        from sandbox.linux import seccomp

        seccomp_filter, skipped = seccomp.build(seccomp.compile_profile(linux["seccomp"]))
        if skipped:
            warn("seccomp: syscalls unknown on this architecture, skipped: " + ", ".join(skipped))
    if spec["process"].get("terminal"):
        # Same reason: the console step imports these inside the container.
        import fcntl  # noqa: F401
        import struct  # noqa: F401
        import termios  # noqa: F401
    if linux.get("uidMappings") and not any(
        ns["type"] == "user" and not ns.get("path") for ns in linux.get("namespaces", [])
    ):
        raise _bundle_error("linux.uidMappings: given but no new user namespace is requested")

    os.makedirs(root, 0o711, exist_ok=True)
    state_dir = container.container_dir(root, container_id)
    try:
        os.mkdir(state_dir, 0o711)
    except FileExistsError:
        from sandbox.runtime.errors import ContainerExistsError

        raise ContainerExistsError(f'container "{container_id}" already exists') from None
    undo = Undo()
    undo.push("remove state directory", lambda: _remove_tree(state_dir))
    try:
        return _create(
            root,
            container_id,
            bundle,
            spec,
            rootfs,
            state_dir,
            undo,
            seccomp_filter=seccomp_filter,
            pid_file=pid_file,
            console_socket=console_socket,
            no_pivot=no_pivot,
            no_new_keyring=no_new_keyring,
            warn=warn,
        )
    except BaseException:
        failures = undo.run()
        for failure in failures:
            warn(f"cleanup after failed create: {failure}")
        raise


def _create(
    root: str,
    container_id: str,
    bundle: str,
    spec: Any,
    rootfs: str,
    state_dir: str,
    undo: Undo,
    *,
    seccomp_filter: Any,
    pid_file: str | None,
    console_socket: str | None,
    no_pivot: bool,
    no_new_keyring: bool,
    warn: Callable[[str], None],
) -> int:
    linux = spec.get("linux", {})
    manager = open_manager(linux.get("cgroupsPath", ""), container_id)
    existed = manager.exists()
    manager.create()
    if not existed:
        undo.push("remove cgroup", manager.destroy)
    resources = linux.get("resources") or {}
    for warning in manager.apply(resources):
        warn(warning)
    if not manager.unified:
        # runc allows the spec's device nodes on top of its default list.
        extra = [
            f"{d.get('type', 'c')} {d.get('major', 0)}:{d.get('minor', 0)} rwm"
            for d in linux.get("devices", [])
            if d.get("type", "c") in ("c", "b", "u")
        ]
        apply_devices = getattr(manager, "apply_devices", None)
        if apply_devices is not None and (resources.get("devices") or extra):
            apply_devices(resources.get("devices") or [], [e.replace("u ", "c ", 1) for e in extra])

    fifo_path = os.path.join(state_dir, container.EXEC_FIFO)
    os.mkfifo(fifo_path, 0o622)
    os.chmod(fifo_path, 0o622)
    fifo_fd = os.open(fifo_path, os.O_PATH | os.O_CLOEXEC)
    undo.push("close exec fifo", lambda: os.close(fifo_fd))

    console_fd = None
    if console_socket:
        try:
            console_fd = sync.connect_unix(console_socket)
        except OSError as err:
            raise _bundle_error(f"--console-socket {console_socket}: {err.strerror}") from None
        undo.push("close console socket", lambda: sync.close_quietly(console_fd))
    elif spec["process"].get("terminal"):
        raise _bundle_error("process.terminal is true: --console-socket is required")

    parent_sock, child_sock = sync.pair()
    undo.push("close sync socket", parent_sock.close)
    # The init re-parents to us when the intermediate exits (prctl(2) CHILD_SUBREAPER),
    # so a failed init can be reaped here instead of becoming some other process' zombie.
    syscalls.prctl(syscalls.PR_SET_CHILD_SUBREAPER, 1)
    init_args = {
        "rootfs": rootfs,
        "fifo_fd": fifo_fd,
        "console_fd": console_fd,
        "no_pivot": no_pivot,
        "no_new_keyring": no_new_keyring,
        "cgroup_dirs": manager.dirs(),
        "cgroup_unified": manager.unified,
        "seccomp_filter": seccomp_filter,
        "container_id": container_id,
    }
    intermediate_pid = os.fork()
    if intermediate_pid == 0:
        parent_sock.close()
        try:
            init.intermediate(child_sock, spec, init_args)
        except BaseException as err:  # noqa: BLE001 - a forked child reports anything, then exits
            sync.send_error(child_sock, "intermediate", err)
        os._exit(1)
    child_sock.close()
    if console_fd is not None:
        sync.close_quietly(console_fd)
    children = {"intermediate": intermediate_pid, "init": 0}
    undo.push("kill container processes", lambda: abort(parent_sock, children))

    init_pid = handshake(parent_sock, spec, children, manager.add_process)
    start_time = container.process_start_time(init_pid)
    if start_time is None:
        raise _create_error("init: the container's init exited during create")
    record: container.Record = {
        "id": container_id,
        "init_pid": init_pid,
        "init_start_time": start_time,
        "bundle": bundle,
        "rootfs": rootfs,
        "created": now_rfc3339(),
        "annotations": spec.get("annotations", {}),
        "cgroups_path": linux.get("cgroupsPath", ""),
        "cgroup_dirs": manager.dirs(),
        "cgroup_unified": manager.unified,
        "no_pivot": no_pivot,
        "config": dict(spec),
    }
    container.save(root, record)
    if pid_file:
        container.write_pid_file(pid_file, init_pid)
    os.close(fifo_fd)
    parent_sock.close()
    undo.clear()
    return init_pid


def handshake(
    sock: sync.Socket, spec: Any, children: dict[str, int], join_cgroup: Callable[[int], None]
) -> int:
    """Serve the children until the init is ready; returns its pid.

    Every wait ends when the children it waits for are gone: EOF once no child holds the
    socket, and, until the intermediate has reported the init's pid, the intermediate's
    exit (a pidfd, pidfd_open(2)): an intermediate killed between forking the init and
    reporting it leaves an init that holds the socket open and waits for us.
    """
    intermediate_fd = _pidfd(children["intermediate"])
    try:
        return _serve(sock, spec, children, join_cgroup, intermediate_fd)
    finally:
        if intermediate_fd >= 0:
            os.close(intermediate_fd)


def _pidfd(pid: int) -> int:
    try:
        return os.pidfd_open(pid)
    except OSError:
        return -1  # before Linux 5.3: EOF alone ends the waits


def _serve(
    sock: sync.Socket,
    spec: Any,
    children: dict[str, int],
    join_cgroup: Callable[[int], None],
    intermediate_fd: int,
) -> int:
    linux = spec.get("linux", {})
    init_pid = 0
    while True:
        if not init_pid and intermediate_fd >= 0:
            readable, _, _ = select.select([sock.fileno(), intermediate_fd], [], [])
            # What a child sent before exiting is queued by then: read it first.
            if sock.fileno() not in readable:
                raise _create_error(_died_line(children))
        message = sync.receive(sock)
        if message is None:
            raise _create_error(_died_line(children))
        kind = message.get("type")
        if kind == "error":
            error = sync.SyncError(
                message["step"], message["errno"], message["path"], message["message"]
            )
            raise _create_error(error.line())
        if kind == "userns":
            maps = [
                (m["containerID"], m["hostID"], m["size"]) for m in linux.get("uidMappings", [])
            ]
            gmaps = [
                (m["containerID"], m["hostID"], m["size"]) for m in linux.get("gidMappings", [])
            ]
            try:
                namespaces.write_id_mappings(children["intermediate"], maps, gmaps)
            except OSError as err:
                raise _create_error(
                    sync.SyncError(
                        "write uid_map/gid_map",
                        err.errno or 0,
                        str(err.filename),
                        err.strerror or "",
                    ).line()
                ) from None
            _reply(sock, "userns-mapped")
        elif kind == "pid":
            init_pid = int(message["pid"])
            children["init"] = init_pid
            # runc's order: the parent places the init in the cgroup while it sets up.
            try:
                join_cgroup(init_pid)
            except Exception as err:  # noqa: BLE001 - one line, then the undo stack
                # The init may be blocked waiting for "cgroup-joined": do not wait for it
                # (see sync.py). An error it already queued (it died) is the real cause.
                queued = sync.queued_error(sock)
                raise _create_error(queued.line() if queued else f"join cgroup: {err}") from None
            _reply(sock, "cgroup-joined")
            _, status = os.waitpid(children["intermediate"], 0)
            children["intermediate"] = 0
            if os.waitstatus_to_exitcode(status) != 0:
                raise _create_error("intermediate: exited with an error")
        elif kind == "ready":
            if not init_pid:
                raise _create_error("sync: ready before the init pid was known")
            return init_pid


def _reply(sock: sync.Socket, kind: str) -> None:
    try:
        sync.send(sock, {"type": kind})
    except OSError:
        pass  # the child died: the next receive returns what it sent last, or EOF


def _died_line(children: dict[str, int]) -> str:
    for stage in ("intermediate", "init"):
        pid = children[stage]
        if pid:
            try:
                _, status = os.waitpid(pid, 0)
            except ChildProcessError:
                continue
            children[stage] = 0
            code = os.waitstatus_to_exitcode(status)
            how = f"killed by signal {-code}" if code < 0 else f"exited with status {code}"
            return f"{stage}: {how} before the container was ready"
    return "init: exited before the container was ready"


def abort(sock: sync.Socket, children: dict[str, int]) -> None:
    """End a failed handshake: close our end, kill and reap the children we know of.

    Our end goes first: a child whose pid we never learnt (an init forked by an
    intermediate that died before reporting it) sees EOF and exits by itself.
    """
    sock.close()
    _kill_and_reap(children)


def _kill_and_reap(children: dict[str, int]) -> None:
    for stage in ("init", "intermediate"):
        pid = children[stage]
        if not pid:
            continue
        try:
            os.kill(pid, _signal.SIGKILL)
        except ProcessLookupError:
            pass
    # The intermediate first: once it is reaped, the init has been re-parented to us (we
    # are a subreaper; the kernel re-parents before the exit can be collected), so
    # waitpid() on the init works; ChildProcessError means someone reaped it already.
    for stage in ("intermediate", "init"):
        pid = children[stage]
        if not pid:
            continue
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
        children[stage] = 0


def _remove_tree(path: str) -> None:
    for name in os.listdir(path):
        os.unlink(os.path.join(path, name))
    os.rmdir(path)
