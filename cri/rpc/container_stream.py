"""StreamContainers: ListContainers' items in chunks (KEP-5825, cri.chunks)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from cri.api import api_pb2 as pb
from cri.chunks import chunked
from cri.rpc import container_list
from cri.service import CriService

RPC = "StreamContainers"


async def handle(
    service: CriService, request: pb.StreamContainersRequest
) -> AsyncIterator[pb.StreamContainersResponse]:
    """The same containers as ListContainers with the same filter, each exactly once."""
    flt = request.filter if request.HasField("filter") else None
    for chunk in chunked(container_list.items(service, flt)):
        yield pb.StreamContainersResponse(containers=chunk)
