"""PullImage: fetch an image from its registry (or a mirror) and unpack its layers."""

from __future__ import annotations

from common.errors import InvalidArgumentError
from cri.api import api_pb2 as pb
from cri.service import CriService
from image.auth import credentials_from_cri

RPC = "PullImage"


async def handle(service: CriService, request: pb.PullImageRequest) -> pb.PullImageResponse:
    """Pull `image.image` with the request's credentials; the answer is the image id, the
    same value Image.id reports (Kubernetes 1.36: image_ref must equal Image.id)."""
    name = request.image.image
    if not name:
        raise InvalidArgumentError("image.image: empty image reference")
    credentials = None
    if request.HasField("auth"):
        a = request.auth
        credentials = credentials_from_cri(
            username=a.username,
            password=a.password,
            auth=a.auth,
            server_address=a.server_address,
            identity_token=a.identity_token,
            registry_token=a.registry_token,
        )
    image = await service.images.pull(name, credentials)
    return pb.PullImageResponse(image_ref=image.image_id)
