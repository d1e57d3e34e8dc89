"""Attach: validate, then return the streaming URL that attaches to the container's stdio."""

from __future__ import annotations

from cri.api import api_pb2 as pb
from cri.rpc.container_exec import running_container_id
from cri.service import CriService

RPC = "Attach"


async def handle(service: CriService, request: pb.AttachRequest) -> pb.AttachResponse:
    """The URL of an attach session (conmon's attach socket and ctl fifo behind it)."""
    resolved = pb.AttachRequest()
    resolved.CopyFrom(request)
    resolved.container_id = running_container_id(service, request.container_id)
    return pb.AttachResponse(url=service.streaming.get_attach_url(resolved))
