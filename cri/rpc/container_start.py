"""StartContainer: `runtime start` of a created container."""

from __future__ import annotations

from cri.api import api_pb2 as pb
from cri.service import CriService

RPC = "StartContainer"


async def handle(
    service: CriService, request: pb.StartContainerRequest
) -> pb.StartContainerResponse:
    """Start the container; FAILED_PRECONDITION unless it is created."""
    await service.containers.start(request.container_id)
    return pb.StartContainerResponse()
