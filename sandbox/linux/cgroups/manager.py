"""One cgroup manager interface, a v1 and a v2 implementation (cgroupfs driver).

    manager = open_manager("/kubepods/pod1/ctr1")      # linux.cgroupsPath of a container
    manager.create(); manager.apply(resources); manager.add_process(pid)
    manager.stats()          # CgroupStats: cpu, memory (usage, working set, rss, faults), pids
    manager.oom_kill_count() # memory.events oom_kill (v2) / memory.oom_control oom_kill (v1)
    manager.destroy()

Every implementation takes the hierarchy root (`/sys/fs/cgroup`) so unit tests run on a
fixture tree in a temp dir. `cgroups_path` follows runc's cgroupfs rules: absolute paths are
relative to the hierarchy root, relative ones to the caller's own cgroup, and an empty one
becomes the container id under the caller's cgroup.
"""

from __future__ import annotations

import os
import time

# crib-runtime's `delete` (run at every container stop) and `update` use this module:
# typing and the error classes' common.errors cost it ~15 ms, so neither is imported until
# needed (the name TYPE_CHECKING is what mypy honours, not where it comes from).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from sandbox.linux.cgroups.errors import CgroupError, CgroupValueError
    from sandbox.linux.cgroups.types import CgroupManager, CgroupStats, PsiData

CGROUP_ROOT = "/sys/fs/cgroup"


def cgroup_error(message: str) -> CgroupError:
    """A CgroupError (FAILED_PRECONDITION) to raise; its class is imported on first use."""
    from sandbox.linux.cgroups.errors import CgroupError

    return CgroupError(message)


def cgroup_value_error(message: str) -> CgroupValueError:
    """A CgroupValueError (INVALID_ARGUMENT) to raise; its class is imported on first use."""
    from sandbox.linux.cgroups.errors import CgroupValueError

    return CgroupValueError(message)


def empty_stats() -> CgroupStats:
    """All-zero stats (fields a hierarchy lacks stay 0)."""
    stats: CgroupStats = {
        "cpu_usage_ns": 0,
        "cpu_user_ns": 0,
        "cpu_system_ns": 0,
        "cpu_nr_periods": 0,
        "cpu_nr_throttled": 0,
        "cpu_throttled_ns": 0,
        "memory_usage_bytes": 0,
        "memory_working_set_bytes": 0,
        "memory_rss_bytes": 0,
        "memory_cache_bytes": 0,
        "memory_limit_bytes": 0,
        "memory_swap_usage_bytes": 0,
        "memory_page_faults": 0,
        "memory_major_page_faults": 0,
        "pids_current": 0,
        "pids_limit": 0,
        "oom_kill_count": 0,
        "memory_max_usage_bytes": 0,
        "memory_failcnt": 0,
        "memory_kernel_bytes": 0,
        "memory_mapped_file_bytes": 0,
        "memory_swap_limit_bytes": 0,
        "pressure": {},
        "io": [],
        "hugetlb": {},
    }
    return stats


# ---- helpers shared by both implementations ------------------------------------------------


