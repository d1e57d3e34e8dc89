"""cgroup v1: one directory per hierarchy (`ROOT/<controllers>/<path>`), cgroupfs driver.

Hierarchies are the directories under ROOT (symlinks such as cpu -> cpu,cpuacct are
aliases). The named `systemd` hierarchy (name=systemd) gets a directory too, as runc
gives it; `unified` (the hybrid cgroup2 mount, no controllers) is left alone. Files
follow the kernel's Documentation/admin-guide/cgroup-v1/*.rst.
"""

from __future__ import annotations

import os

from sandbox.linux.cgroups.manager import (
    cgroup_error,
    device_numbers,
    empty_stats,
    inner_path,
    read_file,
    read_int,
    read_keyed,
    read_procs,
    rmdir_retry,
    write_file,
)
from sandbox.linux.devices import DEFAULT_ALLOW_RULES, cgroup_rule

# See manager.py: crib-runtime does not pay for typing at run time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from sandbox.linux.cgroups.types import CgroupStats, HugetlbStats, IoDeviceStats

_SKIP = ("unified",)
_USER_HZ = 100


def hierarchies(root: str) -> list[str]:
    """Hierarchy directory names under `root` (e.g. ["blkio", "cpu,cpuacct", "memory"])."""
    try:
        names = sorted(os.listdir(root))
    except OSError:
        return []
    return [
        name
        for name in names
        if name not in _SKIP
        and os.path.isdir(os.path.join(root, name))
        and not os.path.islink(os.path.join(root, name))
    ]


