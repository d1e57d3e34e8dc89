"""StreamImages: ListImages' items in chunks (KEP-5825, cri.chunks)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from cri.api import api_pb2 as pb
from cri.chunks import chunked
from cri.rpc import image_list
from cri.service import CriService

RPC = "StreamImages"


async def handle(
    service: CriService, request: pb.StreamImagesRequest
) -> AsyncIterator[pb.StreamImagesResponse]:
    """The same images as ListImages with the same filter, each exactly once."""
    flt = request.filter if request.HasField("filter") else None
    for chunk in chunked(image_list.items(service, flt)):
        yield pb.StreamImagesResponse(images=chunk)