def write_file(path: str, value: str) -> None:
    """Write one cgroup control file; an error names the file and the value."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC | os.O_TRUNC)
    except OSError as err:
        raise cgroup_error(f"open {path}: {err.strerror}") from None
    try:
        os.write(fd, value.encode())
    except OSError as err:
        raise cgroup_error(f"write {value!r} to {path}: {err.strerror}") from None
    finally:
        os.close(fd)


def read_file(path: str) -> str:
    """The content of a cgroup file, stripped."""
    with open(path) as cgroup_file:
        return cgroup_file.read().strip()


def read_int(path: str, default: int = 0) -> int:
    """An integer cgroup file ("max" reads as -1), `default` when missing."""
    try:
        text = read_file(path)
    except OSError:
        return default
    if text == "max":
        return -1
    try:
        return int(text)
    except ValueError:
        return default


def read_keyed(path: str) -> dict[str, int]:
    """A flat keyed file (`key value` per line: memory.stat, cpu.stat, memory.events)."""
    result: dict[str, int] = {}
    try:
        text = read_file(path)
    except OSError:
        return result
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                result[parts[0]] = int(parts[1])
            except ValueError:
                continue
    return result


def read_pressure(directory: str) -> dict[str, dict[str, PsiData]]:
    """The PSI files of a v2 cgroup (`cpu.pressure`, `memory.pressure`, `io.pressure`):

        some avg10=0.00 avg60=0.00 avg300=0.00 total=0
        full avg10=0.00 avg60=0.00 avg300=0.00 total=0

    (kernel Documentation/accounting/psi.rst). Missing files are left out; so is a file
    the kernel refuses to read (EOPNOTSUPP when PSI is disabled at boot)."""
    result: dict[str, dict[str, PsiData]] = {}
    for resource in ("cpu", "memory", "io"):
        try:
            text = read_file(os.path.join(directory, f"{resource}.pressure"))
        except OSError:
            continue
        lines: dict[str, PsiData] = {}
        for line in text.splitlines():
            kind, _, rest = line.partition(" ")
            fields = dict(part.split("=", 1) for part in rest.split() if "=" in part)
            try:
                lines[kind] = {
                    "total_us": int(fields["total"]),
                    "avg10": float(fields["avg10"]),
                    "avg60": float(fields["avg60"]),
                    "avg300": float(fields["avg300"]),
                }
            except (KeyError, ValueError):
                continue
        if lines:
            result[resource] = lines
    return result


def device_numbers(text: str) -> tuple[int, int] | None:
    """(major, minor) of "MAJ:MIN", or None."""
    major, sep, minor = text.partition(":")
    if not sep or not major.isdigit() or not minor.isdigit():
        return None
    return int(major), int(minor)


def read_procs(path: str) -> list[int]:
    """PIDs listed in a cgroup.procs file (missing file: none)."""
    try:
        return [int(line) for line in read_file(path).split()]
    except OSError:
        return []


def rmdir_retry(path: str, timeout_s: float) -> None:
    """rmdir(2) a cgroup directory; EBUSY while dying processes still count, so retry."""
    deadline = time.monotonic() + timeout_s
    delay_s = 0.001
    while True:
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as err:
            if err.errno != 16 or time.monotonic() > deadline:  # EBUSY
                raise cgroup_error(f"rmdir {path}: {err.strerror}") from None
        time.sleep(delay_s)
        delay_s = min(delay_s * 2, 0.05)


def own_cgroups(proc_self_cgroup: str = "/proc/self/cgroup") -> dict[str, str]:
    """The caller's cgroup per hierarchy: controller list (or "" for v2) -> path."""
    result: dict[str, str] = {}
    try:
        with open(proc_self_cgroup) as cgroup_file:
            for line in cgroup_file:
                _, controllers, path = line.rstrip("\n").split(":", 2)
                result[controllers] = path
    except OSError:
        pass
    return result


def inner_path(cgroups_path: str, container_id: str, own: str) -> str:
    """The cgroup path below a hierarchy root, by runc's cgroupfs rules."""
    if not cgroups_path:
        cgroups_path = container_id
    if ":" in cgroups_path:
        raise cgroup_value_error(
            f'linux.cgroupsPath: "{cgroups_path}" is a systemd slice path; '
            "the systemd cgroup driver is not supported, use cgroupfs"
        )
    if os.path.isabs(cgroups_path):
        joined = os.path.normpath(cgroups_path)
    else:
        joined = os.path.normpath(os.path.join(own or "/", cgroups_path))
    if joined == "/" or joined.startswith("/..") or "/../" in joined + "/":
        raise cgroup_value_error(
            f'linux.cgroupsPath: "{cgroups_path}" is not a cgroup below the root'
        )
    return joined


def is_unified(root: str = CGROUP_ROOT) -> bool:
    """Whether `root` is a cgroup v2 (unified) hierarchy."""
    return os.path.exists(os.path.join(root, "cgroup.controllers"))


def open_manager(
    cgroups_path: str,
    container_id: str = "",
    *,
    root: str = CGROUP_ROOT,
    proc_self_cgroup: str = "/proc/self/cgroup",
) -> CgroupManager:
    """The manager for a container's cgroup on the host's hierarchy (v2 when unified)."""
    own = own_cgroups(proc_self_cgroup)
    if is_unified(root):
        from sandbox.linux.cgroups.v2 import CgroupV2Manager

        return CgroupV2Manager(inner_path(cgroups_path, container_id, own.get("", "/")), root=root)
    from sandbox.linux.cgroups.v1 import CgroupV1Manager

    return CgroupV1Manager.for_path(cgroups_path, container_id, root=root, own=own)


def cpu_shares_to_weight(shares: int) -> int:
    """cpu.shares (2..262144) -> cpu.weight (1..10000), the mapping runc and crun use."""
    if shares == 0:
        return 0
    return 1 + ((shares - 2) * 9999) // 262142


def blkio_weight_to_io_weight(weight: int) -> int:
    """blkio.weight (10..1000) -> io.weight (1..10000)."""
    if weight == 0:
        return 0
    return 1 + (weight - 10) * 9999 // 990


def __getattr__(name: str) -> Any:
    # The Protocol and the TypedDict live in types.py so that crib-runtime, which only
    # needs the functions, does not pay for building them (PEP 562 lazy attributes).
    if name in ("CgroupManager", "CgroupStats"):
        from sandbox.linux.cgroups import types

        return getattr(types, name)
    if name in ("CgroupError", "CgroupValueError"):
        from sandbox.linux.cgroups import errors

        return getattr(errors, name)
    raise AttributeError(name)
