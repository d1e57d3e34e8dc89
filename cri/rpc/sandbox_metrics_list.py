"""ListPodSandboxMetrics: per ready pod, its network metrics and its containers' metrics."""

from __future__ import annotations

from cri.api import api_pb2 as pb
from cri.service import CriService

RPC = "ListPodSandboxMetrics"


async def items(service: CriService) -> list[pb.PodSandboxMetrics]:
    """Metrics of every ready sandbox, oldest first (StreamPodSandboxMetrics too)."""
    records = sorted(service.sandboxes.list(), key=lambda r: r.metadata.created_at_ns)
    return await service.stats.sandbox_metrics(records)


async def handle(
    service: CriService, request: pb.ListPodSandboxMetricsRequest
) -> pb.ListPodSandboxMetricsResponse:
    """The metrics named by ListMetricDescriptors, for every ready pod."""
    return pb.ListPodSandboxMetricsResponse(pod_metrics=await items(service))
