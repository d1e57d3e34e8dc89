"""CreateContainer: check the request, then create (cri/containers/manager.py)."""

from __future__ import annotations

from cri.api import api_pb2 as pb
from cri.containers import validate
from cri.service import CriService

RPC = "CreateContainer"


async def handle(
    service: CriService, request: pb.CreateContainerRequest
) -> pb.CreateContainerResponse:
    """Create a container in a ready sandbox; a retry after kubelet's deadline gets the same
    one. The pod's own config (as RunPodSandbox recorded it) is authoritative: the
    request's sandbox_config is not read."""
    plan = validate.plan(request)
    container_id = await service.containers.create(plan)
    return pb.CreateContainerResponse(container_id=container_id)
