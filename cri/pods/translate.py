"""Sandbox records → CRI messages (PodSandbox, PodSandboxStatus, verbose info)."""

from __future__ import annotations

import json
from typing import Any

from cri.api import api_pb2 as pb
from cri.pods.records import SandboxMetadata, SandboxState, SandboxStatus
from cri.store import Record
from sandbox.pod.spec import PidMode

STATES = {
    SandboxState.CREATING: pb.PodSandboxState.SANDBOX_NOTREADY,
    SandboxState.READY: pb.PodSandboxState.SANDBOX_READY,
    SandboxState.NOT_READY: pb.PodSandboxState.SANDBOX_NOTREADY,
}
PID_MODES = {
    PidMode.POD: pb.NamespaceMode.POD,
    PidMode.CONTAINER: pb.NamespaceMode.CONTAINER,
    PidMode.NODE: pb.NamespaceMode.NODE,
}

SandboxRecord = Record[SandboxMetadata, SandboxStatus]


def cri_metadata(meta: SandboxMetadata) -> pb.PodSandboxMetadata:
    """The CRI metadata of a sandbox."""
    return pb.PodSandboxMetadata(
        name=meta.name, uid=meta.uid, namespace=meta.namespace, attempt=meta.attempt
    )


def namespace_option(meta: SandboxMetadata) -> pb.NamespaceOption:
    """The pod's namespace modes as CRI reports them."""
    ns = meta.namespaces
    return pb.NamespaceOption(
        network=pb.NamespaceMode.NODE if ns.host_network else pb.NamespaceMode.POD,
        ipc=pb.NamespaceMode.NODE if ns.host_ipc else pb.NamespaceMode.POD,
        pid=PID_MODES[ns.pid],
    )


def pod_sandbox(record: SandboxRecord) -> pb.PodSandbox:
    """A ListPodSandbox item."""
    meta = record.metadata
    return pb.PodSandbox(
        id=record.record_id,
        metadata=cri_metadata(meta),
        state=STATES[record.status.state],
        created_at=meta.created_at_ns,
        labels=meta.labels,
        annotations=meta.annotations,
        runtime_handler=meta.runtime_handler,
    )


def pod_sandbox_status(record: SandboxRecord) -> pb.PodSandboxStatus:
    """The PodSandboxStatus of a record (memory only; kubelet polls it)."""
    meta, status = record.metadata, record.status
    network = pb.PodSandboxNetworkStatus()
    if status.ips and status.state is not SandboxState.NOT_READY:
        network.ip = status.ips[0]
        network.additional_ips.extend(pb.PodIP(ip=ip) for ip in status.ips[1:])
    return pb.PodSandboxStatus(
        id=record.record_id,
        metadata=cri_metadata(meta),
        state=STATES[status.state],
        created_at=meta.created_at_ns,
        network=network,
        linux=pb.LinuxPodSandboxStatus(namespaces=pb.Namespace(options=namespace_option(meta))),
        labels=meta.labels,
        annotations=meta.annotations,
        runtime_handler=meta.runtime_handler,
    )


def verbose_info(record: SandboxRecord, cni_check: str = "") -> dict[str, str]:
    """Status verbose info: one `info` key holding JSON, as containerd and CRI-O do
    (crictl inspectp prints it)."""
    meta, status = record.metadata, record.status
    info: dict[str, Any] = {
        "sandboxID": record.record_id,
        "name": meta.cri_name,
        "state": status.state.value,
        "pid": status.pause.pid if status.pause else 0,
        "pauseStartTime": status.pause.start_time if status.pause else 0,
        "conmonPid": status.pause.conmon_pid if status.pause else 0,
        "runtimeHandler": meta.runtime_handler,
        "namespaces": dict(status.namespace_paths),
        "hostname": meta.hostname,
        "cgroupsPath": meta.cgroups_path,
        "runDir": meta.run_dir,
        "networkTornDown": status.network_torn_down,
        "message": status.message,
        "config": meta.config,
    }
    if status.attachment is not None:
        info["cniNetwork"] = status.attachment.network.name
        info["cniResult"] = status.attachment.result
    if cni_check:
        info["cniCheck"] = cni_check
    return {"info": json.dumps(info)}
