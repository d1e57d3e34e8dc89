"""linux.namespaces: which of the pod's namespaces the container joins, and which it gets new.

    kind     decided by                          NODE   POD (default)        other modes
    -------  ----------------------------------  -----  -------------------  -----------------
    network  sandbox namespace_options.network   host   join pin "net"       -
    uts      follows network (CRI-O, containerd) host   join pin "uts"       -
    ipc      sandbox namespace_options.ipc       host   join pin "ipc"       -
    pid      container namespace_options.pid     host   join pin "pid"       CONTAINER: new
                                                                             TARGET: join
                                                                             /proc/<pid>/ns/pid
    user     container userns_options.mode       host   join pin "user"      CONTAINER: refused
                                                        + id mappings
    mount    always new
    cgroup   new on cgroup v2 hosts unless privileged (CRI-O, containerd); none on v1

"host" means no entry: the host's namespace. Joining is by the pod's pin paths
(<state>/ns/<kind>/<sandbox_id>), never /proc/<pause pid>, so a pause that died cannot make a
container join a recycled pid's namespaces (CRI-O issue 2849).
"""

from __future__ import annotations

from collections.abc import Iterable

from cri.api import api_pb2 as pb
from cri.specgen.errors import SpecInputError, SpecInvalidError, SpecUnsupportedError
from cri.specgen.inputs import Spec, SpecInputs


def _pin(inputs: SpecInputs, kind: str) -> str:
    path = inputs.namespace_paths.get(kind)
    if not path:
        raise SpecInputError(
            f"sandbox {inputs.sandbox_id} has no {kind} namespace pin for container "
            f"{inputs.container_id}"
        )
    return path


def _id_mappings(mappings: Iterable[pb.IDMapping]) -> list[dict[str, int]]:
    return [
        {"containerID": m.container_id, "hostID": m.host_id, "size": m.length} for m in mappings
    ]


def with_namespaces(spec: Spec, inputs: SpecInputs) -> Spec:
    """linux.namespaces (and uid/gid mappings for a pod user namespace); see the module table."""
    pod_ns = inputs.sandbox_config.linux.security_context.namespace_options
    ctr_ns = inputs.security_context.namespace_options
    namespaces: list[dict[str, str]] = []

    if pod_ns.network != pb.NODE:
        namespaces.append({"type": "network", "path": _pin(inputs, "net")})
        namespaces.append({"type": "uts", "path": _pin(inputs, "uts")})
    if pod_ns.ipc != pb.NODE:
        namespaces.append({"type": "ipc", "path": _pin(inputs, "ipc")})

    pid_mode = ctr_ns.pid
    if pid_mode == pb.POD:
        if pod_ns.pid != pb.POD:
            # The pod has no pid namespace of its own to share (kubelet sends POD to both
            # or to neither: shareProcessNamespace).
            raise SpecInvalidError(
                "container pid namespace mode POD needs a pod that shares its pid namespace; "
                f"sandbox {inputs.sandbox_id} has pid mode {pb.NamespaceMode.Name(pod_ns.pid)}"
            )
        namespaces.append({"type": "pid", "path": _pin(inputs, "pid")})
    elif pid_mode == pb.CONTAINER:
        namespaces.append({"type": "pid"})
    elif pid_mode == pb.TARGET:
        if not ctr_ns.target_id:
            raise SpecInvalidError("pid namespace mode TARGET needs namespace_options.target_id")
        if inputs.target_pid is None or inputs.target_pid <= 0:
            raise SpecInputError(
                f"no pid given for target container {ctr_ns.target_id} of container "
                f"{inputs.container_id}"
            )
        namespaces.append({"type": "pid", "path": f"/proc/{inputs.target_pid}/ns/pid"})
    elif pid_mode != pb.NODE:
        raise SpecInvalidError(f"pid namespace mode {pid_mode} is unknown")

    userns = ctr_ns.userns_options if ctr_ns.HasField("userns_options") else None
    if userns is not None and userns.mode == pb.POD:
        namespaces.append({"type": "user", "path": _pin(inputs, "user")})
        spec["linux"]["uidMappings"] = _id_mappings(userns.uids)
        spec["linux"]["gidMappings"] = _id_mappings(userns.gids)
    elif userns is not None and userns.mode not in (pb.NODE, pb.POD):
        raise SpecUnsupportedError(
            f"user namespace mode {pb.NamespaceMode.Name(userns.mode)} is not supported"
        )

    namespaces.append({"type": "mount"})
    # A cgroup namespace hides the host's cgroup tree from /sys/fs/cgroup and /proc/self/
    # cgroup. On v1 it is not used (compatibility: libpod#4363); privileged containers keep
    # the host's view (KEP sig-node 20191118-cgroups-v2, "cgroup namespace").
    if inputs.host.cgroup_v2 and not inputs.privileged:
        namespaces.append({"type": "cgroup"})
    spec["linux"]["namespaces"] = namespaces
    return spec
