"""Container records → CRI messages (Container, ContainerStatus, verbose info).

Answered from memory: kubelet polls ListContainers and ContainerStatus every second for
every pod (user-asks #17). Only the verbose info reads the bundle's config.json.
"""

from __future__ import annotations

import json
import os
import signal
from typing import Any

from google.protobuf import json_format

from cri.api import api_pb2 as pb
from cri.containers import resources as res
from cri.containers.records import ContainerMetadata, ContainerState, ContainerStatus
from cri.store import Record

STATES = {
    ContainerState.CREATING: pb.ContainerState.CONTAINER_UNKNOWN,
    ContainerState.CREATED: pb.ContainerState.CONTAINER_CREATED,
    ContainerState.RUNNING: pb.ContainerState.CONTAINER_RUNNING,
    ContainerState.EXITED: pb.ContainerState.CONTAINER_EXITED,
    ContainerState.UNKNOWN: pb.ContainerState.CONTAINER_UNKNOWN,
}

ContainerRecord = Record[ContainerMetadata, ContainerStatus]


def config_of(meta: ContainerMetadata) -> pb.ContainerConfig:
    """The ContainerConfig the container was created with."""
    return json_format.ParseDict(meta.config, pb.ContainerConfig(), ignore_unknown_fields=True)


def cri_metadata(meta: ContainerMetadata) -> pb.ContainerMetadata:
    """The CRI metadata of a container."""
    return pb.ContainerMetadata(name=meta.name, attempt=meta.attempt)


def image_spec(meta: ContainerMetadata) -> pb.ImageSpec:
    """The image as the container was asked for (ImageSpec.image is what kubelet sent:
    kubelet resolves to the image id and keeps the user's text in user_specified_image)."""
    image = meta.config.get("image") or {}
    return pb.ImageSpec(
        image=str(image.get("image", "")) or meta.image_id,
        annotations={str(k): str(v) for k, v in (image.get("annotations") or {}).items()},
        user_specified_image=str(image.get("user_specified_image", "")),
        runtime_handler=str(image.get("runtime_handler", "")),
    )


def container(record: ContainerRecord) -> pb.Container:
    """A ListContainers item."""
    meta = record.metadata
    return pb.Container(
        id=record.record_id,
        pod_sandbox_id=meta.sandbox_id,
        metadata=cri_metadata(meta),
        image=image_spec(meta),
        image_ref=meta.image_id,
        image_id=meta.image_id,
        state=STATES[record.status.state],
        created_at=meta.created_at_ns,
        labels=meta.labels,
        annotations=meta.annotations,
    )


def cri_signal(number: int) -> int:
    """The CRI `Signal` enum value for a signal number (RUNTIME_DEFAULT if it has none)."""
    try:
        name = signal.Signals(number).name
    except ValueError:
        rt_min, rt_max = int(signal.SIGRTMIN), int(signal.SIGRTMAX)
        if rt_min <= number <= rt_max:
            offset_min, offset_max = number - rt_min, rt_max - number
            if offset_min == 0:
                name = "SIGRTMIN"
            elif offset_max == 0:
                name = "SIGRTMAX"
            elif offset_min <= offset_max:
                name = f"SIGRTMINPLUS{offset_min}"
            else:
                name = f"SIGRTMAXMINUS{offset_max}"
        else:
            return pb.RUNTIME_DEFAULT
    try:
        return pb.Signal.Value(name)
    except ValueError:
        return pb.RUNTIME_DEFAULT


def container_status(record: ContainerRecord) -> pb.ContainerStatus:
    """The ContainerStatus of a record (memory only)."""
    meta, status = record.metadata, record.status
    config = config_of(meta)
    return pb.ContainerStatus(
        id=record.record_id,
        metadata=cri_metadata(meta),
        state=STATES[status.state],
        created_at=meta.created_at_ns,
        started_at=status.started_at_ns,
        finished_at=status.finished_at_ns,
        exit_code=status.exit_code,
        image=image_spec(meta),
        image_ref=meta.image_id,
        image_id=meta.image_id,
        reason=status.reason,
        message=status.message,
        labels=meta.labels,
        annotations=meta.annotations,
        mounts=list(config.mounts),
        log_path=meta.log_path,
        resources=pb.ContainerResources(linux=res.from_json(status.resources)),
        user=pb.ContainerUser(
            linux=pb.LinuxContainerUser(
                uid=status.uid, gid=status.gid, supplemental_groups=status.supplemental_groups
            )
        )
        if status.state is not ContainerState.CREATING
        else None,
        stop_signal=cri_signal(status.stop_signal),  # type: ignore[arg-type]
    )


def read_spec(meta: ContainerMetadata) -> dict[str, Any] | None:
    """The OCI spec in the bundle, or None when it is gone (after a reboot)."""
    try:
        with open(os.path.join(meta.bundle_dir, "config.json"), "rb") as f:
            doc = json.loads(f.read())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def verbose_info(record: ContainerRecord) -> dict[str, str]:
    """ContainerStatus verbose info: one `info` key holding JSON (crictl inspect prints it),
    with the pid and the OCI spec as CRI-O and containerd give them."""
    meta, status = record.metadata, record.status
    info: dict[str, Any] = {
        "sandboxID": meta.sandbox_id,
        "name": meta.cri_name,
        "state": status.state.value,
        "pid": status.init.pid if status.init else 0,
        "conmonPid": status.conmon.pid if status.conmon else 0,
        "runtimeHandler": meta.runtime_handler,
        "imageName": meta.image_name,
        "bundle": meta.bundle_dir,
        "cgroupsPath": meta.cgroups_path,
        "logPath": meta.log_path,
        "seccompProfile": status.seccomp_profile,
        "message": status.message,
        "runtimeSpec": read_spec(meta),
        "config": meta.config,
    }
    return {"info": json.dumps(info)}
