"""Turning the current process into the spec's `process`: the steps shared by a container's
init and by `exec`, in runc's order (libcontainer/init_linux.go finalizeNamespace):

    rlimits, no_new_privs, [seccomp if no_new_privs is off], drop bounding set,
    keepcaps + setgroups/setresgid/setresuid, chdir(cwd) as the user, capset + ambient,
    umask, environment, PATH lookup; then (after the start wait) [seccomp if no_new_privs],
    signal dispositions reset, fds >= 3 closed on exec, execve.

seccomp goes as late as possible: with no_new_privs it is loaded right before execve, so
the filter never sees crib's own syscalls; without it loading needs CAP_SYS_ADMIN, so it
happens before the capabilities are dropped (runc does the same).
"""

from __future__ import annotations

import os

from sandbox.linux import capabilities, rlimits, syscalls
from sandbox.runtime import sync

# Not `typing.TYPE_CHECKING` (typing costs ~10 ms at every crib-runtime start), and
# `_signal` rather than `signal` (whose Signals enum costs ~5 ms): exec pays for both.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal as _signal  # the same names, typed; _signal has no stubs
    from collections.abc import Callable
    from typing import Any

    # Each step is (name, function); `run_steps` reports the failing step's name.
    Step = tuple[str, Callable[[], None]]
else:
    import _signal

DEFAULT_UMASK = 0o022


def run_steps(sock: sync.Socket, steps: list[Step]) -> None:
    """Run each step; on failure report it over the sync socket and exit the process."""
    for name, function in steps:
        try:
            function()
        except BaseException as err:  # noqa: BLE001 - a forked child reports anything, then exits
            sync.send_error(sock, name, err)
            os._exit(1)


def lookup_path(executable: str, env: list[str], cwd: str) -> str:
    """Find `executable` like execvp(3) with the container's PATH (exec.LookPath in runc)."""
    if "/" in executable:
        path = executable if executable.startswith("/") else os.path.join(cwd, executable)
        _check_executable(path, executable)
        return path
    search = ""
    for item in env:
        if item.startswith("PATH="):
            search = item[5:]
    for directory in search.split(":"):
        candidate = os.path.join(directory or ".", executable)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise OSError(2, f'exec: "{executable}": executable file not found in $PATH', executable)


def _check_executable(path: str, shown: str) -> None:
    try:
        mode = os.stat(path).st_mode
    except OSError as err:
        raise OSError(err.errno, f'exec: "{shown}": {(err.strerror or "").lower()}', path) from None
    if (mode & 0o170000) == 0o040000 or not os.access(path, os.X_OK):
        raise OSError(13, f'exec: "{shown}": permission denied', path)


def home_of(uid: int, passwd: str = "/etc/passwd") -> str:
    """The home directory of `uid` in the container's /etc/passwd, "/" when absent (runc)."""
    try:
        with open(passwd) as passwd_file:
            for line in passwd_file:
                fields = line.rstrip("\n").split(":")
                if len(fields) >= 6 and fields[2] == str(uid):
                    return fields[5] or "/"
    except OSError:
        pass
    return "/"


def environment(process: Any) -> list[str]:
    """process.env plus HOME when missing (from /etc/passwd, as runc does)."""
    env = list(process.get("env", []))
    if not any(item.startswith("HOME=") for item in env):
        env.append("HOME=" + home_of(process.get("user", {}).get("uid", 0)))
    return env


def set_oom_score_adj(value: int, warnings: list[str]) -> None:
    """Write /proc/self/oom_score_adj; a value below the current one needs CAP_SYS_RESOURCE.

    Without it (this host, rootless or nested runtimes) keep the current value, as
    containerd's restrict_oom_score_adj does, instead of failing the container.
    """
    path = "/proc/self/oom_score_adj"
    try:
        with open(path, "w") as adj_file:
            adj_file.write(str(value))
    except PermissionError:
        with open(path) as adj_file:
            current = int(adj_file.read())
        if value >= current:
            raise
        warnings.append(f"oomScoreAdj {value} not permitted, kept {current}")


