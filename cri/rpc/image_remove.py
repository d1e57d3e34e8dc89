"""RemoveImage: remove an image with all its tags; an unknown image is success."""

from __future__ import annotations

from common.errors import InvalidArgumentError
from cri.api import api_pb2 as pb
from cri.service import CriService

RPC = "RemoveImage"


async def handle(service: CriService, request: pb.RemoveImageRequest) -> pb.RemoveImageResponse:
    """Remove the image named by id, tag or digest (every tag and digest goes with it, as in
    containerd), and the layers no other image or container needs."""
    name = request.image.image
    if not name:
        raise InvalidArgumentError("image.image: empty image reference")
    await service.images.remove(name)
    return pb.RemoveImageResponse()
