"""cgroup and /proc readings → CRI stats messages (pure: unit-tested on fixture values).

Field meanings follow the CRI comments (api.proto) and what cAdvisor gave kubelet before:
working set = usage - inactive_file, available = limit - working set (unset when there
is no limit: kubelet reads "unset" as "no bound", 0 would read as "out of memory"),
rss = anon (+ swap cache) memory, PSI totals in nanoseconds.
"""

from __future__ import annotations

from collections.abc import Sequence

from cri.api import api_pb2 as pb
from cri.stats.disk import LayerUsage
from cri.stats.network import DEFAULT_INTERFACE, InterfaceCounters
from sandbox.linux.cgroups.manager import empty_stats
from sandbox.linux.cgroups.types import CgroupStats, PsiData

# Counters that add up across cgroups (a pod without a cgroup of its own is the sum of
# its pause's and containers' leaves).
_ADDITIVE = (
    "cpu_usage_ns",
    "cpu_user_ns",
    "cpu_system_ns",
    "cpu_nr_periods",
    "cpu_nr_throttled",
    "cpu_throttled_ns",
    "memory_usage_bytes",
    "memory_working_set_bytes",
    "memory_rss_bytes",
    "memory_cache_bytes",
    "memory_swap_usage_bytes",
    "memory_page_faults",
    "memory_major_page_faults",
    "memory_kernel_bytes",
    "memory_mapped_file_bytes",
    "memory_failcnt",
    "pids_current",
    "oom_kill_count",
)


def _u64(value: int) -> pb.UInt64Value:
    return pb.UInt64Value(value=max(0, value))


def psi(lines: dict[str, PsiData] | None) -> pb.PsiStats | None:
    """The PSI of one resource (None when the kernel gave none)."""
    if not lines:
        return None
    result = pb.PsiStats()
    for kind, target in (("some", result.Some), ("full", result.Full)):
        data = lines.get(kind)
        if data is not None:
            target.Total = data["total_us"] * 1000
            target.Avg10 = data["avg10"]
            target.Avg60 = data["avg60"]
            target.Avg300 = data["avg300"]
    return result


def cpu_usage(stats: CgroupStats, timestamp_ns: int, nano_cores: int | None) -> pb.CpuUsage:
    """CpuUsage: cumulative core-nanoseconds, the rate when known, CPU PSI."""
    usage = pb.CpuUsage(timestamp=timestamp_ns, usage_core_nano_seconds=_u64(stats["cpu_usage_ns"]))
    if nano_cores is not None:
        usage.usage_nano_cores.value = nano_cores
    pressure = psi(stats["pressure"].get("cpu"))
    if pressure is not None:
        usage.psi.CopyFrom(pressure)
    return usage


def memory_usage(stats: CgroupStats, timestamp_ns: int) -> pb.MemoryUsage:
    """MemoryUsage from a cgroup's memory counters."""
    usage = pb.MemoryUsage(
        timestamp=timestamp_ns,
        working_set_bytes=_u64(stats["memory_working_set_bytes"]),
        usage_bytes=_u64(stats["memory_usage_bytes"]),
        rss_bytes=_u64(stats["memory_rss_bytes"]),
        page_faults=_u64(stats["memory_page_faults"]),
        major_page_faults=_u64(stats["memory_major_page_faults"]),
    )
    limit = stats["memory_limit_bytes"]
    if limit > 0:
        usage.available_bytes.value = max(0, limit - stats["memory_working_set_bytes"])
    pressure = psi(stats["pressure"].get("memory"))
    if pressure is not None:
        usage.psi.CopyFrom(pressure)
    return usage


def swap_usage(stats: CgroupStats, timestamp_ns: int) -> pb.SwapUsage:
    """SwapUsage; the available swap only when the swap is limited."""
    usage = pb.SwapUsage(
        timestamp=timestamp_ns, swap_usage_bytes=_u64(stats["memory_swap_usage_bytes"])
    )
    limit = stats["memory_swap_limit_bytes"]
    if limit > 0:
        usage.swap_available_bytes.value = max(0, limit - stats["memory_swap_usage_bytes"])
    return usage


def io_usage(stats: CgroupStats, timestamp_ns: int) -> pb.IoUsage | None:
    """IoUsage (only PSI today): None when the kernel has no I/O pressure for the cgroup."""
    pressure = psi(stats["pressure"].get("io"))
    if pressure is None:
        return None
    return pb.IoUsage(timestamp=timestamp_ns, psi=pressure)


def process_usage(count: int, timestamp_ns: int) -> pb.ProcessUsage:
    """ProcessUsage: how many processes the pod has."""
    return pb.ProcessUsage(timestamp=timestamp_ns, process_count=_u64(count))


def interface_usage(counters: InterfaceCounters) -> pb.NetworkInterfaceUsage:
    """One interface's bytes and errors."""
    return pb.NetworkInterfaceUsage(
        name=counters.name,
        rx_bytes=_u64(counters.rx_bytes),
        rx_errors=_u64(counters.rx_errors),
        tx_bytes=_u64(counters.tx_bytes),
        tx_errors=_u64(counters.tx_errors),
    )


def network_usage(interfaces: Sequence[InterfaceCounters], timestamp_ns: int) -> pb.NetworkUsage:
    """NetworkUsage: eth0 (else the first interface) as the default, the rest listed."""
    usage = pb.NetworkUsage(timestamp=timestamp_ns)
    default = next((i for i in interfaces if i.name == DEFAULT_INTERFACE), None)
    if default is None and interfaces:
        default = interfaces[0]
    for counters in interfaces:
        if counters is default:
            usage.default_interface.CopyFrom(interface_usage(counters))
        else:
            usage.interfaces.append(interface_usage(counters))
    return usage


def filesystem_usage(layer: LayerUsage, mountpoint: str) -> pb.FilesystemUsage:
    """The writable layer's measured size (timestamped with when it was measured)."""
    return pb.FilesystemUsage(
        timestamp=layer.timestamp_ns,
        fs_id=pb.FilesystemIdentifier(mountpoint=mountpoint),
        used_bytes=_u64(layer.used_bytes),
        inodes_used=_u64(layer.inodes_used),
    )


def summed(parts: Sequence[CgroupStats]) -> CgroupStats:
    """The stats of a group of cgroups taken together: counters add up; limits, peaks,
    PSI and per-device figures do not, and are left out (0 / empty)."""
    total = empty_stats()
    for part in parts:
        for key in _ADDITIVE:
            total[key] += part[key]  # type: ignore[literal-required]
    return total
