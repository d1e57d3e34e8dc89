"""ImageFsInfo: bytes and inodes used by images and by containers' writable layers."""

from __future__ import annotations

from cri.api import api_pb2 as pb
from cri.service import CriService
from image.service import FsUsage

RPC = "ImageFsInfo"


def _usage(usage: FsUsage) -> pb.FilesystemUsage:
    return pb.FilesystemUsage(
        timestamp=usage.timestamp_ns,
        fs_id=pb.FilesystemIdentifier(mountpoint=usage.mountpoint),
        used_bytes=pb.UInt64Value(value=usage.used_bytes),
        inodes_used=pb.UInt64Value(value=usage.inodes_used),
    )


async def handle(service: CriService, request: pb.ImageFsInfoRequest) -> pb.ImageFsInfoResponse:
    """Report image storage (layers + content) and container writable layers separately;
    kubelet's image garbage collection reads the first."""
    images, containers = await service.images.fs_usage()
    return pb.ImageFsInfoResponse(
        image_filesystems=[_usage(images)], container_filesystems=[_usage(containers)]
    )
