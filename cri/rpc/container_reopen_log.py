"""ReopenContainerLog: conmon reopens the log through its ctl fifo; synchronous."""

from __future__ import annotations

from cri.api import api_pb2 as pb
from cri.service import CriService

RPC = "ReopenContainerLog"


async def handle(
    service: CriService, request: pb.ReopenContainerLogRequest
) -> pb.ReopenContainerLogResponse:
    """Returns once the new log file exists (kubelet's rotation checks it right away)."""
    await service.containers.reopen_log(request.container_id)
    return pb.ReopenContainerLogResponse()
