"""RunPodSandbox: check the config, then create the pod (cri/pods/manager.py)."""

from __future__ import annotations

from cri.api import api_pb2 as pb
from cri.pods import validate
from cri.service import CriService

RPC = "RunPodSandbox"


async def handle(service: CriService, request: pb.RunPodSandboxRequest) -> pb.RunPodSandboxResponse:
    """Create and start a pod sandbox; a retry after kubelet's deadline gets the same one."""
    plan = validate.plan(request, service.config)
    sandbox_id = await service.pods.run(plan)
    return pb.RunPodSandboxResponse(pod_sandbox_id=sandbox_id)
