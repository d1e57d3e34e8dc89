"""RemoveContainer: kill if running, then runtime state, cgroup, mounts, snapshot, record."""

from __future__ import annotations

from cri.api import api_pb2 as pb
from cri.service import CriService

RPC = "RemoveContainer"


async def handle(
    service: CriService, request: pb.RemoveContainerRequest
) -> pb.RemoveContainerResponse:
    """Remove the container; an unknown id succeeds (CRI idempotence). The CRI log stays:
    kubelet owns log files."""
    await service.containers.remove(request.container_id)
    return pb.RemoveContainerResponse()
