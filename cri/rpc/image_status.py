"""ImageStatus: one image by id, tag or digest; unset (not an error) when there is none."""

from __future__ import annotations

import json

from common.errors import InvalidArgumentError
from cri.api import api_pb2 as pb
from cri.rpc.image_list import to_pb
from cri.service import CriService
from image import manifest

RPC = "ImageStatus"


async def handle(service: CriService, request: pb.ImageStatusRequest) -> pb.ImageStatusResponse:
    """Report the image, and with `verbose` its config and layers under info["info"]."""
    name = request.image.image
    if not name:
        raise InvalidArgumentError("image.image: empty image reference")
    image = service.images.status(name)
    if image is None:
        return pb.ImageStatusResponse()
    response = pb.ImageStatusResponse(image=to_pb(service, image))
    if request.verbose:
        # crictl inspecti prints each info value parsed as JSON (containerd's layout).
        info = {
            "imageSpec": service.images.config_of(image),
            "manifestDigest": image.manifest_digest,
            "diffIDs": list(image.diff_ids),
            "chainID": manifest.chain_ids(image.diff_ids)[-1] if image.diff_ids else "",
        }
        response.info["info"] = json.dumps(info)
    return response
