"""ExecSync: run a command in a running container through `conmon -e --sync`."""

from __future__ import annotations

from cri.api import api_pb2 as pb
from cri.service import CriService

RPC = "ExecSync"


async def handle(service: CriService, request: pb.ExecSyncRequest) -> pb.ExecSyncResponse:
    """stdout, stderr (each capped at 16 MiB) and the exit code. On timeout the process is
    killed and the answer is exit code -1 with "command timed out" on stderr, not a gRPC
    error (CRI-O), so exec probes fail instead of erroring (user-asks #8)."""
    result = await service.containers.exec_sync(
        request.container_id, list(request.cmd), int(request.timeout)
    )
    return pb.ExecSyncResponse(
        stdout=result.stdout, stderr=result.stderr, exit_code=result.exit_code
    )
