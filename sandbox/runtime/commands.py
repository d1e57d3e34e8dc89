"""`start`, `state`, `kill`, `delete`, `update`, `ps` and `features`: the commands that act
on an existing container through its state.json (see container.py for the status table)."""

from __future__ import annotations

import os
import select
import sys

from common import jsonc
from sandbox.oci import state as oci
from sandbox.runtime import container

# conmon and crib run `state`, `kill` and `delete` for every container; like exec they
# import neither typing, json, `signal` (its enums) nor the error classes until they fail.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal as _signal  # the same names, typed; _signal has no stubs
    from collections.abc import Callable
    from typing import Any

    from sandbox.linux.cgroups.types import CgroupManager
    from sandbox.runtime.errors import SignalError
else:
    import _signal


def _signal_error(text: str) -> SignalError:
    from sandbox.runtime.errors import SignalError

    return SignalError(f"invalid signal: {text}")


def parse_signal(text: str) -> int:
    """`KILL`, `SIGKILL`, `kill` or `9` -> 9 (runc accepts all four)."""
    if text.isdigit():
        number = int(text)
        if 0 < number < _signal.NSIG:
            return number
        raise _signal_error(text)
    name = text.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    # The names signal.Signals has (aliases such as SIGIOT and SIGRTMIN included), read
    # from _signal: SIG_DFL, SIG_IGN and SIG_BLOCK are handlers and how-values, not signals.
    found: object = getattr(_signal, name, None) if not name.startswith("SIG_") else None
    if not isinstance(found, int):
        raise _signal_error(text)
    return found


def manager_of(record: container.Record) -> CgroupManager:
    """The cgroup manager of a recorded container."""
    from sandbox.linux.cgroups.manager import open_manager

    return open_manager(record["cgroups_path"], record["id"])


def state(root: str, container_id: str) -> oci.OCIState:
    """The OCI state of the container."""
    record = container.load(root, container_id)
    return oci.oci_state(
        container_id,
        container.status(root, record),
        record["init_pid"],
        record["bundle"],
        record["rootfs"],
        record["created"],
        record.get("annotations") or {},
    )


def kill(root: str, container_id: str, signal_text: str, all_processes: bool) -> None:
    """Send a signal to the init, or with --all to every process in the container's cgroup."""
    signum = parse_signal(signal_text)
    record = container.load(root, container_id)
    current = container.status(root, record)
    if all_processes:
        for pid in manager_of(record).pids():
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass
        if current == oci.STOPPED:
            return
    container.require("kill", container_id, current)
    try:
        os.kill(record["init_pid"], signum)
    except ProcessLookupError:
        from sandbox.runtime.errors import ContainerStateError

        raise ContainerStateError("container not running") from None


def wait_gone(pid: int, start_time: int, timeout_s: float) -> bool:
    """Wait for a process that is not our child to exit (pidfd poll, pidfd_open(2))."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        if container.process_start_time(pid) != start_time:
            return True  # already gone (the pid was reused or it is a zombie)
        readable, _, _ = select.select([fd], [], [], timeout_s)
        return bool(readable)
    finally:
        os.close(fd)


def delete(root: str, container_id: str, force: bool) -> None:
    """Remove a stopped (or created, or with --force any) container: processes, cgroup, state."""
    try:
        record = container.load(root, container_id)
    except container.ContainerNotFoundError:
        # An aborted create can leave the directory without state.json (runc: remove it).
        directory = container.container_dir(root, container_id)
        if os.path.isdir(directory):
            _remove_dir(directory)
        if force:
            return
        raise
    current = container.status(root, record)
    container.require("delete --force" if force else "delete", container_id, current)
    manager = manager_of(record)
    if current != oci.STOPPED:
        try:
            os.kill(record["init_pid"], _signal.SIGKILL)
        except ProcessLookupError:
            pass
        if not wait_gone(record["init_pid"], record["init_start_time"], 10.0):
            from sandbox.runtime.errors import ContainerStateError

            raise ContainerStateError(
                f"container {container_id}: init {record['init_pid']} did not exit after SIGKILL"
            )
    # Processes left in the cgroup (a container sharing the host pid namespace, or execs
    # whose init died) die with it, as runc's destroy does.
    for pid in manager.pids():
        try:
            os.kill(pid, _signal.SIGKILL)
        except ProcessLookupError:
            pass
    if manager.exists():
        manager.destroy(10.0)
    _remove_dir(container.container_dir(root, container_id))


def _remove_dir(directory: str) -> None:
    for name in os.listdir(directory):
        os.unlink(os.path.join(directory, name))
    os.rmdir(directory)


def update(root: str, container_id: str, resources_file: str, warn: Callable[[str], None]) -> None:
    """Apply a LinuxResources JSON (file or "-" for stdin) to the container's cgroup."""
    from sandbox.oci.spec import parse_resources

    record = container.load(root, container_id)
    container.require("update", container_id, container.status(root, record))
    if resources_file == "-":
        raw = sys.stdin.buffer.read()
    else:
        try:
            with open(resources_file, "rb") as resources_json:
                raw = resources_json.read()
        except OSError as err:
            from common.errors import InvalidArgumentError

            raise InvalidArgumentError(f"--resources {resources_file}: {err.strerror}") from None
    resources = parse_resources(raw, "resources")
    manager = manager_of(record)
    for warning in manager.apply(resources):
        warn(warning)
    config = record["config"]
    merged: dict[str, Any] = dict(config.get("linux", {}).get("resources") or {})
    merged.update(resources)
    config.setdefault("linux", {})["resources"] = merged
    container.save(root, record)


