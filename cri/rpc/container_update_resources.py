"""UpdateContainerResources: `runtime update --resources -` on a created or running container."""

from __future__ import annotations

from cri.api import api_pb2 as pb
from cri.service import CriService

RPC = "UpdateContainerResources"


async def handle(
    service: CriService, request: pb.UpdateContainerResourcesRequest
) -> pb.UpdateContainerResourcesResponse:
    """Apply the Linux resources (zero fields are left as they are); Windows ones are
    ignored on Linux, as containerd and CRI-O do."""
    if request.HasField("linux"):
        await service.containers.update_resources(request.container_id, request.linux)
    else:
        service.containers.require(request.container_id)
    return pb.UpdateContainerResourcesResponse()