def privilege_steps(process: Any, seccomp_filter: Any, warnings: list[str]) -> list[Step]:
    """The steps from rlimits to umask, in order (the caller adds console/fifo/exec)."""
    user = process.get("user", {})
    uid = user.get("uid", 0)
    gid = user.get("gid", 0)
    nnp = bool(process.get("noNewPrivileges"))
    highest = capabilities.last_cap()
    sets, unknown = capabilities.plan(process.get("capabilities", {}), highest)
    if unknown:
        warnings.append("ignoring unknown or unavailable capabilities: " + ", ".join(unknown))
    limits = [(r["type"], r["soft"], r["hard"]) for r in process.get("rlimits", [])]
    steps: list[Step] = []
    if limits:
        steps.append(("rlimits", lambda: warnings.extend(rlimits.apply(limits))))
    if nnp:
        steps.append(("no_new_privs", lambda: _nnp()))
    if seccomp_filter is not None and not nnp:
        steps.append(("seccomp", lambda: _seccomp(seccomp_filter, warnings)))
    steps.append(("capabilities (bounding set)", lambda: capabilities.drop_bounding(sets, highest)))
    steps.append(("user", lambda: _switch_user(uid, gid, user.get("additionalGids", []))))
    cwd = process.get("cwd", "/")
    steps.append(("cwd", lambda: _chdir(cwd)))
    steps.append(("capabilities", lambda: warnings.extend(capabilities.apply(sets, highest))))
    umask = user.get("umask", DEFAULT_UMASK)
    steps.append(("umask", lambda: _umask(umask)))
    return steps


def _nnp() -> None:
    syscalls.prctl(syscalls.PR_SET_NO_NEW_PRIVS, 1)


def _seccomp(seccomp_filter: Any, warnings: list[str]) -> None:
    # The filter was built (and libseccomp loaded) by the parent before pivot_root: the
    # library is not reachable from inside the container's root.
    seccomp_filter.load()


def _switch_user(uid: int, gid: int, additional_gids: list[int]) -> None:
    # KEEPCAPS keeps the permitted set across the uid change; capset narrows it next.
    syscalls.prctl(syscalls.PR_SET_KEEPCAPS, 1)
    try:
        os.setgroups(additional_gids)
    except PermissionError:
        # A user namespace whose /proc/PID/setgroups is "deny" only allows an empty list.
        if additional_gids:
            raise
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    syscalls.prctl(syscalls.PR_SET_KEEPCAPS, 0)


def _chdir(cwd: str) -> None:
    try:
        os.chdir(cwd)
    except OSError as err:
        raise OSError(err.errno, f"chdir: {err.strerror}", cwd) from None


def _umask(value: int) -> None:
    os.umask(value)


def late_seccomp_step(process: Any, seccomp_filter: Any, warnings: list[str]) -> Step | None:
    """seccomp right before execve, when no_new_privs is on."""
    if seccomp_filter is None or not process.get("noNewPrivileges"):
        return None
    return ("seccomp", lambda: _seccomp(seccomp_filter, warnings))


def prepare_exec_fds() -> None:
    """Mark every fd >= 3 close-on-exec (runc's CloseExecFrom(3)); reset Python's ignored
    signals (SIGPIPE, SIGXFSZ), which execve(2) would otherwise pass on as ignored."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2:
            try:
                os.set_inheritable(fd, False)
            except OSError:
                pass
    for signum in (_signal.SIGPIPE, _signal.SIGXFSZ, _signal.SIGINT, _signal.SIGTERM):
        _signal.signal(signum, _signal.SIG_DFL)
    _signal.pthread_sigmask(_signal.SIG_SETMASK, [])


def execve(path: str, args: list[str], env: list[str]) -> None:
    """execve(2); raises OSError naming the path when it fails."""
    env_map = {}
    for item in env:
        key, _, value = item.partition("=")
        env_map[key] = value
    try:
        os.execve(path, args, env_map)
    except OSError as err:
        raise OSError(err.errno, f"execve: {err.strerror}", path) from None
