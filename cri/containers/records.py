"""Container records (RecordStore kind "container", version 1) and their state machine.

     CreateContainer: name reserved, record written
                       │
                       ▼
                 ┌──────────┐  rootfs, bundle, spec, conmon +     ┌─────────┐
                 │ CREATING ├────────────────────────────────────►│ CREATED │
                 └────┬─────┘  `runtime create` done              └────┬────┘
  failure, every undo │  failure and an undo failed, or crib           │ StartContainer
  succeeded: record   │  restarted mid-way and could not clean up      ▼
  deleted, name freed ▼                                           ┌─────────┐
                   (gone)   ┌─────────┐                           │ RUNNING │
                            │ UNKNOWN │                           └────┬────┘
                            └────┬────┘                                │
         Stop (kills what may    │      the init exited (conmon's exit │ file), StopContainer,
         be left)                ▼      a failed start, or Stop/Remove │ of a CREATED one
                      ┌──────────────────────────────────────────┐     │
                      │ EXITED (exit code, reason, finished at)  │◄────┘
                      └─────────────────────┬────────────────────┘
                                            │ RemoveContainer (also from any other state:
                                            ▼ it kills first)
                                         (gone)

CRI sees CREATING and UNKNOWN as CONTAINER_UNKNOWN (CREATING ones are not listed: kubelet
must not act on a creation in flight). Metadata never changes after the record is
written; what is learnt later (pid, conmon pid, the user the spec resolved, the resources
after UpdateContainerResources, the exit) is status.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any, Self

from sandbox.monitor import proc

RECORD_KIND = "container"
RECORD_VERSION = 1


class ContainerState(enum.Enum):
    """Lifecycle states (see the diagram above)."""

    CREATING = "creating"
    CREATED = "created"
    RUNNING = "running"
    EXITED = "exited"
    UNKNOWN = "unknown"


# Allowed transitions; anything else is a bug in crib.
TRANSITIONS: dict[ContainerState, frozenset[ContainerState]] = {
    ContainerState.CREATING: frozenset({ContainerState.CREATED, ContainerState.UNKNOWN}),
    ContainerState.CREATED: frozenset({ContainerState.RUNNING, ContainerState.EXITED}),
    ContainerState.RUNNING: frozenset({ContainerState.EXITED}),
    ContainerState.EXITED: frozenset({ContainerState.EXITED}),
    ContainerState.UNKNOWN: frozenset({ContainerState.EXITED, ContainerState.UNKNOWN}),
}

# States in which a process of the container may exist.
LIVE_STATES = frozenset({ContainerState.CREATED, ContainerState.RUNNING})


def check_transition(old: ContainerState, new: ContainerState) -> None:
    """Raise `ValueError` for a transition the state machine does not have."""
    if new not in TRANSITIONS[old]:
        raise ValueError(f"container state {old.value} cannot become {new.value}")


@dataclasses.dataclass(frozen=True)
class ContainerMetadata:
    """What CreateContainer decided; written once with the record."""

    name: str
    attempt: int
    cri_name: str  # k8s_<name>_<pod name>_<pod namespace>_<pod uid>_<attempt>
    sandbox_id: str
    created_at_ns: int
    runtime_handler: str
    image_id: str  # the image's config digest: Image.id, image_ref and image_id everywhere
    image_name: str  # the name the image store knows it by (a repo tag, else its id)
    labels: dict[str, str]
    annotations: dict[str, str]
    log_path: str  # log_directory joined with log_path; "" = no log
    bundle_dir: str  # config.json, rootfs mount point, conmon's pidfiles, attach, ctl, oom
    persist_dir: str  # conmon's `exit` and `oom` files (kept on persistent storage)
    cgroups_path: str  # OCI linux.cgroupsPath
    tty: bool
    stdin: bool
    stdin_once: bool
    # The whole ContainerConfig as protobuf JSON (mounts, image spec, resources, ...).
    config: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """JSON for the record file."""
        return {
            "name": self.name,
            "attempt": self.attempt,
            "cri_name": self.cri_name,
            "sandbox_id": self.sandbox_id,
            "created_at_ns": self.created_at_ns,
            "runtime_handler": self.runtime_handler,
            "image_id": self.image_id,
            "image_name": self.image_name,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "log_path": self.log_path,
            "bundle_dir": self.bundle_dir,
            "persist_dir": self.persist_dir,
            "cgroups_path": self.cgroups_path,
            "tty": self.tty,
            "stdin": self.stdin,
            "stdin_once": self.stdin_once,
            "config": self.config,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        """Read the record file's JSON."""
        return cls(
            name=str(data["name"]),
            attempt=int(data["attempt"]),
            cri_name=str(data["cri_name"]),
            sandbox_id=str(data["sandbox_id"]),
            created_at_ns=int(data["created_at_ns"]),
            runtime_handler=str(data["runtime_handler"]),
            image_id=str(data["image_id"]),
            image_name=str(data["image_name"]),
            labels={str(k): str(v) for k, v in data["labels"].items()},
            annotations={str(k): str(v) for k, v in data["annotations"].items()},
            log_path=str(data["log_path"]),
            bundle_dir=str(data["bundle_dir"]),
            persist_dir=str(data["persist_dir"]),
            cgroups_path=str(data["cgroups_path"]),
            tty=bool(data["tty"]),
            stdin=bool(data["stdin"]),
            stdin_once=bool(data["stdin_once"]),
            config=dict(data["config"]),
        )