class CgroupV1Manager:
    """A container's cgroup across the v1 hierarchies under `root`."""

    def __init__(self, cgroups_path: str, paths: dict[str, str], root: str) -> None:
        self.cgroups_path = cgroups_path
        self.root = root
        self._paths = paths  # hierarchy name -> absolute directory
        self._by_controller: dict[str, str] = {}
        for hierarchy, path in paths.items():
            for controller in hierarchy.split(","):
                self._by_controller[controller] = path

    @classmethod
    def for_path(
        cls, cgroups_path: str, container_id: str, *, root: str, own: dict[str, str]
    ) -> CgroupV1Manager:
        """Resolve `cgroups_path` in every hierarchy (relative paths against our own cgroup)."""
        paths = {}
        for hierarchy in hierarchies(root):
            own_path = own.get(hierarchy) or own.get(f"name={hierarchy}") or "/"
            inner = inner_path(cgroups_path, container_id, own_path)
            paths[hierarchy] = os.path.join(root, hierarchy, inner.lstrip("/"))
        return cls(cgroups_path, paths, root)

    @property
    def unified(self) -> bool:
        return False

    def dirs(self) -> dict[str, str]:
        return dict(self._paths)

    def path(self, controller: str) -> str | None:
        """The container's directory in the hierarchy holding `controller`."""
        return self._by_controller.get(controller)

    def exists(self) -> bool:
        return any(os.path.isdir(p) for p in self._paths.values())

    def create(self) -> None:
        for hierarchy, path in self._paths.items():
            if "cpuset" in hierarchy.split(","):
                self._create_cpuset(os.path.join(self.root, hierarchy), path)
                continue
            try:
                os.makedirs(path, 0o755, exist_ok=True)
            except OSError as err:
                raise cgroup_error(f"mkdir {path}: {err.strerror}") from None

    def _create_cpuset(self, hierarchy_root: str, path: str) -> None:
        # A new v1 cpuset starts with empty cpus/mems and refuses tasks (ENOSPC) until both
        # are set (cpuset(7)): fill every level below the hierarchy root, top down, from
        # its parent. Every level, not only the ones this call created: a concurrent create
        # may have made a shared parent a moment ago and not filled it yet (runc's
        # cpusetEnsureParent checks each level for the same reason). Concurrent fillers
        # write the same values, so the race is harmless once everyone fills every level.
        levels = []
        probe = path
        while probe != hierarchy_root and probe.startswith(hierarchy_root + "/"):
            levels.append(probe)
            probe = os.path.dirname(probe)
        for directory in reversed(levels):
            try:
                os.mkdir(directory, 0o755)
            except FileExistsError:
                pass
            except OSError as err:
                raise cgroup_error(f"mkdir {directory}: {err.strerror}") from None
            parent = os.path.dirname(directory)
            for name in ("cpuset.cpus", "cpuset.mems"):
                own = os.path.join(directory, name)
                if os.path.exists(own) and not read_file(own):
                    write_file(own, read_file(os.path.join(parent, name)))

    def add_process(self, pid: int) -> None:
        for path in self._paths.values():
            write_file(os.path.join(path, "cgroup.procs"), str(pid))

    def apply(self, resources: Any) -> list[str]:
        warnings: list[str] = []
        self._apply_cpu(resources.get("cpu") or {})
        self._apply_memory(resources.get("memory") or {}, warnings)
        pids = resources.get("pids")
        if pids and "limit" in pids:
            self._write("pids", "pids.max", "max" if pids["limit"] <= 0 else str(pids["limit"]))
        self._apply_blkio(resources.get("blockIO") or {}, warnings)
        for hugepage in resources.get("hugepageLimits") or []:
            size = hugepage["pageSize"]
            if self.path("hugetlb") is None:
                warnings.append(f"hugepageLimits {size}: hugetlb controller not mounted, ignored")
                continue
            self._write("hugetlb", f"hugetlb.{size}.limit_in_bytes", str(hugepage["limit"]))
        if "devices" in resources and resources["devices"] is not None:
            self.apply_devices(resources["devices"], [])
        if resources.get("unified"):
            raise cgroup_error("linux.resources.unified: needs cgroup v2, this host runs cgroup v1")
        return warnings

    def _write(self, controller: str, name: str, value: str) -> None:
        path = self.path(controller)
        if path is None:
            raise cgroup_error(f"{name}: {controller} controller not mounted under {self.root}")
        write_file(os.path.join(path, name), value)

    def _apply_cpu(self, cpu: Any) -> None:
        if cpu.get("shares"):
            self._write("cpu", "cpu.shares", str(cpu["shares"]))
        # Period before quota: a quota is validated against the current period.
        if cpu.get("period"):
            self._write("cpu", "cpu.cfs_period_us", str(cpu["period"]))
        if "quota" in cpu and cpu["quota"] != 0:
            self._write("cpu", "cpu.cfs_quota_us", str(cpu["quota"] if cpu["quota"] > 0 else -1))
        if cpu.get("realtimePeriod"):
            self._write("cpu", "cpu.rt_period_us", str(cpu["realtimePeriod"]))
        if cpu.get("realtimeRuntime"):
            self._write("cpu", "cpu.rt_runtime_us", str(cpu["realtimeRuntime"]))
        if "idle" in cpu and cpu["idle"] is not None:
            self._write("cpu", "cpu.idle", str(cpu["idle"]))
        if cpu.get("cpus"):
            self._write("cpuset", "cpuset.cpus", cpu["cpus"])
        if cpu.get("mems"):
            self._write("cpuset", "cpuset.mems", cpu["mems"])

    def _apply_memory(self, memory: Any, warnings: list[str]) -> None:
        directory = self.path("memory")
        if not memory:
            return
        if directory is None:
            raise cgroup_error("memory controller not mounted")
        limit = memory.get("limit")
        swap = memory.get("swap")
        memsw = os.path.join(directory, "memory.memsw.limit_in_bytes")
        has_memsw = os.path.exists(memsw)
        if swap is not None and swap != 0 and not has_memsw:
            warnings.append("linux.resources.memory.swap: swap accounting is off, ignored")
            swap = None
        if limit is not None and limit != 0:
            limit_text = str(limit if limit > 0 else -1)
            swap_text = str(swap if swap and swap > 0 else -1) if swap else None
            # memory.limit_in_bytes may never exceed memory.memsw.limit_in_bytes: when
            # raising, write memsw first; when lowering, the limit first.
            current_limit = read_int(os.path.join(directory, "memory.limit_in_bytes"), -1)
            raising = limit < 0 or current_limit < 0 or limit > current_limit
            if swap_text is not None and raising:
                write_file(memsw, swap_text)
                write_file(os.path.join(directory, "memory.limit_in_bytes"), limit_text)
            else:
                write_file(os.path.join(directory, "memory.limit_in_bytes"), limit_text)
                if swap_text is not None:
                    write_file(memsw, swap_text)
        elif swap:
            write_file(memsw, str(swap if swap > 0 else -1))
        if memory.get("reservation"):
            write_file(
                os.path.join(directory, "memory.soft_limit_in_bytes"), str(memory["reservation"])
            )
        if memory.get("swappiness") is not None and 0 <= memory["swappiness"] <= 100:
            write_file(os.path.join(directory, "memory.swappiness"), str(memory["swappiness"]))
        if memory.get("disableOOMKiller"):
            write_file(os.path.join(directory, "memory.oom_control"), "1")

    def _apply_blkio(self, blkio: Any, warnings: list[str]) -> None:
        if not blkio:
            return
        directory = self.path("blkio")
        if directory is None:
            raise cgroup_error("blkio controller not mounted")
        weight_file = next(
            (
                os.path.join(directory, name)
                for name in ("blkio.weight", "blkio.bfq.weight")
                if os.path.exists(os.path.join(directory, name))
            ),
            None,
        )
        if blkio.get("weight"):
            if weight_file is None:
                warnings.append("linux.resources.blockIO.weight: no blkio weight file, ignored")
            else:
                write_file(weight_file, str(blkio["weight"]))
        for device in blkio.get("weightDevice") or []:
            if weight_file is None:
                warnings.append("linux.resources.blockIO.weightDevice: no weight file, ignored")
                break
            if device.get("weight"):
                line = f"{device['major']}:{device['minor']} {device['weight']}"
                write_file(weight_file.replace("weight", "weight_device"), line)
        for field, name in (
            ("throttleReadBpsDevice", "blkio.throttle.read_bps_device"),
            ("throttleWriteBpsDevice", "blkio.throttle.write_bps_device"),
            ("throttleReadIOPSDevice", "blkio.throttle.read_iops_device"),
            ("throttleWriteIOPSDevice", "blkio.throttle.write_iops_device"),
        ):
            for device in blkio.get(field) or []:
                line = f"{device['major']}:{device['minor']} {device['rate']}"
                write_file(os.path.join(directory, name), line)

    def apply_devices(self, rules: list[Any], extra_allow: list[str]) -> None:
        """Write the spec's device rules in order, then crib's defaults and `extra_allow`.

        A rule list starting with "deny all" is the norm (runc, CRI): it resets the cgroup to
        deny everything, and each following allow opens one device.
        """
        directory = self.path("devices")
        if directory is None:
            return
        allow = os.path.join(directory, "devices.allow")
        deny = os.path.join(directory, "devices.deny")
        for rule in rules:
            line = cgroup_rule(
                bool(rule.get("allow")),
                rule.get("type", "a"),
                rule.get("major"),
                rule.get("minor"),
                rule.get("access", "rwm"),
            )
            write_file(allow if rule.get("allow") else deny, line)
        for line in (*DEFAULT_ALLOW_RULES, *extra_allow):
            write_file(allow, line)

    def pids(self) -> list[int]:
        for hierarchy in ("pids", "memory", "cpu", "devices", "freezer"):
            path = self.path(hierarchy)
            if path is not None and os.path.isdir(path):
                return read_procs(os.path.join(path, "cgroup.procs"))
        return []

    def stats(self) -> CgroupStats:
        stats = empty_stats()
        cpuacct = self.path("cpuacct")
        if cpuacct:
            stats["cpu_usage_ns"] = read_int(os.path.join(cpuacct, "cpuacct.usage"))
            ticks = read_keyed(os.path.join(cpuacct, "cpuacct.stat"))
            stats["cpu_user_ns"] = ticks.get("user", 0) * 1_000_000_000 // _USER_HZ
            stats["cpu_system_ns"] = ticks.get("system", 0) * 1_000_000_000 // _USER_HZ
        cpu = self.path("cpu")
        if cpu:
            throttling = read_keyed(os.path.join(cpu, "cpu.stat"))
            stats["cpu_nr_periods"] = throttling.get("nr_periods", 0)
            stats["cpu_nr_throttled"] = throttling.get("nr_throttled", 0)
            stats["cpu_throttled_ns"] = throttling.get("throttled_time", 0)
        memory = self.path("memory")
        if memory:
            usage = read_int(os.path.join(memory, "memory.usage_in_bytes"))
            counters = read_keyed(os.path.join(memory, "memory.stat"))
            inactive_file = counters.get("total_inactive_file", counters.get("inactive_file", 0))
            stats["memory_usage_bytes"] = usage
            stats["memory_working_set_bytes"] = max(0, usage - inactive_file)
            stats["memory_rss_bytes"] = counters.get("total_rss", counters.get("rss", 0))
            stats["memory_cache_bytes"] = counters.get("total_cache", counters.get("cache", 0))
            stats["memory_page_faults"] = counters.get("total_pgfault", counters.get("pgfault", 0))
            stats["memory_major_page_faults"] = counters.get(
                "total_pgmajfault", counters.get("pgmajfault", 0)
            )
            limit = read_int(os.path.join(memory, "memory.limit_in_bytes"))
            # v1 reports "no limit" as a huge page-aligned number.
            stats["memory_limit_bytes"] = 0 if limit >= 2**62 else limit
            memsw = read_int(os.path.join(memory, "memory.memsw.usage_in_bytes"), usage)
            stats["memory_swap_usage_bytes"] = max(0, memsw - usage)
            # memsw.limit is memory + swap: the swap alone is the difference, when both
            # are limited.
            memsw_limit = read_int(os.path.join(memory, "memory.memsw.limit_in_bytes"))
            if 0 < limit < 2**62 and 0 < memsw_limit < 2**62:
                stats["memory_swap_limit_bytes"] = max(0, memsw_limit - limit)
            stats["oom_kill_count"] = self.oom_kill_count()
            stats["memory_max_usage_bytes"] = read_int(
                os.path.join(memory, "memory.max_usage_in_bytes")
            )
            stats["memory_failcnt"] = read_int(os.path.join(memory, "memory.failcnt"))
            stats["memory_kernel_bytes"] = read_int(
                os.path.join(memory, "memory.kmem.usage_in_bytes")
            )
            stats["memory_mapped_file_bytes"] = counters.get(
                "total_mapped_file", counters.get("mapped_file", 0)
            )
        blkio = self.path("blkio")
        if blkio:
            stats["io"] = _blkio_stats(blkio)
        hugetlb = self.path("hugetlb")
        if hugetlb:
            stats["hugetlb"] = _hugetlb_stats(hugetlb)
        pids = self.path("pids")
        if pids:
            stats["pids_current"] = read_int(os.path.join(pids, "pids.current"))
            limit = read_int(os.path.join(pids, "pids.max"))
            stats["pids_limit"] = 0 if limit < 0 else limit
        return stats

    def oom_kill_count(self) -> int:
        memory = self.path("memory")
        if memory is None:
            return 0
        return read_keyed(os.path.join(memory, "memory.oom_control")).get("oom_kill", 0)

    def destroy(self, timeout_s: float = 5.0) -> None:
        for path in self._paths.values():
            rmdir_retry(path, timeout_s)


