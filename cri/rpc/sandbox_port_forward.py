"""PortForward: validate, then return the streaming URL that forwards into the pod."""

from __future__ import annotations

from common.errors import FailedPreconditionError
from cri.api import api_pb2 as pb
from cri.pods.records import SandboxState
from cri.service import CriService

RPC = "PortForward"


async def handle(service: CriService, request: pb.PortForwardRequest) -> pb.PortForwardResponse:
    """The URL of a port-forward session to a READY pod; ports outside 1-65535 are
    INVALID_ARGUMENT."""
    record = service.pods.require(request.pod_sandbox_id)
    if record.status.state is not SandboxState.READY:
        raise FailedPreconditionError(
            f"pod sandbox {record.record_id} is {record.status.state.value}, not ready"
        )
    resolved = pb.PortForwardRequest()
    resolved.CopyFrom(request)
    resolved.pod_sandbox_id = record.record_id
    return pb.PortForwardResponse(url=service.streaming.get_port_forward_url(resolved))
