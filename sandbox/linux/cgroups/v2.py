"""cgroup v2 (unified hierarchy), cgroupfs driver (kernel: admin-guide/cgroup-v2.rst).

OCI values written in v1 units are converted as runc and crun convert them: cpu.shares ->
cpu.weight, blkio weight -> io.weight, memory.swap (memory+swap) -> memory.swap.max (swap
alone). `linux.resources.unified` is written last, key by key, so it overrides.

Device rules: v2 has no devices controller; runc attaches an eBPF program
(BPF_CGROUP_DEVICE). crib does not build one yet: on v2 device rules are NOT enforced
and `apply` returns a warning saying so (the container still only sees the nodes its
spec creates in its /dev).
"""

from __future__ import annotations

import os

from sandbox.linux.cgroups.manager import (
    blkio_weight_to_io_weight,
    cgroup_error,
    cpu_shares_to_weight,
    device_numbers,
    empty_stats,
    read_file,
    read_int,
    read_keyed,
    read_pressure,
    read_procs,
    rmdir_retry,
    write_file,
)

# See manager.py: crib-runtime does not pay for typing at run time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from sandbox.linux.cgroups.types import CgroupStats, HugetlbStats, IoDeviceStats

# Controllers a container's cgroup may use; enabled in each ancestor's subtree_control.
_WANTED = ("cpuset", "cpu", "io", "memory", "hugetlb", "pids", "rdma", "misc")


