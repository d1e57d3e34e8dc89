"""StreamPodSandboxes: ListPodSandbox's items in chunks (KEP-5825, cri.chunks)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from cri.api import api_pb2 as pb
from cri.chunks import chunked
from cri.rpc import sandbox_list
from cri.service import CriService

RPC = "StreamPodSandboxes"


async def handle(
    service: CriService, request: pb.StreamPodSandboxesRequest
) -> AsyncIterator[pb.StreamPodSandboxesResponse]:
    """The same sandboxes as ListPodSandbox with the same filter, each exactly once."""
    flt = request.filter if request.HasField("filter") else None
    for chunk in chunked(sandbox_list.items(service, flt)):
        yield pb.StreamPodSandboxesResponse(pod_sandboxes=chunk)
