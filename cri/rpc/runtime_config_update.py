"""UpdateRuntimeConfig: kubelet hands over the node's pod CIDR; crib records it."""

from __future__ import annotations

import asyncio

from cri.api import api_pb2 as pb
from cri.service import CriService

RPC = "UpdateRuntimeConfig"


async def handle(
    service: CriService, request: pb.UpdateRuntimeConfigRequest
) -> pb.UpdateRuntimeConfigResponse:
    """Record the pod CIDR (an empty one changes nothing, as in containerd)."""
    pod_cidr = request.runtime_config.network_config.pod_cidr
    if pod_cidr:
        await asyncio.to_thread(service.set_pod_cidr, pod_cidr)
    return pb.UpdateRuntimeConfigResponse()
