"""Sandbox records (RecordStore kind "sandbox", version 1) and their state machine.

              RunPodSandbox: name reserved, record written
                              │
                              ▼
                        ┌──────────┐  every acquisition done   ┌───────┐
                        │ CREATING ├──────────────────────────►│ READY │
                        └────┬─────┘                           └───┬───┘
        failure, every undo  │  failure, an undo failed;           │ StopPodSandbox, or the
        succeeded: record    │  crib restarted mid-way             │ pause exited, or after
        deleted, name freed  ▼                                     ▼ a restart it is not alive
                         (gone)    ┌─────────────────────────────────────┐
                                   │ NOT_READY  (Stop/Remove finish what │
                                   │ is left; Stop is repeatable)        │
                                   └──────────────────┬──────────────────┘
                                                      │ RemovePodSandbox
                                                      ▼
                                                   (gone)

CRI sees CREATING and NOT_READY as SANDBOX_NOTREADY. Metadata never changes after the
record is written; everything learnt later (pause pid, pins, CNI attachment, IPs) is
status. Teardown steps are idempotent, so a NOT_READY record with any subset of its
resources still held is finished by Stop + Remove.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any, Self

from cni.cache import Attachment
from cni.manager import PortMapping
from sandbox.pod.files import DnsConfig
from sandbox.pod.pause import PauseProcess
from sandbox.pod.spec import PidMode, PodNamespaces

RECORD_KIND = "sandbox"
RECORD_VERSION = 1


class SandboxState(enum.Enum):
    """Lifecycle states (see the diagram above)."""

    CREATING = "creating"
    READY = "ready"
    NOT_READY = "not_ready"


# Allowed transitions; anything else is a bug in crib.
TRANSITIONS: dict[SandboxState, frozenset[SandboxState]] = {
    SandboxState.CREATING: frozenset({SandboxState.READY, SandboxState.NOT_READY}),
    SandboxState.READY: frozenset({SandboxState.NOT_READY}),
    SandboxState.NOT_READY: frozenset({SandboxState.NOT_READY}),
}


def check_transition(old: SandboxState, new: SandboxState) -> None:
    """Raise `ValueError` for a transition the state machine does not have."""
    if new not in TRANSITIONS[old]:
        raise ValueError(f"sandbox state {old.value} cannot become {new.value}")


@dataclasses.dataclass(frozen=True)
class SandboxMetadata:
    """What RunPodSandbox decided; written once with the record."""

    name: str
    namespace: str
    uid: str
    attempt: int
    cri_name: str  # k8s_POD_<name>_<namespace>_<uid>_<attempt>
    created_at_ns: int
    runtime_handler: str
    labels: dict[str, str]
    annotations: dict[str, str]
    hostname: str
    log_directory: str
    cgroup_parent: str  # as kubelet gave it ("" = crib's default)
    cgroups_path: str  # the pause's leaf (OCI linux.cgroupsPath)
    namespaces: PodNamespaces
    port_mappings: tuple[PortMapping, ...]
    dns: DnsConfig
    sysctls: dict[str, str]
    run_dir: str  # hostname, resolv.conf, hosts, shm, the pause bundle
    # The whole PodSandboxConfig as protobuf JSON, for the containers of the pod.
    config: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """JSON for the record file."""
        return {
            "name": self.name,
            "namespace": self.namespace,
            "uid": self.uid,
            "attempt": self.attempt,
            "cri_name": self.cri_name,
            "created_at_ns": self.created_at_ns,
            "runtime_handler": self.runtime_handler,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "hostname": self.hostname,
            "log_directory": self.log_directory,
            "cgroup_parent": self.cgroup_parent,
            "cgroups_path": self.cgroups_path,
            "namespaces": {
                "host_network": self.namespaces.host_network,
                "host_ipc": self.namespaces.host_ipc,
                "pid": self.namespaces.pid.value,
            },
            "port_mappings": [dataclasses.asdict(m) for m in self.port_mappings],
            "dns": {
                "servers": list(self.dns.servers),
                "searches": list(self.dns.searches),
                "options": list(self.dns.options),
            },
            "sysctls": dict(self.sysctls),
            "run_dir": self.run_dir,
            "config": self.config,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        """Read the record file's JSON."""
        ns = data["namespaces"]
        dns = data["dns"]
        return cls(
            name=str(data["name"]),
            namespace=str(data["namespace"]),
            uid=str(data["uid"]),
            attempt=int(data["attempt"]),
            cri_name=str(data["cri_name"]),
            created_at_ns=int(data["created_at_ns"]),
            runtime_handler=str(data["runtime_handler"]),
            labels={str(k): str(v) for k, v in data["labels"].items()},
            annotations={str(k): str(v) for k, v in data["annotations"].items()},
            hostname=str(data["hostname"]),
            log_directory=str(data["log_directory"]),
            cgroup_parent=str(data["cgroup_parent"]),
            cgroups_path=str(data["cgroups_path"]),
            namespaces=PodNamespaces(
                host_network=bool(ns["host_network"]),
                host_ipc=bool(ns["host_ipc"]),
                pid=PidMode(ns["pid"]),
            ),
            port_mappings=tuple(PortMapping(**m) for m in data["port_mappings"]),
            dns=DnsConfig(
                servers=tuple(dns["servers"]),
                searches=tuple(dns["searches"]),
                options=tuple(dns["options"]),
            ),
            sysctls={str(k): str(v) for k, v in data["sysctls"].items()},
            run_dir=str(data["run_dir"]),
            config=dict(data["config"]),
        )


@dataclasses.dataclass(frozen=True)
class SandboxStatus:
    """What is known about the sandbox now."""

    state: SandboxState
    pause: PauseProcess | None = None
    # /proc/<pid>/ns kind -> pin path, for the namespaces pinned so far
    namespace_paths: dict[str, str] = dataclasses.field(default_factory=dict)
    attachment: Attachment | None = None
    ips: tuple[str, ...] = ()
    # True once CNI DEL succeeded (or for host-network pods, which have no attachment)
    network_torn_down: bool = False
    stopped_at_ns: int = 0
    # Why the sandbox is NOT_READY, for operators (Status verbose info, logs)
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        """JSON for the status file."""
        return {
            "state": self.state.value,
            "pause": dataclasses.asdict(self.pause) if self.pause else None,
            "namespace_paths": dict(self.namespace_paths),
            "attachment": self.attachment.to_json() if self.attachment else None,
            "ips": list(self.ips),
            "network_torn_down": self.network_torn_down,
            "stopped_at_ns": self.stopped_at_ns,
            "message": self.message,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        """Read the status file's JSON."""
        pause = data.get("pause")
        attachment = data.get("attachment")
        return cls(
            state=SandboxState(data["state"]),
            pause=PauseProcess(**pause) if pause else None,
            namespace_paths={str(k): str(v) for k, v in data["namespace_paths"].items()},
            attachment=Attachment.from_json(attachment) if attachment else None,
            ips=tuple(str(ip) for ip in data["ips"]),
            network_torn_down=bool(data["network_torn_down"]),
            stopped_at_ns=int(data["stopped_at_ns"]),
            message=str(data.get("message", "")),
        )

    def moved_to(self, state: SandboxState, **changes: Any) -> SandboxStatus:
        """A copy in `state` with `changes`; refuses transitions the machine lacks."""
        check_transition(self.state, state)
        return dataclasses.replace(self, state=state, **changes)
