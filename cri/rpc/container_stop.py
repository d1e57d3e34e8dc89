"""StopContainer: stop signal, SIGKILL after the timeout; idempotent."""

from __future__ import annotations

from common.errors import InvalidArgumentError
from cri.api import api_pb2 as pb
from cri.service import CriService

RPC = "StopContainer"


async def handle(service: CriService, request: pb.StopContainerRequest) -> pb.StopContainerResponse:
    """Stop the container (0 seconds: SIGKILL at once); unknown ids and stopped containers
    succeed. Returns once the process is dead."""
    if request.timeout < 0:
        raise InvalidArgumentError(f"timeout {request.timeout} is negative")
    await service.containers.stop(request.container_id, float(request.timeout))
    return pb.StopContainerResponse()