def ps(root: str, container_id: str, output_format: str, ps_args: list[str]) -> str:
    """`ps --format json` prints the pids as a JSON list; `table` runs ps(1) and filters."""
    record = container.load(root, container_id)
    pids = manager_of(record).pids()
    if output_format == "json":
        return jsonc.dumps(pids)
    import subprocess

    result = subprocess.run(
        ["ps", *(ps_args or ["-ef"])], capture_output=True, text=True, check=True
    )
    lines = result.stdout.splitlines()
    if not lines:
        return ""
    header = lines[0].split()
    pid_column = header.index("PID") if "PID" in header else 1
    keep = [lines[0]]
    wanted = {str(p) for p in pids}
    for line in lines[1:]:
        fields = line.split()
        if len(fields) > pid_column and fields[pid_column] in wanted:
            keep.append(line)
    return "\n".join(keep)


def features() -> dict[str, Any]:
    """What this runtime supports, in the runtime-spec features.md format (runc `features`)."""
    from sandbox.linux import capabilities
    from sandbox.linux.mounts import MOUNT_FLAGS, PROPAGATION_FLAGS
    from sandbox.linux.seccomp import COMPARE_OPS, KNOWN_FLAGS

    release = os.uname().release.split(".")
    try:
        kernel = (int(release[0]), int(release[1].split("-")[0]))
    except (IndexError, ValueError):
        kernel = (0, 0)
    mount_options = sorted(MOUNT_FLAGS) + sorted(PROPAGATION_FLAGS) + ["tmpcopyup"]
    # "rro" is mount_setattr(2) with AT_RECURSIVE: Linux 5.12 and later.
    rro = kernel >= (5, 12)
    if rro:
        mount_options.append("rro")
    from sandbox.linux.cgroups.manager import is_unified

    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.1.0",
        "hooks": [],
        "mountOptions": sorted(set(mount_options)),
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "capabilities": list(capabilities.CAPABILITY_NAMES[: capabilities.last_cap() + 1]),
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False},
            "seccomp": {
                "enabled": True,
                "actions": [
                    "SCMP_ACT_ALLOW",
                    "SCMP_ACT_ERRNO",
                    "SCMP_ACT_KILL",
                    "SCMP_ACT_KILL_PROCESS",
                    "SCMP_ACT_KILL_THREAD",
                    "SCMP_ACT_LOG",
                    "SCMP_ACT_TRACE",
                    "SCMP_ACT_TRAP",
                ],
                "operators": sorted(COMPARE_OPS),
                "archs": [
                    "SCMP_ARCH_AARCH64",
                    "SCMP_ARCH_ARM",
                    "SCMP_ARCH_X32",
                    "SCMP_ARCH_X86",
                    "SCMP_ARCH_X86_64",
                ],
                "knownFlags": list(KNOWN_FLAGS),
                "supportedFlags": [f for f in KNOWN_FLAGS if f != "SECCOMP_FILTER_FLAG_TSYNC"],
            },
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
            "intelRdt": {"enabled": False},
            "mountExtensions": {"idmap": {"enabled": False}},
        },
        "annotations": {
            "io.github.crib.runtime.cgroup.unified": str(is_unified()).lower(),
            "io.github.crib.runtime.rro": str(rro).lower(),
        },
        "potentiallyUnsafeConfigAnnotations": [],
    }
