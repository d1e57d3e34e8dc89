"""What spec generation needs (`SpecInputs`, `HostFacts`) and what it returns (`GeneratedSpec`).

Everything the `with_*` functions read is in `SpecInputs`; they do no I/O. The few facts that
need the host (device nodes, mount propagation, a Localhost seccomp profile) come through
the callables in `HostFacts`, so tests pass fakes and `cri.specgen.host` holds the real ones.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from cri.api import api_pb2 as pb
from cri.specgen.errors import SpecInputError

# The OCI runtime spec is built as plain JSON data (the content of config.json).
Spec = dict[str, Any]

# Namespace kinds as named under /proc/<pid>/ns/ and in the pod's pins
# (<state>/ns/<kind>/<sandbox_id>), mapped to their OCI `linux.namespaces[].type`.
NAMESPACE_KINDS = {
    "net": "network",
    "ipc": "ipc",
    "uts": "uts",
    "pid": "pid",
    "user": "user",
}


@dataclasses.dataclass(frozen=True)
class HostDevice:
    """One device node on the host, as stat(2) describes it (`type` is OCI's c, b or p)."""

    path: str
    type: str
    major: int
    minor: int
    file_mode: int
    uid: int
    gid: int


def _no_device_lookup(path: str) -> Sequence[HostDevice]:
    raise SpecInputError(f"no host device lookup configured to resolve {path!r}")


def _no_host_devices() -> Sequence[HostDevice]:
    raise SpecInputError("no host device listing configured for a privileged container")


def _no_profile_reader(path: str) -> bytes:
    raise SpecInputError(f"no seccomp profile reader configured to read {path!r}")


@dataclasses.dataclass(frozen=True)
class HostFacts:
    """What spec generation needs to know about the host; `cri.specgen.host.probe` fills it.

    The defaults describe a minimal cgroup v1 host with no optional features, so a fact a
    test forgets to set never enables something by accident.
    """

    # Go GOARCH-style name of the host architecture (amd64, arm64, s390x, ...): the
    # vocabulary of seccomp profiles' `includes.arches` and `archMap`.
    arch: str = "amd64"
    # (major, minor) of the running kernel; seccomp `minKernel` rules compare against it.
    kernel_version: tuple[int, int] = (0, 0)
    # /sys/fs/cgroup is cgroup2 (unified): containers get a cgroup namespace.
    cgroup_v2: bool = False
    # The kernel has mount_setattr(2) (>= 5.12) and the runtime handler applies "rro".
    recursive_read_only: bool = False
    apparmor_enabled: bool = False
    # Profile applied for AppArmor RuntimeDefault when AppArmor is enabled ("" = none).
    apparmor_default_profile: str = ""
    # Every capability this host can grant (known to the kernel and in crib's bounding
    # set), in capability-number order: what "privileged" and add ALL mean here.
    capabilities: tuple[str, ...] = ()
    # memory.memsw (v1) / memory.swap.max (v2) exists: the swap limit can be set.
    swap_controller: bool = False
    # The hugetlb controller exists; without it hugepage limits are skipped.
    hugetlb_controller: bool = False
    # Without CAP_SYS_RESOURCE a process cannot lower its oom_score_adj: a requested value
    # below this floor is raised to it (containerd's restrict_oom_score_adj). None = no floor.
    min_oom_score_adj: int | None = None
    # The node's hostname, used for HOSTNAME when the pod names none (host network).
    hostname: str = ""
    # Options of the host's cgroup2 mount that must survive a container mounting the same
    # superblock without a cgroup namespace (nsdelegate, memory_recursiveprot).
    cgroup_mount_options: tuple[str, ...] = ()
    # Seams: device nodes under a host path (a directory gives every device below it),
    lookup_devices: Callable[[str], Sequence[HostDevice]] = _no_device_lookup
    # every device node of the host (privileged containers),
    host_devices: Callable[[], Sequence[HostDevice]] = _no_host_devices
    # the propagation ("shared", "slave" or "private") of the mount holding a host path,
    # or None to skip the check,
    mount_propagation: Callable[[str], str] | None = None
    # and the bytes of a Localhost seccomp profile.
    read_seccomp_profile: Callable[[str], bytes] = _no_profile_reader


@dataclasses.dataclass(frozen=True)
class PasswdEntry:
    """One line of an image's /etc/passwd."""

    name: str
    uid: int
    gid: int
    home: str = ""


@dataclasses.dataclass(frozen=True)
class GroupEntry:
    """One line of an image's /etc/group."""

    name: str
    gid: int
    members: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class UserDatabase:
    """An image's /etc/passwd and /etc/group, parsed (`cri.specgen.rootfs` reads them)."""

    passwd: tuple[PasswdEntry, ...] = ()
    group: tuple[GroupEntry, ...] = ()

    def user_by_name(self, name: str) -> PasswdEntry | None:
        """The first passwd entry named `name` (the C library also takes the first)."""
        return next((u for u in self.passwd if u.name == name), None)

    def user_by_uid(self, uid: int) -> PasswdEntry | None:
        """The first passwd entry with `uid`."""
        return next((u for u in self.passwd if u.uid == uid), None)

    def group_by_name(self, name: str) -> GroupEntry | None:
        """The first group entry named `name`."""
        return next((g for g in self.group if g.name == name), None)

    def groups_of(self, username: str) -> list[int]:
        """GIDs of the groups that list `username` as a member, in file order."""
        return [g.gid for g in self.group if username in g.members]


@dataclasses.dataclass(frozen=True)
class PodFiles:
    """Files the pod prepared for its containers; None = the pod has none (not mounted)."""

    hostname_path: str | None = None
    hosts_path: str | None = None
    resolv_conf_path: str | None = None
    # The pod's /dev/shm (a tmpfs the pod owns), or the host's /dev/shm for host IPC.
    shm_path: str | None = None


@dataclasses.dataclass(frozen=True)
class SpecInputs:
    """Everything `generate` reads. Build one per CreateContainer."""

    container_id: str
    sandbox_id: str
    config: pb.ContainerConfig
    sandbox_config: pb.PodSandboxConfig
    # The `config` object of the image's OCI config JSON (Entrypoint, Cmd, Env,
    # WorkingDir, User, StopSignal, Volumes, Labels), capitalised as in the image spec.
    image_config: Mapping[str, Any]
    # The image's name as the image store knows it; ImageSpec.user_specified_image wins
    # for the image-name annotation when kubelet sends it.
    image_name: str
    # Absolute host path of the mounted container root filesystem.
    rootfs_path: str
    # The pod's namespace pins by kind ("net", "ipc", "uts", "pid", "user"): present
    # exactly for the namespaces the pod created (host namespaces have none).
    namespace_paths: Mapping[str, str]
    pod_files: PodFiles
    # The pod's cgroup parent (kubelet's PodSandboxConfig.linux.cgroup_parent, or the
    # pod issue's default when kubelet sent none) and the driver that names cgroups.
    cgroup_parent: str
    cgroup_driver: str = "cgroupfs"
    # NamespaceMode TARGET: the pid of the target container's init process.
    target_pid: int | None = None
    # Mount.image volumes: container_path -> host directory of that image's read-only
    # root, with image_sub_path already resolved inside it (see cri.specgen.rootfs).
    image_volumes: Mapping[str, str] = dataclasses.field(default_factory=dict)
    user_db: UserDatabase = dataclasses.field(default_factory=UserDatabase)
    host: HostFacts = dataclasses.field(default_factory=HostFacts)

    @property
    def security_context(self) -> pb.LinuxContainerSecurityContext:
        """The container's Linux security context (an empty message when unset)."""
        return self.config.linux.security_context

    @property
    def privileged(self) -> bool:
        """Whether the container asked to be privileged."""
        return self.config.linux.security_context.privileged


@dataclasses.dataclass(frozen=True)
class ContainerUser:
    """The identity the container's first process runs as (ContainerStatus.user)."""

    uid: int
    gid: int
    supplemental_groups: tuple[int, ...]

    def to_proto(self) -> pb.ContainerUser:
        """This identity as CRI's ContainerUser message."""
        return pb.ContainerUser(
            linux=pb.LinuxContainerUser(
                uid=self.uid, gid=self.gid, supplemental_groups=list(self.supplemental_groups)
            )
        )


@dataclasses.dataclass(frozen=True)
class RootfsDir:
    """A directory that must exist in the container's root filesystem before it starts.

    Create it rooted (no symlink in the image may lead outside the rootfs), mode 0755,
    owned by `uid`:`gid` when they are set, and leave an existing directory alone.
    """

    path: str
    uid: int | None = None
    gid: int | None = None


@dataclasses.dataclass(frozen=True)
class GeneratedSpec:
    """The result of `generate`: the OCI spec plus what the caller needs around it."""

    spec: Spec
    # PodSandboxConfig.log_directory joined with ContainerConfig.log_path ("" = no log).
    log_path: str
    user: ContainerUser
    # process.cwd, and the directories to create in the rootfs (working dir, image volumes).
    working_dir: str
    dirs_to_create: tuple[RootfsDir, ...]
    # Signal number StopContainer sends: config stop_signal, else the image's, else SIGTERM.
    stop_signal: int
    # "unconfined", "runtime/default" or "localhost/<path>", for verbose status.
    seccomp_profile: str
