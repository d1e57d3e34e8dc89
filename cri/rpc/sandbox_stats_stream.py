"""StreamPodSandboxStats: ListPodSandboxStats' items in chunks (KEP-5825, cri.chunks)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from cri.api import api_pb2 as pb
from cri.chunks import chunked
from cri.rpc import sandbox_stats_list
from cri.service import CriService

RPC = "StreamPodSandboxStats"


async def handle(
    service: CriService, request: pb.StreamPodSandboxStatsRequest
) -> AsyncIterator[pb.StreamPodSandboxStatsResponse]:
    """The same stats as ListPodSandboxStats with the same filter, each exactly once."""
    flt = request.filter if request.HasField("filter") else None
    for chunk in chunked(await sandbox_stats_list.items(service, flt)):
        yield pb.StreamPodSandboxStatsResponse(pod_sandbox_stats=chunk)
