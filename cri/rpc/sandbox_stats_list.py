"""ListPodSandboxStats: usage of the pods matching a filter."""

from __future__ import annotations

from cri.api import api_pb2 as pb
from cri.pods.records import SandboxState
from cri.service import CriService

RPC = "ListPodSandboxStats"


async def items(
    service: CriService, flt: pb.PodSandboxStatsFilter | None
) -> list[pb.PodSandboxStats]:
    """Stats of every listed sandbox passing `flt` (id by prefix, as ListPodSandbox),
    oldest first (StreamPodSandboxStats too)."""
    records = sorted(
        (r for r in service.sandboxes.list() if r.status.state is not SandboxState.CREATING),
        key=lambda r: r.metadata.created_at_ns,
    )
    if flt is not None:
        records = [
            r
            for r in records
            if r.record_id.startswith(flt.id)
            and all(r.metadata.labels.get(k) == v for k, v in flt.label_selector.items())
        ]
    return await service.stats.sandbox_stats(records)


async def handle(
    service: CriService, request: pb.ListPodSandboxStatsRequest
) -> pb.ListPodSandboxStatsResponse:
    """Stats of the sandboxes matching the filter."""
    flt = request.filter if request.HasField("filter") else None
    return pb.ListPodSandboxStatsResponse(stats=await items(service, flt))