def _blkio_stats(directory: str) -> list[IoDeviceStats]:
    """Per-device I/O from blkio.throttle.io_service_bytes_recursive and
    io_serviced_recursive ("8:0 Read 4096" lines; blkio-controller.rst). The throttle
    files count every I/O whatever the scheduler, unlike the CFQ/BFQ ones."""
    by_device: dict[tuple[int, int], IoDeviceStats] = {}
    for name, read_key, write_key in (
        ("blkio.throttle.io_service_bytes_recursive", "read_bytes", "write_bytes"),
        ("blkio.throttle.io_serviced_recursive", "reads", "writes"),
    ):
        try:
            text = read_file(os.path.join(directory, name))
        except OSError:
            continue
        for line in text.splitlines():
            parts = line.split()
            if len(parts) != 3 or not parts[2].isdigit():
                continue
            device = device_numbers(parts[0])
            if device is None:
                continue
            entry = by_device.setdefault(
                device,
                {
                    "major": device[0],
                    "minor": device[1],
                    "read_bytes": 0,
                    "write_bytes": 0,
                    "reads": 0,
                    "writes": 0,
                },
            )
            if parts[1] == "Read":
                entry[read_key] = int(parts[2])  # type: ignore[literal-required]
            elif parts[1] == "Write":
                entry[write_key] = int(parts[2])  # type: ignore[literal-required]
    return [by_device[key] for key in sorted(by_device)]


def _hugetlb_stats(directory: str) -> dict[str, HugetlbStats]:
    result: dict[str, HugetlbStats] = {}
    try:
        names = os.listdir(directory)
    except OSError:
        return result
    for name in names:
        # hugetlb.<size>.usage_in_bytes (and .max_usage_in_bytes), one pair per page size
        if name.startswith("hugetlb.") and name.endswith(".usage_in_bytes"):
            size = name[len("hugetlb.") : -len(".usage_in_bytes")]
            if "." in size:
                continue  # hugetlb.<size>.rsvd.usage_in_bytes
            result[size] = {
                "usage_bytes": read_int(os.path.join(directory, name)),
                "max_usage_bytes": read_int(
                    os.path.join(directory, f"hugetlb.{size}.max_usage_in_bytes")
                ),
            }
    return result
