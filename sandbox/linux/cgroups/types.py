"""The cgroup manager interface and its stats record (see manager.py for the implementations).

Kept apart from manager.py: building a Protocol and a TypedDict costs ~2 ms, which
crib-runtime would otherwise pay on every container start for types only mypy reads.
"""

from __future__ import annotations

from typing import Any, Protocol, TypedDict


class PsiData(TypedDict):
    """One line of a pressure file (`some` or `full`): stall time and its moving averages."""

    total_us: int  # cumulative stall time in microseconds
    avg10: float  # percent of wall time stalled over the last 10 s
    avg60: float
    avg300: float


class IoDeviceStats(TypedDict):
    """Block I/O of one device (v2 io.stat, v1 blkio.throttle.io_service*_recursive)."""

    major: int
    minor: int
    read_bytes: int
    write_bytes: int
    reads: int
    writes: int


class HugetlbStats(TypedDict):
    """Huge page usage for one page size ("2MB", "1GB")."""

    usage_bytes: int
    max_usage_bytes: int  # 0 on v2, which does not record a peak


class CgroupStats(TypedDict):
    """A snapshot of one container's cgroup; 0 where the host does not account a value.

    cpu_* in nanoseconds; memory_working_set_bytes = usage - inactive_file (what kubelet's
    eviction and `kubectl top` use, as cAdvisor and containerd compute it).
    """

    cpu_usage_ns: int
    cpu_user_ns: int
    cpu_system_ns: int
    cpu_nr_periods: int
    cpu_nr_throttled: int
    cpu_throttled_ns: int
    memory_usage_bytes: int
    memory_working_set_bytes: int
    memory_rss_bytes: int
    memory_cache_bytes: int
    memory_limit_bytes: int
    memory_swap_usage_bytes: int
    memory_page_faults: int
    memory_major_page_faults: int
    pids_current: int
    pids_limit: int
    oom_kill_count: int
    memory_max_usage_bytes: int  # v1 memory.max_usage_in_bytes, v2 memory.peak (5.19+)
    memory_failcnt: int  # times usage hit the limit (v1 memory.failcnt, v2 events "max")
    memory_kernel_bytes: int  # v1 memory.kmem.usage_in_bytes, v2 memory.stat kernel
    memory_mapped_file_bytes: int
    memory_swap_limit_bytes: int  # swap alone; 0 = unlimited or no swap accounting
    # "cpu" / "memory" / "io" -> "some" / "full" -> data; empty where the kernel has no
    # PSI for the cgroup (v1 hierarchies, CONFIG_PSI off, psi=0 on the command line)
    pressure: dict[str, dict[str, PsiData]]
    io: list[IoDeviceStats]
    hugetlb: dict[str, HugetlbStats]


class CgroupManager(Protocol):
    """What crib-runtime and the stats code need of a container's cgroup."""

    cgroups_path: str

    @property
    def unified(self) -> bool:
        """True for cgroup v2."""

    def dirs(self) -> dict[str, str]:
        """Hierarchy name -> the container's directory ("" is the only key on v2)."""

    def exists(self) -> bool:
        """Whether the container's cgroup directory exists."""

    def create(self) -> None:
        """mkdir the container's cgroup (and its parents) in every hierarchy."""

    def add_process(self, pid: int) -> None:
        """Move `pid` into the cgroup (cgroup.procs)."""

    def apply(self, resources: Any) -> list[str]:
        """Write an OCI `linux.resources`; returns warnings for what this host cannot do."""

    def pids(self) -> list[int]:
        """The processes in the cgroup (cgroup.procs)."""

    def stats(self) -> CgroupStats:
        """Current usage and limits."""

    def oom_kill_count(self) -> int:
        """How many processes the OOM killer killed in this cgroup."""

    def destroy(self, timeout_s: float = 5.0) -> None:
        """rmdir the container's cgroup, waiting for exiting processes to leave."""
