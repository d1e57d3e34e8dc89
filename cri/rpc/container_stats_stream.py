"""StreamContainerStats: ListContainerStats' items in chunks (KEP-5825, cri.chunks)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from cri.api import api_pb2 as pb
from cri.chunks import chunked
from cri.rpc import container_stats_list
from cri.service import CriService

RPC = "StreamContainerStats"


async def handle(
    service: CriService, request: pb.StreamContainerStatsRequest
) -> AsyncIterator[pb.StreamContainerStatsResponse]:
    """The same stats as ListContainerStats with the same filter, each exactly once."""
    flt = request.filter if request.HasField("filter") else None
    for chunk in chunked(await container_stats_list.items(service, flt)):
        yield pb.StreamContainerStatsResponse(container_stats=chunk)
