"""The pause process's OCI runtime config (config.json), built by a pure function.

The pause holds the pod's namespaces and does nothing else, so it gets as little as
possible: no capabilities, no_new_privileges, a read-only root holding only the pause
binary, /proc and a small /dev, cpu shares 2 (CRI-O's and containerd's infra value), and
its own leaf cgroup under the pod cgroup.

Namespaces (CRI NamespaceOption):
    network  new unless host network          ipc  new unless host IPC
    uts      new unless host network          mount always new (the runtime needs it)
    pid      POD: new, the pause is pid 1 and containers join it
             CONTAINER: new for the pause alone (each container gets its own)
             NODE: the host's
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import Any

OCI_VERSION = "1.0.2"
PAUSE_CPU_SHARES = 2
# kubelet's oom_score_adj for the pause (pkg/kubelet/qos: PodInfraOOMAdj).
PAUSE_OOM_SCORE_ADJ = -998

MASKED_PATHS = (
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
)
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")


class PidMode(enum.Enum):
    """How the pod's processes see PIDs (CRI NamespaceMode, minus TARGET)."""

    POD = "pod"
    CONTAINER = "container"
    NODE = "node"


@dataclasses.dataclass(frozen=True)
class PodNamespaces:
    """Which of the pod's namespaces are the host's."""

    host_network: bool = False
    host_ipc: bool = False
    pid: PidMode = PidMode.POD

    def pause_namespaces(self) -> list[str]:
        """OCI namespace types the pause process gets new."""
        kinds = ["mount"]
        if not self.host_network:
            kinds += ["network", "uts"]
        if not self.host_ipc:
            kinds.append("ipc")
        if self.pid is not PidMode.NODE:
            kinds.append("pid")
        return kinds

    def pinned_kinds(self) -> list[str]:
        """/proc/<pid>/ns names crib pins: the namespaces containers share with the pause."""
        kinds = []
        if not self.host_network:
            kinds += ["net", "uts"]
        if not self.host_ipc:
            kinds.append("ipc")
        if self.pid is PidMode.POD:
            kinds.append("pid")
        return kinds


@dataclasses.dataclass(frozen=True)
class PauseSpec:
    """Everything the pause's config.json depends on."""

    args: tuple[str, ...]  # in-root path of the pause binary, then its arguments
    rootfs: str
    hostname: str
    namespaces: PodNamespaces
    cgroups_path: str
    sysctls: Mapping[str, str] = dataclasses.field(default_factory=dict)
    shm_path: str = ""  # the pod's /dev/shm tmpfs; "" with host IPC
    uid: int = 0
    gid: int = 0
    additional_gids: tuple[int, ...] = ()
    oom_score_adj: int = PAUSE_OOM_SCORE_ADJ
    annotations: Mapping[str, str] = dataclasses.field(default_factory=dict)


def pause_config(spec: PauseSpec) -> dict[str, Any]:
    """The OCI config for the pause process (pure)."""
    mounts: list[dict[str, Any]] = [
        {
            "destination": "/proc",
            "type": "proc",
            "source": "proc",
            "options": ["nosuid", "noexec", "nodev"],
        },
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
        },
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"],
        },
    ]
    if not spec.namespaces.host_ipc:
        mounts.append(
            {
                "destination": "/dev/mqueue",
                "type": "mqueue",
                "source": "mqueue",
                "options": ["nosuid", "noexec", "nodev"],
            }
        )
    if spec.shm_path:
        mounts.append(
            {
                "destination": "/dev/shm",
                "type": "bind",
                "source": spec.shm_path,
                "options": ["rbind", "nosuid", "noexec", "nodev"],
            }
        )
    no_caps: dict[str, list[str]] = {
        "bounding": [],
        "effective": [],
        "inheritable": [],
        "permitted": [],
        "ambient": [],
    }
    user: dict[str, Any] = {"uid": spec.uid, "gid": spec.gid}
    if spec.additional_gids:
        user["additionalGids"] = list(spec.additional_gids)
    linux: dict[str, Any] = {
        "namespaces": [{"type": kind} for kind in spec.namespaces.pause_namespaces()],
        "cgroupsPath": spec.cgroups_path,
        "resources": {
            "devices": [{"allow": False, "access": "rwm"}],
            "cpu": {"shares": PAUSE_CPU_SHARES},
        },
        "maskedPaths": list(MASKED_PATHS),
        "readonlyPaths": list(READONLY_PATHS),
    }
    if spec.sysctls:
        linux["sysctl"] = dict(spec.sysctls)
    config: dict[str, Any] = {
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": False,
            "user": user,
            "args": list(spec.args),
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "cwd": "/",
            "capabilities": no_caps,
            "noNewPrivileges": True,
            "oomScoreAdj": spec.oom_score_adj,
        },
        "root": {"path": spec.rootfs, "readonly": True},
        "mounts": mounts,
        "annotations": dict(spec.annotations),
        "linux": linux,
    }
    if "uts" in spec.namespaces.pause_namespaces() and spec.hostname:
        config["hostname"] = spec.hostname
    return config


def allowed_oom_score_adj(wanted: int, status_path: str = "/proc/self/status") -> int:
    """`wanted`, raised to crib's own oom_score_adj when crib may not go lower.

    Lowering oom_score_adj needs CAP_SYS_RESOURCE (proc(5)); without it the runtime's
    write fails and the pod with it. containerd clamps the same way
    (restrict_oom_score_adj).
    """
    cap_sys_resource = 1 << 24
    try:
        with open(status_path) as f:
            effective = next(int(line.split()[1], 16) for line in f if line.startswith("CapEff:"))
    except (OSError, StopIteration, ValueError):
        effective = 0
    if effective & cap_sys_resource:
        return wanted
    try:
        with open("/proc/self/oom_score_adj") as f:
            current = int(f.read().strip())
    except (OSError, ValueError):
        current = 0
    return max(wanted, current)
