"""Exec: validate, then return the streaming URL that runs the command (one use, a minute)."""

from __future__ import annotations

from cri.api import api_pb2 as pb
from cri.containers.errors import ContainerStateError
from cri.containers.records import ContainerState
from cri.service import CriService

RPC = "Exec"


def running_container_id(service: CriService, container_id: str) -> str:
    """The full id of a RUNNING container (NOT_FOUND, FAILED_PRECONDITION otherwise).

    Exec and Attach check the container when the URL is minted, as CRI-O does; the session
    checks again when it starts (the container may stop in between).
    """
    record = service.containers.require(container_id)
    if record.status.state is not ContainerState.RUNNING:
        raise ContainerStateError(
            f"container {record.record_id} is {record.status.state.value}, not running"
        )
    return record.record_id


async def handle(service: CriService, request: pb.ExecRequest) -> pb.ExecResponse:
    """The URL of an exec session; tty with stderr, no stream at all or an empty cmd are
    INVALID_ARGUMENT (cri/streaming/requests.py)."""
    resolved = pb.ExecRequest()
    resolved.CopyFrom(request)
    resolved.container_id = running_container_id(service, request.container_id)
    return pb.ExecResponse(url=service.streaming.get_exec_url(resolved))
