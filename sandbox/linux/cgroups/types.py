"""The cgroup manager interface and its stats record (see manager.py for the implementations).

Kept apart from manager.py: building a Protocol and a TypedDict costs ~2 ms, which
crib-runtime would otherwise pay on every container start for types only mypy reads.
"""

from __future__ import annotations

from typing import Any, Protocol, TypedDict


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
