"""ListImages: every image, or the one the filter's image spec names."""

from __future__ import annotations

from cri.api import api_pb2 as pb
from cri.service import CriService
from image.store import ImageRecord

RPC = "ListImages"


def user_of(image_user: str) -> tuple[int | None, str]:
    """(uid, username) from an image config's User, as kubelet's runAsNonRoot check reads
    them: `uid[:gid]` gives the uid, `name[:group]` the username, empty gives neither
    (containerd getUserFromImage)."""
    user = image_user.split(":", 1)[0]
    if not user:
        return None, ""
    if user.isdigit():
        return int(user), ""
    return None, user


def to_pb(service: CriService, image: ImageRecord) -> pb.Image:
    """The CRI view of an image record."""
    uid, username = user_of(image.user)
    result = pb.Image(
        id=image.image_id,
        repo_tags=list(image.repo_tags),
        repo_digests=list(image.repo_digests),
        size=image.size_bytes,
        username=username,
        spec=pb.ImageSpec(image=image.image_id),
        pinned=service.images.is_pinned(image),
    )
    if uid is not None:
        result.uid.value = uid
    return result


def items(service: CriService, flt: pb.ImageFilter | None) -> list[pb.Image]:
    """Every image, or the one `flt`'s image spec names (StreamImages too)."""
    name = flt.image.image if flt is not None else ""
    return [to_pb(service, i) for i in service.images.images(name)]


async def handle(service: CriService, request: pb.ListImagesRequest) -> pb.ListImagesResponse:
    """List images from memory (kubelet polls this for image garbage collection)."""
    flt = request.filter if request.HasField("filter") else None
    return pb.ListImagesResponse(images=items(service, flt))
