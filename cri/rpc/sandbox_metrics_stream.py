"""StreamPodSandboxMetrics: ListPodSandboxMetrics' items in chunks (KEP-5825)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from cri.api import api_pb2 as pb
from cri.chunks import chunked
from cri.rpc import sandbox_metrics_list
from cri.service import CriService

RPC = "StreamPodSandboxMetrics"


async def handle(
    service: CriService, request: pb.StreamPodSandboxMetricsRequest
) -> AsyncIterator[pb.StreamPodSandboxMetricsResponse]:
    """The same pods' metrics as ListPodSandboxMetrics, each pod exactly once."""
    for chunk in chunked(await sandbox_metrics_list.items(service)):
        yield pb.StreamPodSandboxMetricsResponse(pod_sandbox_metrics=chunk)
