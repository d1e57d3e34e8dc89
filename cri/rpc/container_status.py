"""ContainerStatus: answered from memory (kubelet polls it for every container)."""

from __future__ import annotations

from cri.api import api_pb2 as pb
from cri.containers import translate
from cri.service import CriService

RPC = "ContainerStatus"


async def handle(
    service: CriService, request: pb.ContainerStatusRequest
) -> pb.ContainerStatusResponse:
    """State, times, exit code and reason, image, mounts, log path, resources, user;
    verbose adds the pid and the OCI spec."""
    record = service.containers.require(request.container_id)
    response = pb.ContainerStatusResponse(status=translate.container_status(record))
    if request.verbose:
        response.info.update(translate.verbose_info(record))
    return response
