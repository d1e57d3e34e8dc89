"""PodSandboxStats: one pod's usage (NOT_FOUND for an unknown id)."""

from __future__ import annotations

from cri.api import api_pb2 as pb
from cri.service import CriService

RPC = "PodSandboxStats"


async def handle(
    service: CriService, request: pb.PodSandboxStatsRequest
) -> pb.PodSandboxStatsResponse:
    """cpu, memory, processes, network and the containers' stats of a ready pod; a pod
    that is not ready has its attributes only."""
    record = service.pods.require(request.pod_sandbox_id)
    (stats,) = await service.stats.sandbox_stats([record])
    return pb.PodSandboxStatsResponse(stats=stats)
