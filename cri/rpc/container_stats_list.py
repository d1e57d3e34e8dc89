"""ListContainerStats: usage of the running (and created) containers matching a filter."""

from __future__ import annotations

from cri.api import api_pb2 as pb
from cri.containers.records import LIVE_STATES
from cri.service import CriService

RPC = "ListContainerStats"


async def items(
    service: CriService, flt: pb.ContainerStatsFilter | None
) -> list[pb.ContainerStats]:
    """Stats of every live container passing `flt` (the id and sandbox id match by
    prefix, as in ListContainers), oldest first (StreamContainerStats too). Exited
    containers are left out: "stats of all running containers" (api.proto)."""
    records = sorted(
        (r for r in service.containers.store.list() if r.status.state in LIVE_STATES),
        key=lambda r: r.metadata.created_at_ns,
    )
    if flt is not None:
        records = [
            r
            for r in records
            if r.record_id.startswith(flt.id)
            and r.metadata.sandbox_id.startswith(flt.pod_sandbox_id)
            and all(r.metadata.labels.get(k) == v for k, v in flt.label_selector.items())
        ]
    return await service.stats.container_stats(records)


async def handle(
    service: CriService, request: pb.ListContainerStatsRequest
) -> pb.ListContainerStatsResponse:
    """Stats of the containers matching the filter."""
    flt = request.filter if request.HasField("filter") else None
    return pb.ListContainerStatsResponse(stats=await items(service, flt))
