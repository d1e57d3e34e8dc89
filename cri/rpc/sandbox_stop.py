"""StopPodSandbox: containers, pause, CNI DEL, shm; idempotent (unknown ids succeed)."""

from __future__ import annotations

from cri.api import api_pb2 as pb
from cri.service import CriService

RPC = "StopPodSandbox"


async def handle(
    service: CriService, request: pb.StopPodSandboxRequest
) -> pb.StopPodSandboxResponse:
    """Stop the sandbox (again, if it is stopped already)."""
    await service.pods.stop(request.pod_sandbox_id)
    return pb.StopPodSandboxResponse()
