"""Version: who crib is. kubelet refuses a reply with any of the four fields empty."""

from __future__ import annotations

from cri import __version__
from cri.api import api_pb2 as pb
from cri.service import CriService

RPC = "Version"
# The CRI "version" field is the kubelet runtime API version string; every runtime
# answers 0.1.0 here (it predates runtime_api_version).
KUBELET_API_VERSION = "0.1.0"
RUNTIME_NAME = "crib"
RUNTIME_API_VERSION = "v1"


async def handle(service: CriService, request: pb.VersionRequest) -> pb.VersionResponse:
    """Answer the runtime's name and versions."""
    return pb.VersionResponse(
        version=KUBELET_API_VERSION,
        runtime_name=RUNTIME_NAME,
        runtime_version=__version__,
        runtime_api_version=RUNTIME_API_VERSION,
    )