@dataclasses.dataclass(frozen=True)
class Process:
    """A process crib watches but does not parent: pid + start time (the PID-reuse guard)."""

    pid: int
    start_time: int

    def is_alive(self) -> bool:
        """Whether this very process still runs (not a zombie, not a recycled pid)."""
        return proc.is_alive(self.pid, self.start_time)


@dataclasses.dataclass(frozen=True)
class ContainerStatus:
    """What is known about the container now."""

    state: ContainerState
    init: Process | None = None  # the container's first process (runtime create's pid)
    conmon: Process | None = None  # conmon's monitor process (the init's subreaper)
    started_at_ns: int = 0
    finished_at_ns: int = 0
    exit_code: int = 0
    # "Completed", "Error", "OOMKilled", "StartError", ... (ContainerStatus.reason)
    reason: str = ""
    # For operators and kubelet: why it is UNKNOWN, or why a start failed.
    message: str = ""
    # The identity the spec resolved (ContainerStatus.user): uid, gid, supplemental groups.
    uid: int = 0
    gid: int = 0
    supplemental_groups: tuple[int, ...] = ()
    stop_signal: int = 15
    seccomp_profile: str = ""
    # The container's resources now (LinuxContainerResources as protobuf JSON).
    resources: dict[str, Any] = dataclasses.field(default_factory=dict)
    # After the exit: the runtime's state, the cgroup and the mounts are released already
    # (Remove then only deletes files and the record).
    released: bool = False

    def to_json(self) -> dict[str, Any]:
        """JSON for the status file."""
        return {
            "state": self.state.value,
            "init": dataclasses.asdict(self.init) if self.init else None,
            "conmon": dataclasses.asdict(self.conmon) if self.conmon else None,
            "started_at_ns": self.started_at_ns,
            "finished_at_ns": self.finished_at_ns,
            "exit_code": self.exit_code,
            "reason": self.reason,
            "message": self.message,
            "uid": self.uid,
            "gid": self.gid,
            "supplemental_groups": list(self.supplemental_groups),
            "stop_signal": self.stop_signal,
            "seccomp_profile": self.seccomp_profile,
            "resources": self.resources,
            "released": self.released,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        """Read the status file's JSON."""
        init = data.get("init")
        conmon = data.get("conmon")
        return cls(
            state=ContainerState(data["state"]),
            init=Process(int(init["pid"]), int(init["start_time"])) if init else None,
            conmon=Process(int(conmon["pid"]), int(conmon["start_time"])) if conmon else None,
            started_at_ns=int(data["started_at_ns"]),
            finished_at_ns=int(data["finished_at_ns"]),
            exit_code=int(data["exit_code"]),
            reason=str(data["reason"]),
            message=str(data["message"]),
            uid=int(data["uid"]),
            gid=int(data["gid"]),
            supplemental_groups=tuple(int(g) for g in data["supplemental_groups"]),
            stop_signal=int(data["stop_signal"]),
            seccomp_profile=str(data["seccomp_profile"]),
            resources=dict(data["resources"]),
            released=bool(data.get("released", False)),
        )

    def moved_to(self, state: ContainerState, **changes: Any) -> ContainerStatus:
        """A copy in `state` with `changes`; refuses transitions the machine lacks."""
        check_transition(self.state, state)
        return dataclasses.replace(self, state=state, **changes)
