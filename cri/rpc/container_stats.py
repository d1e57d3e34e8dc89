"""ContainerStats: one container's usage (NOT_FOUND for an unknown id)."""

from __future__ import annotations

from cri.api import api_pb2 as pb
from cri.service import CriService

RPC = "ContainerStats"


async def handle(
    service: CriService, request: pb.ContainerStatsRequest
) -> pb.ContainerStatsResponse:
    """cpu, memory, swap, I/O pressure and writable layer; an exited container has only
    its writable layer (its cgroup went with its process)."""
    record = service.containers.require(request.container_id)
    (stats,) = await service.stats.container_stats([record])
    return pb.ContainerStatsResponse(stats=stats)
