"""RemovePodSandbox: stop if needed, then pins, cgroup, run dir, record; idempotent."""

from __future__ import annotations

from cri.api import api_pb2 as pb
from cri.service import CriService

RPC = "RemovePodSandbox"


async def handle(
    service: CriService, request: pb.RemovePodSandboxRequest
) -> pb.RemovePodSandboxResponse:
    """Remove the sandbox; an unknown id succeeds (CRI idempotence)."""
    await service.pods.remove(request.pod_sandbox_id)
    return pb.RemovePodSandboxResponse()