class CgroupV2Manager:
    """A container's cgroup in the unified hierarchy mounted at `root`."""

    def __init__(self, inner: str, root: str) -> None:
        self.cgroups_path = inner
        self.root = root
        self.directory = os.path.join(root, inner.lstrip("/"))

    @property
    def unified(self) -> bool:
        return True

    def dirs(self) -> dict[str, str]:
        return {"": self.directory}

    def exists(self) -> bool:
        return os.path.isdir(self.directory)

    def create(self) -> None:
        # Enable the controllers top-down: a child can only use what its parent's
        # cgroup.subtree_control delegates ("Top-down Constraint").
        relative = os.path.relpath(self.directory, self.root)
        current = self.root
        for part in relative.split(os.sep):
            self._delegate(current)
            current = os.path.join(current, part)
            try:
                os.mkdir(current, 0o755)
            except FileExistsError:
                pass
            except OSError as err:
                raise cgroup_error(f"mkdir {current}: {err.strerror}") from None

    def _delegate(self, directory: str) -> None:
        try:
            available = read_file(os.path.join(directory, "cgroup.controllers")).split()
            enabled = read_file(os.path.join(directory, "cgroup.subtree_control")).split()
        except OSError:
            return
        wanted = [c for c in _WANTED if c in available and c not in enabled]
        if wanted:
            write_file(
                os.path.join(directory, "cgroup.subtree_control"), " ".join("+" + c for c in wanted)
            )

    def add_process(self, pid: int) -> None:
        write_file(os.path.join(self.directory, "cgroup.procs"), str(pid))

    def _write(self, name: str, value: str) -> None:
        path = os.path.join(self.directory, name)
        if not os.path.exists(path):
            controller = name.split(".", 1)[0]
            raise cgroup_error(f"{name}: {controller} controller not enabled for {self.directory}")
        write_file(path, value)

    def apply(self, resources: Any) -> list[str]:
        warnings: list[str] = []
        cpu = resources.get("cpu") or {}
        if cpu.get("shares"):
            self._write("cpu.weight", str(cpu_shares_to_weight(cpu["shares"])))
        if cpu.get("idle") is not None and "idle" in cpu:
            self._write("cpu.idle", str(cpu["idle"]))
        if cpu.get("quota") or cpu.get("period"):
            quota = cpu.get("quota", 0)
            period = cpu.get("period") or self._current_period()
            self._write("cpu.max", f"{quota if quota and quota > 0 else 'max'} {period}")
        if cpu.get("cpus"):
            self._write("cpuset.cpus", cpu["cpus"])
        if cpu.get("mems"):
            self._write("cpuset.mems", cpu["mems"])
        memory = resources.get("memory") or {}
        limit = memory.get("limit")
        swap = memory.get("swap")
        if swap is not None and swap != 0:
            self._write("memory.swap.max", self._swap_max(limit, swap))
        if limit is not None and limit != 0:
            self._write("memory.max", str(limit) if limit > 0 else "max")
        if memory.get("reservation"):
            self._write("memory.low", str(memory["reservation"]))
        if memory.get("disableOOMKiller"):
            warnings.append("linux.resources.memory.disableOOMKiller: not available on cgroup v2")
        pids = resources.get("pids")
        if pids and "limit" in pids:
            self._write("pids.max", "max" if pids["limit"] <= 0 else str(pids["limit"]))
        self._apply_io(resources.get("blockIO") or {}, warnings)
        for hugepage in resources.get("hugepageLimits") or []:
            self._write(f"hugetlb.{hugepage['pageSize']}.max", str(hugepage["limit"]))
        if _restricts_devices(resources.get("devices") or []):
            warnings.append(
                "linux.resources.devices: device rules are not enforced on cgroup v2 "
                "(no eBPF device program yet)"
            )
        for key, value in (resources.get("unified") or {}).items():
            if "/" in key or key.startswith(".") or key.startswith("cgroup."):
                raise cgroup_error(f'linux.resources.unified: invalid key "{key}"')
            self._write(key, value)
        return warnings

    def _current_period(self) -> int:
        try:
            return int(read_file(os.path.join(self.directory, "cpu.max")).split()[1])
        except (OSError, IndexError, ValueError):
            return 100000

    @staticmethod
    def _swap_max(limit: int | None, swap: int) -> str:
        # OCI swap is memory+swap (a v1 idea); v2's memory.swap.max is swap alone.
        if swap < 0:
            return "max"
        if limit is None or limit <= 0:
            raise cgroup_error("linux.resources.memory.swap: needs memory.limit on cgroup v2")
        if swap < limit:
            raise cgroup_error(f"linux.resources.memory.swap: {swap} is below memory.limit {limit}")
        return str(swap - limit)

    def _apply_io(self, blkio: Any, warnings: list[str]) -> None:
        if not blkio:
            return
        weight_name = (
            "io.bfq.weight"
            if os.path.exists(os.path.join(self.directory, "io.bfq.weight"))
            else "io.weight"
        )
        if blkio.get("weight"):
            if weight_name == "io.bfq.weight":
                self._write(weight_name, str(blkio["weight"]))
            else:
                self._write(weight_name, str(blkio_weight_to_io_weight(blkio["weight"])))
        for device in blkio.get("weightDevice") or []:
            if device.get("weight"):
                value = device["weight"]
                if weight_name == "io.weight":
                    value = blkio_weight_to_io_weight(value)
                self._write(weight_name, f"{device['major']}:{device['minor']} {value}")
        for field, key in (
            ("throttleReadBpsDevice", "rbps"),
            ("throttleWriteBpsDevice", "wbps"),
            ("throttleReadIOPSDevice", "riops"),
            ("throttleWriteIOPSDevice", "wiops"),
        ):
            for device in blkio.get(field) or []:
                rate = device["rate"] if device["rate"] > 0 else "max"
                self._write("io.max", f"{device['major']}:{device['minor']} {key}={rate}")

    def pids(self) -> list[int]:
        return read_procs(os.path.join(self.directory, "cgroup.procs"))

    def stats(self) -> CgroupStats:
        stats = empty_stats()
        cpu = read_keyed(os.path.join(self.directory, "cpu.stat"))
        stats["cpu_usage_ns"] = cpu.get("usage_usec", 0) * 1000
        stats["cpu_user_ns"] = cpu.get("user_usec", 0) * 1000
        stats["cpu_system_ns"] = cpu.get("system_usec", 0) * 1000
        stats["cpu_nr_periods"] = cpu.get("nr_periods", 0)
        stats["cpu_nr_throttled"] = cpu.get("nr_throttled", 0)
        stats["cpu_throttled_ns"] = cpu.get("throttled_usec", 0) * 1000
        usage = read_int(os.path.join(self.directory, "memory.current"))
        memory = read_keyed(os.path.join(self.directory, "memory.stat"))
        stats["memory_usage_bytes"] = usage
        stats["memory_working_set_bytes"] = max(0, usage - memory.get("inactive_file", 0))
        stats["memory_rss_bytes"] = memory.get("anon", 0)
        stats["memory_cache_bytes"] = memory.get("file", 0)
        stats["memory_page_faults"] = memory.get("pgfault", 0)
        stats["memory_major_page_faults"] = memory.get("pgmajfault", 0)
        limit = read_int(os.path.join(self.directory, "memory.max"))
        stats["memory_limit_bytes"] = 0 if limit < 0 else limit
        stats["memory_swap_usage_bytes"] = read_int(
            os.path.join(self.directory, "memory.swap.current")
        )
        stats["pids_current"] = read_int(os.path.join(self.directory, "pids.current"))
        pids_limit = read_int(os.path.join(self.directory, "pids.max"))
        stats["pids_limit"] = 0 if pids_limit < 0 else pids_limit
        events = read_keyed(os.path.join(self.directory, "memory.events"))
        stats["oom_kill_count"] = events.get("oom_kill", 0)
        # memory.events "max": how often usage was about to exceed memory.max (the v1
        # failcnt's meaning, as runc's libcontainer reads it).
        stats["memory_failcnt"] = events.get("max", 0)
        stats["memory_max_usage_bytes"] = read_int(os.path.join(self.directory, "memory.peak"))
        stats["memory_kernel_bytes"] = memory.get("kernel", 0)
        stats["memory_mapped_file_bytes"] = memory.get("file_mapped", 0)
        swap_limit = read_int(os.path.join(self.directory, "memory.swap.max"))
        stats["memory_swap_limit_bytes"] = 0 if swap_limit < 0 else swap_limit
        stats["pressure"] = read_pressure(self.directory)
        stats["io"] = self._io_stats()
        stats["hugetlb"] = self._hugetlb_stats()
        return stats

    def _io_stats(self) -> list[IoDeviceStats]:
        # io.stat: "8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0" per device
        # (cgroup-v2.rst "IO Interface Files").
        result: list[IoDeviceStats] = []
        try:
            text = read_file(os.path.join(self.directory, "io.stat"))
        except OSError:
            return result
        for line in text.splitlines():
            parts = line.split()
            device = device_numbers(parts[0]) if parts else None
            if device is None:
                continue
            fields: dict[str, int] = {}
            for part in parts[1:]:
                key, _, value = part.partition("=")
                if value.isdigit():
                    fields[key] = int(value)
            result.append(
                {
                    "major": device[0],
                    "minor": device[1],
                    "read_bytes": fields.get("rbytes", 0),
                    "write_bytes": fields.get("wbytes", 0),
                    "reads": fields.get("rios", 0),
                    "writes": fields.get("wios", 0),
                }
            )
        return result

    def _hugetlb_stats(self) -> dict[str, HugetlbStats]:
        result: dict[str, HugetlbStats] = {}
        try:
            names = os.listdir(self.directory)
        except OSError:
            return result
        for name in names:
            # hugetlb.<size>.current, one per page size the kernel supports
            if name.startswith("hugetlb.") and name.endswith(".current"):
                size = name[len("hugetlb.") : -len(".current")]
                if "." in size:
                    continue  # hugetlb.<size>.rsvd.current
                usage = read_int(os.path.join(self.directory, name))
                result[size] = {"usage_bytes": usage, "max_usage_bytes": 0}
        return result

    def oom_kill_count(self) -> int:
        return read_keyed(os.path.join(self.directory, "memory.events")).get("oom_kill", 0)

    def destroy(self, timeout_s: float = 5.0) -> None:
        rmdir_retry(self.directory, timeout_s)


def _restricts_devices(rules: list[Any]) -> bool:
    """Whether device rules deny anything (a lone "allow all" restricts nothing)."""
    return any(not rule.get("allow") for rule in rules)
