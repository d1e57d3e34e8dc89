"""linux.resources, process.oomScoreAdj and linux.cgroupsPath.

    CRI LinuxContainerResources     OCI
    ---------------------------     -----------------------------------------------
    cpu_shares                      linux.resources.cpu.shares (v2: the runtime maps it to
                                    cpu.weight)
    cpu_quota / cpu_period          linux.resources.cpu.quota / .period
    cpuset_cpus / cpuset_mems       linux.resources.cpu.cpus / .mems
    memory_limit_in_bytes           linux.resources.memory.limit, and memory.swap = the same
                                    value unless memory_swap_limit_in_bytes says otherwise, so
                                    that a container does not swap by default (containerd,
                                    CRI-O); only when the host has a swap controller
    hugepage_limits                 linux.resources.hugepageLimits (skipped without the hugetlb
                                    controller, as CRI-O and containerd's default)
    unified                         linux.resources.unified (cgroup v2 only)
    oom_score_adj                   process.oomScoreAdj, raised to the floor crib can set

Zero means "not specified" for every number (api.proto). No rlimits are set: containerd sets
none for CRI containers (containerd/cri#515) and CRI-O only those configured, so a container
inherits the runtime's limits.
"""

from __future__ import annotations

import re

from cri.specgen.errors import SpecInvalidError
from cri.specgen.inputs import Spec, SpecInputs

# OCI hugepageLimits[].pageSize pattern (config-linux.md, "Huge page limits").
_PAGE_SIZE = re.compile(r"^[1-9][0-9]*[KMG]B$")
# oom_score_adj range, proc(5).
OOM_SCORE_ADJ_MIN = -1000
OOM_SCORE_ADJ_MAX = 1000
# cgroupfs: the container's cgroup below the pod's; systemd: "slice:prefix:name".
CGROUP_PREFIX = "crib"
DEFAULT_CGROUPFS_PARENT = "/crib"
DEFAULT_SYSTEMD_PARENT = "system.slice"


def container_cgroups_path(cgroup_parent: str, container_id: str, driver: str) -> str:
    """linux.cgroupsPath for a container below `cgroup_parent`.

    cgroupfs: "<parent>/crib-<container_id>"; systemd: "<parent slice>:crib:<container_id>"
    (runc's and crun's format for the systemd driver; a cgroupfs path given to the systemd
    driver fails with "expected cgroupsPath to be of format slice:prefix:name").
    """
    if driver == "systemd":
        return f"{cgroup_parent or DEFAULT_SYSTEMD_PARENT}:{CGROUP_PREFIX}:{container_id}"
    if driver != "cgroupfs":
        raise SpecInvalidError(f"cgroup driver {driver!r} is not cgroupfs or systemd")
    parent = cgroup_parent or DEFAULT_CGROUPFS_PARENT
    if not parent.startswith("/"):
        parent = "/" + parent
    return f"{parent.rstrip('/')}/{CGROUP_PREFIX}-{container_id}"


def with_cgroups_path(spec: Spec, inputs: SpecInputs) -> Spec:
    """linux.cgroupsPath: the container's cgroup under the pod's cgroup parent."""
    spec["linux"]["cgroupsPath"] = container_cgroups_path(
        inputs.cgroup_parent, inputs.container_id, inputs.cgroup_driver
    )
    return spec


def _positive(value: int, field: str) -> int:
    if value < 0:
        raise SpecInvalidError(f"{field} {value} is negative")
    return value


def with_resources(spec: Spec, inputs: SpecInputs) -> Spec:
    """CPU, memory, hugepage and unified limits plus oom_score_adj (module docstring)."""
    if not inputs.config.linux.HasField("resources"):
        return spec
    res = inputs.config.linux.resources
    resources = spec["linux"].setdefault("resources", {})

    cpu: dict[str, object] = {}
    if res.cpu_shares:
        cpu["shares"] = _positive(res.cpu_shares, "cpu_shares")
    if res.cpu_quota:
        # -1 is "no limit" in cgroup v1's cpu.cfs_quota_us; other negatives are nonsense.
        if res.cpu_quota < -1:
            raise SpecInvalidError(f"cpu_quota {res.cpu_quota} is invalid")
        cpu["quota"] = res.cpu_quota
    if res.cpu_period:
        cpu["period"] = _positive(res.cpu_period, "cpu_period")
    if res.cpuset_cpus:
        cpu["cpus"] = res.cpuset_cpus
    if res.cpuset_mems:
        cpu["mems"] = res.cpuset_mems
    if cpu:
        resources["cpu"] = cpu

    memory: dict[str, object] = {}
    limit = res.memory_limit_in_bytes
    swap = res.memory_swap_limit_in_bytes
    if limit:
        memory["limit"] = _positive(limit, "memory_limit_in_bytes")
        if swap > 0 and swap < limit:
            raise SpecInvalidError(
                f"memory_swap_limit_in_bytes {swap} is lower than memory_limit_in_bytes {limit}"
            )
        if inputs.host.swap_controller:
            # OCI memory.swap is memory + swap (cgroup v1 memsw semantics); -1 = unlimited.
            memory["swap"] = swap if swap else limit
    elif swap and inputs.host.swap_controller:
        memory["swap"] = swap
    if memory:
        resources["memory"] = memory

    if res.hugepage_limits and inputs.host.hugetlb_controller:
        limits = []
        for hugepage in res.hugepage_limits:
            if not _PAGE_SIZE.match(hugepage.page_size):
                raise SpecInvalidError(
                    f"hugepage page_size {hugepage.page_size!r} is not like 2MB or 1GB"
                )
            limits.append({"pageSize": hugepage.page_size, "limit": hugepage.limit})
        resources["hugepageLimits"] = limits

    if res.unified:
        if not inputs.host.cgroup_v2:
            raise SpecInvalidError(
                f"unified resources {sorted(res.unified)} need a cgroup v2 host; this host "
                "uses cgroup v1"
            )
        for key in res.unified:
            if "/" in key or key.startswith(".") or "." not in key:
                raise SpecInvalidError(f"unified resource {key!r} is not a cgroup v2 file name")
        resources["unified"] = dict(sorted(res.unified.items()))

    adj = res.oom_score_adj
    if not OOM_SCORE_ADJ_MIN <= adj <= OOM_SCORE_ADJ_MAX:
        raise SpecInvalidError(f"oom_score_adj {adj} is outside -1000..1000")
    floor = inputs.host.min_oom_score_adj
    if floor is not None and adj < floor:
        adj = floor
    spec["process"]["oomScoreAdj"] = adj
    return spec
