"""PodSandboxStatus: answered from memory (kubelet polls it for every pod)."""

from __future__ import annotations

import time

from cri.api import api_pb2 as pb
from cri.pods import translate
from cri.service import CriService

RPC = "PodSandboxStatus"


async def handle(
    service: CriService, request: pb.PodSandboxStatusRequest
) -> pb.PodSandboxStatusResponse:
    """State, IPs, namespaces, labels...; verbose adds pause pid, pins, the CNI result and a
    CNI CHECK of the attachment."""
    record = service.pods.require(request.pod_sandbox_id)
    response = pb.PodSandboxStatusResponse(
        status=translate.pod_sandbox_status(record), timestamp=time.time_ns()
    )
    if request.verbose:
        check = await service.pods.check_network(record.record_id)
        response.info.update(translate.verbose_info(record, cni_check=check))
    return response
