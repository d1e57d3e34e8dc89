"""ListPodSandbox: filters by id (or id prefix), state and labels; memory only.

A sandbox still being created is not listed (as in CRI-O): kubelet's garbage collector
must not act on a sandbox whose RunPodSandbox is in flight. After a crash such a record
is NOT_READY and listed, so kubelet removes it.
"""

from __future__ import annotations

from cri.api import api_pb2 as pb
from cri.pods import translate
from cri.pods.records import SandboxState
from cri.service import CriService

RPC = "ListPodSandbox"


def matches(item: pb.PodSandbox, flt: pb.PodSandboxFilter) -> bool:
    """Whether a sandbox passes every filter that is set."""
    if flt.id and not item.id.startswith(flt.id):
        return False
    if flt.HasField("state") and item.state != flt.state.state:
        return False
    return all(item.labels.get(key) == value for key, value in flt.label_selector.items())


def items(service: CriService, flt: pb.PodSandboxFilter | None) -> list[pb.PodSandbox]:
    """Every sandbox matching `flt` (None: all), oldest first (StreamPodSandboxes too)."""
    records = sorted(
        (r for r in service.sandboxes.list() if r.status.state is not SandboxState.CREATING),
        key=lambda r: r.metadata.created_at_ns,
    )
    found = [translate.pod_sandbox(r) for r in records]
    if flt is not None:
        found = [item for item in found if matches(item, flt)]
    return found


async def handle(
    service: CriService, request: pb.ListPodSandboxRequest
) -> pb.ListPodSandboxResponse:
    """Every sandbox matching the filter, oldest first."""
    flt = request.filter if request.HasField("filter") else None
    return pb.ListPodSandboxResponse(items=items(service, flt))
